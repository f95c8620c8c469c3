"""What a run writes and under which names, as sd-scripts names them: NAME.EXT at the end,
NAME-000001.EXT every save_every_n_epochs, NAME-step00000500.EXT every save_every_n_steps,
NAME-stopped-stepN.EXT on Stop, NAME-state/ folders
for resuming; save_last_n_* delete the saves that fall out of the last N, as sd-scripts does. One rule for the trainer (it refuses to start over an existing file), preflight and
the Training page (which offers a free name instead)."""
from __future__ import annotations

import re
from pathlib import Path

# ---------------------------------------------------------------- names

def lora_path(cfg, tag: str = "") -> Path:
    """<output_dir>/<output_name>[-<tag>].<save_model_as>"""
    name = f"{cfg.output_name}-{tag}" if tag else cfg.output_name
    return Path(cfg.output_dir).expanduser() / f"{name}.{cfg.save_model_as}"


def epoch_tag(epoch: int) -> str:
    return f"{epoch:06d}"


def step_tag(step: int) -> str:
    return f"step{step:08d}"


def stopped_tag(step: int) -> str:
    return f"stopped-step{step}"


def state_dir(lora: Path) -> Path:
    return lora.with_name(f"{lora.stem}-state")


def saves_epoch(cfg, epoch: int, epochs: int) -> bool:
    """sd-scripts saves every N epochs except after the last one (that is the final file)."""
    return bool(cfg.save_every_n_epochs) and epoch % cfg.save_every_n_epochs == 0 and epoch < epochs


def saves_step(cfg, step: int) -> bool:
    """sd-scripts saves every N steps, the last step too (the final file is written as well)."""
    return bool(cfg.save_every_n_steps) and step % cfg.save_every_n_steps == 0


def samples_step(cfg, step: int) -> bool:
    """sample_every_n_steps, which sd-scripts ignores when sample_every_n_epochs is set."""
    every = cfg.sample_every_n_steps
    return bool(every) and not cfg.sample_every_n_epochs and step % every == 0


def removed_epoch(cfg, epoch: int, state: bool = False) -> int | None:
    """save_last_n_epochs (sd-scripts' get_remove_epoch_no): saving epoch E deletes the save of
    epoch E − save_every_n_epochs × N, the oldest beyond the last N. For state folders
    save_last_n_epochs_state decides when set. None: nothing to delete."""
    keep = (cfg.save_last_n_epochs_state if state else None) or cfg.save_last_n_epochs
    if keep is None or not cfg.save_every_n_epochs:
        return None
    old = epoch - cfg.save_every_n_epochs * keep
    return old if old > 0 else None          # sd-scripts allows 0, which is never saved


def removed_step(cfg, step: int, state: bool = False) -> int | None:
    """save_last_n_steps (sd-scripts' get_remove_step_no): saving step S deletes the step save at
    S − N − 1 rounded down to a multiple of save_every_n_steps, so about N steps of saves remain.
    For state folders save_last_n_steps_state decides when set."""
    keep = (cfg.save_last_n_steps_state if state else None) or cfg.save_last_n_steps
    if keep is None or not cfg.save_every_n_steps:
        return None
    old = step - keep - 1
    old -= old % cfg.save_every_n_steps
    return old if old > 0 else None


def superseded(cfg, lora: Path, epoch: int | None, step: int | None) -> list[Path]:
    """The earlier LoRA file and state folder that saving `lora` (the save of `epoch` or of
    `step` when epoch is None) makes too old to keep, by save_last_n_* (existing or not)."""
    if epoch is not None:
        old_file, old_state = removed_epoch(cfg, epoch), removed_epoch(cfg, epoch, state=True)
        tag = epoch_tag
    else:
        old_file, old_state = removed_step(cfg, step), removed_step(cfg, step, state=True)
        tag = step_tag
    paths = [lora_path(cfg, tag(old_file))] if old_file else []
    return paths + ([state_dir(lora_path(cfg, tag(old_state)))] if old_state and cfg.save_state else [])


def planned_outputs(cfg, epochs: int, first_epoch: int = 1, total_steps: int = 0, first_step: int = 1) -> list[Path]:
    """Every file and state folder a run from `first_epoch` / `first_step` to the end will write."""
    loras = [lora_path(cfg, epoch_tag(e)) for e in range(first_epoch, epochs + 1) if saves_epoch(cfg, e, epochs)]
    loras += [lora_path(cfg, step_tag(s)) for s in range(first_step, total_steps + 1) if saves_step(cfg, s)]
    loras.append(lora_path(cfg))
    states = [state_dir(p) for p in loras] if cfg.save_state else []
    return loras + states + ([state_dir(lora_path(cfg))] if cfg.save_state_on_train_end and not cfg.save_state else [])


def unique_path(path: Path) -> Path:
    """`path`, or `stem-2.ext`, `stem-3.ext` … when taken (for stop saves, which cannot be planned)."""
    n, candidate = 1, path
    while candidate.exists() or state_dir(candidate).exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def existing_outputs(cfg, epochs: int | None = None) -> list[Path]:
    """The files a run would write that already exist. Without the epoch count (no plan yet), every
    per-epoch save of that name counts, so nothing is missed."""
    last = lora_path(cfg)
    per_step = sorted(last.parent.glob(f"{cfg.output_name}-step{'[0-9]' * 8}.{cfg.save_model_as}")) \
        if cfg.save_every_n_steps else []      # without the step count every step save of that name counts
    if epochs is not None:
        found = [p for p in planned_outputs(cfg, epochs) if p.exists()] + per_step
    else:
        per_epoch = sorted(last.parent.glob(f"{cfg.output_name}-{'[0-9]' * 6}.{cfg.save_model_as}"))
        found = ([last] if last.exists() else []) + per_epoch + per_step
    return sorted(set(found), key=lambda p: (p == last, str(p)))     # in the order a run writes them: the final last


def free_output_name(cfg, epochs: int | None = None) -> str:
    """output_name, or NAME-2, NAME-3 … : the first name none of whose outputs exist yet. A name
    that already is such a suggestion counts on (demo-lora-2 → demo-lora-3, not demo-lora-2-2)."""
    numbered = re.fullmatch(r"(?P<base>.+)-(?P<n>[2-9]|[1-9]\d{1,3})", cfg.output_name)
    base, n = (numbered["base"], int(numbered["n"])) if numbered else (cfg.output_name, 1)
    name = cfg.output_name
    while existing_outputs(cfg.replace(output_name=name), epochs):
        n += 1
        name = f"{base}-{n}"
    return name


def earlier_outputs(cfg) -> set[Path]:
    """The files the run being resumed saved before its state (epoch and step saves up to where it
    stopped): a resumed run does not write them again, so they are not 'overwritten'."""
    import json
    if not cfg.resume:
        return set()
    try:
        progress = json.loads((Path(cfg.resume).expanduser() / "train_state.json").read_text())
        epochs, step = int(progress.get("epoch", 0)), int(progress.get("step", 0))
    except (OSError, ValueError, TypeError):
        return set()
    # epochs + 1: the epochs done were not the run's last, so each of them saved as planned
    final = set(planned_outputs(cfg.replace(save_every_n_epochs=None, save_every_n_steps=None), 0))
    return set(planned_outputs(cfg, epochs + 1, 1, step, 1)) - final
