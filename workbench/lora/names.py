"""Kohya's LoRA module names: what A1111, ComfyUI and diffusers look for in a LoRA file.

A name is a prefix plus the module's path inside its model with every "." turned into "_":
`lora_unet_down_blocks_0_attentions_0_proj_in`, `lora_te_text_model_encoder_layers_0_mlp_fc1`.
SDXL's UNet paths are those of the original UNet sd-scripts trains (`lora_unet_input_blocks_4_1_...`).
Tensors then hang off it: `<name>.lora_down.weight`, `<name>.lora_up.weight`, `<name>.alpha`.

Pure string rules (no torch): the trainer writes names with them, the header-only tools (Inspect,
lora_structure) read names with them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

UNET_PREFIX = "lora_unet"
TEXT_MODEL = "text_model"
# UNet blocks by side (0 down, 1 mid, 2 up): diffusers' names (SD1/SD2 LoRAs) and the original UNet's
# (sd-scripts' SDXL LoRAs, see sgm_unet_name)
UNET_BLOCK_SIDES = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2,
                    "input_blocks": 0, "middle_block": 1, "output_blocks": 2}


def lora_name(prefix: str, module_path: str) -> str:
    """`lora_name("lora_unet", "mid_block.attentions.0.proj_in")` -> `lora_unet_mid_block_attentions_0_proj_in`."""
    return f"{prefix}.{module_path}".replace(".", "_")


def text_encoder_prefixes(count: int) -> list[str]:
    """One text encoder (SD1/SD2): `lora_te`; SDXL's two: `lora_te1`, `lora_te2`."""
    if count == 1:
        return ["lora_te"]
    return [f"lora_te{i + 1}" for i in range(count)]


def text_encoder_module_path(has_text_model_level: bool, module_path: str) -> str:
    """The path a CLIP text encoder's module had before transformers 5.

    transformers 5 flattened CLIPTextModel (`encoder.layers.0...` instead of
    `text_model.encoder.layers.0...`); A1111 and ComfyUI only know the old paths, so the
    `text_model` level is put back for models that no longer have it.
    """
    if has_text_model_level:
        return module_path
    return f"{TEXT_MODEL}.{module_path}"


def canonical_lora_name(name: str) -> str:
    """A name as this project writes it, from a file written by any tool.

    Tools that walked a transformers-5 CLIPTextModel wrote `lora_te_encoder_layers_0_...`;
    those names get their `text_model_` part back. UNet names and correct names pass unchanged.
    """
    for prefix in ("lora_te_", "lora_te1_", "lora_te2_"):
        if name.startswith(prefix):
            rest = name[len(prefix):]
            if not rest.startswith(f"{TEXT_MODEL}_"):
                return f"{prefix}{TEXT_MODEL}_{rest}"
            return name
    return name


def is_text_encoder_name(name: str) -> bool:
    return name.startswith("lora_te")


# ---------------------------------------------------------------- SDXL: sd-scripts' original block names

# sd-scripts trains SDXL on the original (SGM) UNet, so its SDXL LoRA names say input_blocks_4_1_...
# where the diffusers path says down_blocks_1_attentions_0_...; A1111 and ComfyUI expect those.
RESNET_PARTS = {"norm1": "in_layers_0", "conv1": "in_layers_2", "time_emb_proj": "emb_layers_1",
                "norm2": "out_layers_0", "conv2": "out_layers_3", "conv_shortcut": "skip_connection"}


@dataclass(frozen=True)
class SgmLayout:
    layers_per_block: int                 # resnets per down block (up blocks have one more)
    up_blocks_with_attention: frozenset   # up block indices whose upsampler comes after an attention


def sgm_layout(unet_config) -> SgmLayout:
    ups = unet_config["up_block_types"]
    return SgmLayout(unet_config["layers_per_block"], frozenset(i for i, t in enumerate(ups) if "CrossAttn" in t))


def sgm_unet_name(name: str, layout: SgmLayout) -> str:
    """`lora_unet_down_blocks_1_attentions_0_proj_in` -> `lora_unet_input_blocks_4_1_proj_in` (the
    original UNet's position: input block 1 + i·(layers+1) + j, output block i·(layers+1) + j).
    Names that are not a diffusers UNet path (text encoders, names already original) pass unchanged."""
    prefix = f"{UNET_PREFIX}_"
    if not name.startswith(prefix):
        return name
    rest, per = name[len(prefix):], layout.layers_per_block + 1
    for pattern, place in _SGM_RULES:
        match = pattern.fullmatch(rest)
        if match:
            return prefix + place(*(int(g) if g.isdigit() else g for g in match.groups()), per, layout)
    return name


def _resnet(part: str) -> str:
    """A resnet's layer: diffusers' conv1 is the original in_layers_2, and so on."""
    return RESNET_PARTS.get(part, part)


# (diffusers name pattern, its original name from the groups, the block's layers + 1, the layout)
_SGM_RULES = (
    (re.compile(r"down_blocks_(\d+)_attentions_(\d+)_(.+)"),
     lambda i, j, rest, per, _: f"input_blocks_{1 + i * per + j}_1_{rest}"),
    (re.compile(r"down_blocks_(\d+)_resnets_(\d+)_(.+)"),
     lambda i, j, rest, per, _: f"input_blocks_{1 + i * per + j}_0_{_resnet(rest)}"),
    (re.compile(r"down_blocks_(\d+)_downsamplers_0_conv"),
     lambda i, per, _: f"input_blocks_{(i + 1) * per}_0_op"),
    (re.compile(r"mid_block_attentions_0_(.+)"),
     lambda rest, per, _: f"middle_block_1_{rest}"),
    (re.compile(r"mid_block_resnets_(\d+)_(.+)"),
     lambda j, rest, per, _: f"middle_block_{2 * j}_{_resnet(rest)}"),
    (re.compile(r"up_blocks_(\d+)_attentions_(\d+)_(.+)"),
     lambda i, j, rest, per, _: f"output_blocks_{i * per + j}_1_{rest}"),
    (re.compile(r"up_blocks_(\d+)_resnets_(\d+)_(.+)"),
     lambda i, j, rest, per, _: f"output_blocks_{i * per + j}_0_{_resnet(rest)}"),
    (re.compile(r"up_blocks_(\d+)_upsamplers_0_conv"),      # after the resnet, and the attention if any
     lambda i, per, layout: f"output_blocks_{i * per + per - 1}_{1 + (i in layout.up_blocks_with_attention)}_conv"),
)
