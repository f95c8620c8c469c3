"""Data for the Parameters page's LR chart: the UNet and text-encoder curves from
workbench.planning.schedules (the functions the trainer runs) and the steps worth marking on them.

Steps are 1-based optimizer steps, as in metrics.jsonl: step s trains at the LR of schedule index
s − 1. Markers: the end of warmup, each cosine restart, the step after which the text encoder
stops learning, and each save (every save_every_n_epochs epochs, then the final file).
"""
from __future__ import annotations

from dataclasses import dataclass

from workbench.planning.schedules import lr_lambda, make_schedule, stop_text_encoder_step
from workbench.runs.outputs import saves_epoch, saves_step
from workbench.views.step_breakdown import warmup_of

MAX_POINTS = 1500     # per curve; a 10,000-step run is thinned to this, markers kept exact
UNET, TEXT_ENCODER = "UNet", "Text encoder"


@dataclass(frozen=True)
class Marker:
    step: int
    kind: str      # "warmup" | "restart" | "stop_te" | "save"
    label: str


def restart_steps(cfg, total_steps: int) -> list[int]:
    """Steps where the LR jumps back up after warmup (cosine_with_restarts' cycles), read off the
    schedule itself rather than re-deriving the cycle formula."""
    warmup = warmup_of(cfg, total_steps)
    f = lr_lambda(cfg.lr_scheduler, warmup, total_steps, cfg.lr_scheduler_num_cycles, cfg.lr_scheduler_power)
    return [s + 1 for s in range(warmup + 1, total_steps) if f(s) > f(s - 1) + 1e-12]


def save_steps(cfg, steps_per_epoch: int, epochs: int, total_steps: int) -> list[tuple[int, str]]:
    """(step, label) of each save: every save_every_n_epochs epochs before the last one (the
    last epoch's file is the final one, as in sd-scripts), every save_every_n_steps steps, then
    the final save."""
    saves = [(epoch * steps_per_epoch, f"save (epoch {epoch})") for epoch in range(1, epochs + 1)
             if saves_epoch(cfg, epoch, epochs) and epoch * steps_per_epoch < total_steps]   # the trainer's rule
    saves += [(step, f"save (step {step})") for step in range(1, total_steps) if saves_step(cfg, step)]
    return sorted(saves) + [(total_steps, "final save")]


def markers(cfg, total_steps: int, steps_per_epoch: int, epochs: int) -> list[Marker]:
    out = []
    warmup = warmup_of(cfg, total_steps)
    if warmup:
        out.append(Marker(warmup, "warmup", f"warmup ends (step {warmup})"))
    out += [Marker(s, "restart", f"restart (step {s})") for s in restart_steps(cfg, total_steps)]
    stop = stop_text_encoder_step(cfg, total_steps)
    if stop is not None:
        out.append(Marker(stop, "stop_te", f"text encoder stops (step {stop})"))
    out += [Marker(s, "save", label) for s, label in save_steps(cfg, steps_per_epoch, epochs, total_steps)]
    return out


def sampled_steps(total_steps: int, keep: list[int], max_points: int = MAX_POINTS) -> list[int]:
    """1-based steps to draw: all of them for a short run, else an even thinning that keeps
    the first and last step and each marked step with its neighbours (so jumps stay sharp)."""
    if total_steps <= max_points:
        return list(range(1, total_steps + 1))
    stride = -(-total_steps // max_points)
    chosen = set(range(1, total_steps + 1, stride)) | {total_steps}
    for s in keep:
        chosen |= {x for x in (s - 1, s, s + 1) if 1 <= x <= total_steps}
    return sorted(chosen)


def chart_frames(cfg, total_steps: int, steps_per_epoch: int, epochs: int):
    """(curves, markers) as pandas DataFrames: curves has step, lr, curve (UNet / Text encoder;
    the text encoder only when it trains, at 0 after it stops; with LoRA+ also each part's lora_up
    group); markers has step, kind, label."""
    import pandas as pd
    schedule = make_schedule(cfg, total_steps)
    marks = markers(cfg, total_steps, steps_per_epoch, epochs)
    steps = sampled_steps(total_steps, [m.step for m in marks])
    rows = [(s, schedule.unet[s - 1], UNET) for s in steps]
    if cfg.trains_text_encoder():
        stop = stop_text_encoder_step(cfg, total_steps) or total_steps
        rows += [(s, schedule.text_encoder[s - 1] if s <= stop else 0.0, TEXT_ENCODER) for s in steps]
    for part, label in (("unet", UNET), ("text_encoder", TEXT_ENCODER)):
        if part in schedule.loraplus:       # LoRA+: the lora_up group at ratio × the part's LR
            plus, stop = schedule.plus_curve(part), stop_text_encoder_step(cfg, total_steps) or total_steps
            name = f"{label} LoRA+ up ×{schedule.loraplus[part]:g}"
            rows += [(s, plus[s - 1] if part == "unet" or s <= stop else 0.0, name) for s in steps]
    for weight, blocks in schedule.block_weights.items():      # down/mid/up_lr_weight: weight × the UNet's
        name = f"UNet ×{weight:g} (blocks {', '.join(map(str, blocks))})"
        rows += [(s, weight * schedule.unet[s - 1], name) for s in steps]
    curves = pd.DataFrame(rows, columns=["step", "lr", "curve"])
    marker_frame = pd.DataFrame([(m.step, m.kind, m.label) for m in marks], columns=["step", "kind", "label"])
    return curves, marker_frame
