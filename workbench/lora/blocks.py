"""Block-wise ranks and learning rates of networks.lora (sd-scripts' networks/lora.py:
get_block_index, get_block_dims_and_alphas, get_block_lr_weight, remove_block_dims_and_alphas).

The UNet is cut into blocks: SD1/SD2 have 25 (IN00–IN11, MID, OUT00–OUT11; index 0 holds no LoRA),
SDXL 23 (0 the embeddings, IN 1–9, MID 10–12, OUT 13–21, 22 the output; 0 and 22 hold no LoRA).
network_args block_dims / block_alphas (and conv_block_dims / conv_block_alphas for 3x3 convs) give
each block its rank and alpha, one comma-separated number per block; down_lr_weight / mid_lr_weight
/ up_lr_weight scale each block's learning rate (a list, or a preset cosine, sine, linear,
reverse_linear, zeros with an optional "+base"); a weight at or below block_lr_zero_threshold is 0,
and a block whose weight is 0 gets no LoRA modules at all. Text-encoder modules are not affected.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from workbench.config.schema import ConfigError

SD_BLOCKS, SD_MID = 12, 1             # per side, middle
SDXL_BLOCKS, SDXL_MID = 9, 3
BLOCK_ARGS = ("block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas", "down_lr_weight",
              "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold")
PRESETS = ("cosine", "sine", "linear", "reverse_linear", "zeros")
UP_DOWN = re.compile(r"(up|down)_blocks_(\d+)_(resnets|upsamplers|downsamplers|attentions)_(\d+)_")


@dataclass(frozen=True)
class Blocks:
    dims: list[int]                    # rank per block (0: no module)
    alphas: list[float]
    conv_dims: list[int] | None        # rank of 3x3 convs per block; None: no 3x3 convs
    conv_alphas: list[float] | None
    lr_weights: list[float] | None     # None: one UNet learning rate

    def rank_alpha(self, block: int, conv3x3: bool) -> tuple[int | None, float]:
        if not conv3x3:
            return self.dims[block], self.alphas[block]
        return (self.conv_dims[block], self.conv_alphas[block]) if self.conv_dims else (None, 0.0)


def block_count(sdxl: bool) -> int:
    return 1 + SDXL_BLOCKS * 2 + SDXL_MID + 1 if sdxl else SD_BLOCKS * 2 + SD_MID


def block_index(lora_name: str, sdxl: bool) -> int:
    """The block a UNet LoRA module sits in (-1: not a UNet block name)."""
    if sdxl:
        return _sdxl_block(lora_name.removeprefix("lora_unet_")) if lora_name.startswith("lora_unet_") else -1
    match = UP_DOWN.search(lora_name)
    if match:
        side, i, kind, j = match.groups()
        inner = 3 * int(i) + (2 if kind in ("upsamplers", "downsamplers") else int(j))
        return 1 + inner if side == "down" else SD_BLOCKS + 1 + inner
    return SD_BLOCKS if "mid_block_" in lora_name else -1


def _sdxl_block(name: str) -> int:
    for start, base in (("input_blocks_", 1), ("middle_block_", 10), ("output_blocks_", 13)):
        if name.startswith(start):
            return base + int(name.split("_")[2])
    return 0 if name.startswith(("time_embed_", "label_emb_")) else 22 if name.startswith("out_") else -1


def parse_blocks(args: dict[str, str], sdxl: bool, dim: int, alpha: float, conv_dim: int | None,
                 conv_alpha: float) -> Blocks | None:
    """The blocks' ranks, alphas and LR weights from network_args; None when none of the block
    arguments is given. ConfigError names the argument and what it needs."""
    weights = lr_weights(args, sdxl)
    if "block_dims" not in args and weights is None:
        return None
    n = block_count(sdxl)
    dims = _numbers(args, "block_dims", int, n) or [dim] * n
    alphas = _numbers(args, "block_alphas", float, n) or [float(alpha)] * n
    conv_dims = _numbers(args, "conv_block_dims", int, n) or ([conv_dim] * n if conv_dim is not None else None)
    conv_alphas = (_numbers(args, "conv_block_alphas", float, n) or [float(conv_alpha)] * n) if conv_dims else None
    if weights is not None:            # a block that does not learn gets no modules
        dims = [0 if w == 0 else d for d, w in zip(dims, weights)]
        conv_dims = [0 if w == 0 else d for d, w in zip(conv_dims, weights)] if conv_dims else None
    return Blocks(dims, alphas, conv_dims, conv_alphas, weights)


def _numbers(args: dict[str, str], key: str, kind: type, count: int) -> list | None:
    if key not in args:
        return None
    try:
        values = [kind(v) for v in args[key].split(",")]
    except ValueError:
        word = "whole numbers" if kind is int else "numbers"
        raise ConfigError(f'network_args: {key}="{args[key]}" must be {count} comma-separated {word}') from None
    if len(values) != count:
        raise ConfigError(f"network_args: {key} has {len(values)} values; this model family has {count} blocks, "
                          f"give one per block")
    return values


def lr_weights(args: dict[str, str], sdxl: bool) -> list[float] | None:
    """Each block's LR multiplier (sd-scripts' get_block_lr_weight), or None when none is given."""
    if not any(k in args for k in ("down_lr_weight", "mid_lr_weight", "up_lr_weight")):
        return None
    side, mid = (SDXL_BLOCKS, SDXL_MID) if sdxl else (SD_BLOCKS, SD_MID)
    try:
        threshold = float(args.get("block_lr_zero_threshold", 0.0))
    except ValueError:
        raise ConfigError(f'network_args: block_lr_zero_threshold="{args["block_lr_zero_threshold"]}" is not a number') \
            from None
    def given(key: str, count: int, read) -> list[float]:      # the threshold applies to given weights only
        return [w if w > threshold else 0.0 for w in read(args, key, count)] if key in args else [1.0] * count
    weights = (given("down_lr_weight", side, _side_weights) + given("mid_lr_weight", mid, _weight_list)
               + given("up_lr_weight", side, _side_weights))
    return [1.0] + weights + [1.0] if sdxl else weights


def _side_weights(args: dict[str, str], key: str, count: int) -> list[float]:
    text = args[key]
    if "," in text:
        return _weight_list(args, key, count)
    name, _, base = text.partition("+")
    if name not in PRESETS:
        raise ConfigError(f'network_args: {key}="{text}": give {count} comma-separated numbers or one of '
                          f"{', '.join(PRESETS)} (optionally +base, e.g. cosine+0.1)")
    try:
        offset = float(base) if base else 0.0
    except ValueError:
        raise ConfigError(f'network_args: {key}="{text}": the part after + must be a number') from None
    return [w + offset for w in _preset(name, count)]


def _preset(name: str, count: int) -> list[float]:
    ramp = [i / (count - 1) for i in range(count)]
    sine = [math.sin(math.pi * r / 2) for r in ramp]
    return {"cosine": sine[::-1], "sine": sine, "linear": ramp, "reverse_linear": ramp[::-1],
            "zeros": [0.0] * count}[name]


def _weight_list(args: dict[str, str], key: str, count: int) -> list[float]:
    """A comma list: empty entries are 0, extra ones dropped, missing ones 1 (sd-scripts' padding)."""
    try:
        values = [float(v) if v.strip() else 0.0 for v in args[key].split(",")]
    except ValueError:
        raise ConfigError(f'network_args: {key}="{args[key]}" must be comma-separated numbers') from None
    return (values + [1.0] * count)[:count]
