"""sd-scripts' LoRA naming rule, written once for the tests and apart from trainer/ code, so the
network's names and the trainer's saved keys are checked against an independent statement of it.
SDXL's UNet names are the original (SGM) module paths, as sd-scripts trains that UNet: the same
diffusers -> original prefixes the single-file checkpoint test writes a checkpoint with."""
from __future__ import annotations

import torch

RESNET_NAMES = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))


def unet_prefixes(config: dict) -> list[tuple[str, str]]:
    """diffusers block prefix -> original prefix; L resnets per down level, L + 1 per up level."""
    layers, levels = config["layers_per_block"], len(config["block_out_channels"])
    pairs = [("time_embedding.linear_1.", "time_embed.0."), ("time_embedding.linear_2.", "time_embed.2."),
             ("conv_in.", "input_blocks.0.0."), ("conv_norm_out.", "out.0."), ("conv_out.", "out.2."),
             ("mid_block.attentions.0.", "middle_block.1."), ("mid_block.resnets.0.", "middle_block.0."),
             ("mid_block.resnets.1.", "middle_block.2.")]
    for i in range(levels):
        for j in range(layers):
            pairs += [(f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{(layers + 1) * i + j + 1}.0."),
                      (f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{(layers + 1) * i + j + 1}.1.")]
        pairs.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(layers + 1) * (i + 1)}.0.op."))
        for j in range(layers + 1):
            pairs += [(f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{(layers + 1) * i + j}.0."),
                      (f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{(layers + 1) * i + j}.1.")]
        upsampler_slot = 2 if "CrossAttn" in config["up_block_types"][i] else 1      # after resnet (+ attention)
        pairs.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{(layers + 1) * i + layers}.{upsampler_slot}."))
    return pairs


def original_path(path: str, config) -> str:
    """A diffusers UNet module path in the original layout: down_blocks.1.attentions.0.proj_in ->
    input_blocks.4.1.proj_in."""
    dotted = path + "."
    if "resnets" in dotted:
        for ours, theirs in RESNET_NAMES:
            dotted = dotted.replace(f".{ours}.", f".{theirs}.")
    ours, theirs = next(p for p in unet_prefixes(config) if dotted.startswith(p[0]))
    return (theirs + dotted[len(ours):]).rstrip(".")


def kohya_names(unet, text_encoders, conv: bool = False) -> set[str]:
    """sd-scripts' naming rule, written here a second time, apart from trainer/ code."""
    names = set()
    sdxl = unet.config.get("addition_embed_type") == "text_time"
    for path, block in unet.named_modules():
        kind = type(block).__name__
        for sub, m in block.named_modules():
            linear_or_1x1 = isinstance(m, torch.nn.Linear) or (
                isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1))
            if sub and ((kind == "Transformer2DModel" and linear_or_1x1) or (
                    conv and kind in ("ResnetBlock2D", "Downsample2D", "Upsample2D")
                    and isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))):
                full = original_path(f"{path}.{sub}", unet.config) if sdxl else f"{path}.{sub}"
                names.add("lora_unet_" + full.replace(".", "_"))
    prefixes = ["lora_te"] if len(text_encoders) == 1 else ["lora_te1", "lora_te2"]
    for prefix, encoder in zip(prefixes, text_encoders):
        for path, block in encoder.named_modules():
            if type(block).__name__ in ("CLIPAttention", "CLIPMLP"):
                for sub, m in block.named_modules():
                    if isinstance(m, torch.nn.Linear):
                        full = f"{path}.{sub}"
                        full = full if full.startswith("text_model.") else "text_model." + full
                        names.add(f"{prefix}_" + full.replace(".", "_"))
    return names
