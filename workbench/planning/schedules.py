"""LR schedules: the multiplier of each optimizer step, the same functions the trainer runs.

These are the formulas of transformers' `get_scheduler` (tests compare them against it); they
are written in plain Python so the app and the CLI draw a 10,000-step curve without importing
torch. The trainer wraps `lr_lambda` in a torch LambdaLR, so the curve shown is the curve run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from workbench.config.schema import ConfigError
from workbench.lora.blocks import lr_weights

POLYNOMIAL_LR_END = 1e-7   # transformers' default lr_end for the polynomial schedule


def warmup_steps_for(lr_warmup_steps: float | int, total_steps: int) -> int:
    """An int is a number of steps; a float below 1 is a ratio of the total (sd-scripts' rule)."""
    if isinstance(lr_warmup_steps, float) and lr_warmup_steps < 1:
        return int(lr_warmup_steps * total_steps)
    return int(lr_warmup_steps)


def lr_lambda(name: str, warmup: int, total: int, num_cycles: int = 1, power: float = 1.0,
              lr_init: float = 1.0) -> Callable[[int], float]:
    """The multiplier of the base LR at optimizer step `s` (0-based). `lr_init` only matters for
    polynomial, whose floor lr_end is absolute."""
    def warm(s: int) -> float | None:
        return s / max(1, warmup) if s < warmup else None

    def constant(s):
        return 1.0

    def constant_with_warmup(s):
        w = warm(s)
        return 1.0 if w is None else w

    def linear(s):
        w = warm(s)
        return w if w is not None else max(0.0, (total - s) / max(1, total - warmup))

    def cosine(s):
        w = warm(s)
        if w is not None:
            return w
        progress = (s - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))

    def cosine_with_restarts(s):
        w = warm(s)
        if w is not None:
            return w
        progress = (s - warmup) / max(1, total - warmup)
        if progress >= 1.0:
            return 0.0
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((num_cycles * progress) % 1.0))))

    def polynomial(s):
        w = warm(s)
        if w is not None:
            return w
        lr_end = POLYNOMIAL_LR_END
        if s > total:
            return lr_end / lr_init
        decay = (lr_init - lr_end) * (1 - (s - warmup) / max(1, total - warmup)) ** power + lr_end
        return decay / lr_init

    table = {"constant": constant, "constant_with_warmup": constant_with_warmup, "linear": linear,
             "cosine": cosine, "cosine_with_restarts": cosine_with_restarts, "polynomial": polynomial,
             # Adafactor's own schedule is relative-step inside the optimizer; the preview shows the
             # initial LR the optimizer is given.
             "adafactor": constant}
    if name not in table:
        raise ValueError(f"lr_scheduler: unknown {name!r}; valid: {', '.join(table)}")
    return table[name]


@dataclass
class Schedule:
    total_steps: int
    warmup_steps: int
    unet: list[float]
    text_encoder: list[float]
    warmup_ignored: bool          # a warmup was asked for but the scheduler has none
    loraplus: dict[str, float] = field(default_factory=dict)   # LoRA+: {part: ratio} of its lora_up group
    block_weights: dict[float, list[int]] = field(default_factory=dict)   # UNet LR weight ≠ 1 -> its blocks

    def plus_curve(self, part: str) -> list[float]:
        """The LR of a part's LoRA+ group (its lora_up weights): ratio × the part's curve."""
        return [self.loraplus[part] * lr for lr in (self.unet if part == "unet" else self.text_encoder)]

    def to_json(self) -> dict:
        plus = {f"{part} plus": self.plus_curve(part) for part in self.loraplus}
        return {"total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "unet": self.unet, "text_encoder": self.text_encoder, **plus}


def stop_text_encoder_step(cfg, total_steps: int) -> int | None:
    """The optimizer step after which the text encoder stops learning: stop_text_encoder_training
    is a percent of the total, rounded up as the kohya_ss GUI does. None when it never stops."""
    if not cfg.stop_text_encoder_training or not cfg.trains_text_encoder():
        return None
    return math.ceil(total_steps * cfg.stop_text_encoder_training / 100)


def has_warmup(name: str) -> bool:
    return name not in ("constant", "adafactor")


def curve(name: str, base_lr: float, warmup: int, total: int, num_cycles: int, power: float) -> list[float]:
    f = lr_lambda(name, warmup, total, num_cycles, power, lr_init=base_lr or 1.0)
    return [base_lr * f(s) for s in range(total)]


def make_schedule(cfg, total_steps: int) -> Schedule:
    """The LR of every optimizer step 0 … total−1 for the UNet and the text encoder."""
    warmup = warmup_steps_for(cfg.lr_warmup_steps, total_steps)
    args = (cfg.lr_scheduler, warmup, total_steps, cfg.lr_scheduler_num_cycles, cfg.lr_scheduler_power)
    unet = curve(args[0], cfg.unet_lr_value(), *args[1:])
    te = curve(args[0], cfg.text_encoder_lr_value(), *args[1:]) if cfg.trains_text_encoder() else [0.0] * total_steps
    plus = {part: ratio for part, ratio in _loraplus(cfg).items()
            if ratio and (part == "unet" or cfg.trains_text_encoder())}
    return Schedule(total_steps, warmup, unet, te,
                    warmup_ignored=cfg.lr_warmup_steps > 0 and not has_warmup(cfg.lr_scheduler), loraplus=plus,
                    block_weights=_block_weights(cfg))


def _block_weights(cfg) -> dict[float, list[int]]:
    """down/mid/up_lr_weight: {weight: blocks} for the weights other than 1 and 0 (a 0 block has no
    modules); {} without them or while they cannot be read (validation reports that)."""
    try:
        weights = lr_weights(cfg.network_args_dict(), cfg.sdxl) if cfg.network_module == "networks.lora" else None
    except ConfigError:
        return {}
    out: dict[float, list[int]] = {}
    for block, weight in enumerate(weights or []):
        if weight not in (0.0, 1.0):
            out.setdefault(weight, []).append(block)
    return out


def _loraplus(cfg) -> dict[str, float | None]:
    """The ratios, or none while network_args cannot be read (validation reports that)."""
    try:
        return cfg.loraplus_ratios() if cfg.network_module == "networks.lora" else {}
    except ConfigError:
        return {}
