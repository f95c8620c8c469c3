"""The UNet's attention, sd-scripts' three flags in its order (train_util.replace_unet_modules):
mem_eff_attn, else xformers, else sdpa, else plain attention. The math is the same in all four (the
losses agree to float rounding); they differ in speed and memory.

sd-scripts' mem_eff_attn is its own chunked ("flash", in pure PyTorch) attention; diffusers' nearest
is sliced attention (set_attention_slice "auto": half the heads at a time), used here for it."""
from __future__ import annotations


def attention_choice(cfg) -> str:
    """"mem_eff_attn" | "xformers" | "sdpa" | "plain"."""
    return next((k for k in ("mem_eff_attn", "xformers", "sdpa") if getattr(cfg, k)), "plain")


def set_attention(unet, cfg) -> str:
    """Give every attention layer of the UNet the chosen processor; returns a line for the log.
    xformers missing is refused before the run starts (workbench/config/validate.py)."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
    choice = attention_choice(cfg)
    if choice == "mem_eff_attn":
        unet.set_attention_slice("auto")
        return "attention: sliced (mem_eff_attn; diffusers' set_attention_slice auto)"
    if choice == "xformers":
        unet.enable_xformers_memory_efficient_attention()
        return "attention: xformers memory-efficient"
    unet.set_attn_processor(AttnProcessor2_0() if choice == "sdpa" else AttnProcessor())
    return "attention: PyTorch SDPA" if choice == "sdpa" else "attention: plain (sdpa, xformers and mem_eff_attn off)"
