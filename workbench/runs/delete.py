"""Deleting a run from the history: its run dir (config, metrics, log, samples, state) goes; the
LoRA files it saved stay unless asked for (with their sd-scripts state folders). A run that is
training or queued is refused: stop it, or take it out of the queue, first."""
from __future__ import annotations

import shutil
from pathlib import Path

from workbench.errors import UserError
from workbench.runs import registry as runs
from workbench.runs.outputs import state_dir


def saved_files(run_dir: Path) -> list[Path]:
    """The LoRA files the run saved that still exist."""
    return [Path(p) for p in runs.read_status(run_dir).get("outputs") or [] if Path(p).is_file()]


def delete_run(run_dir: str | Path, with_loras: bool = False) -> list[Path]:
    """Remove the run (and, with_loras, its saved LoRA files); returns what was removed."""
    run_dir = Path(run_dir)
    info = runs.run_info(run_dir)
    if info.active:
        raise UserError(f"{run_dir.name} is {info.state}: stop it before deleting it")
    if info.state == "queued":
        raise UserError(f"{run_dir.name} is queued: remove it from the queue instead")
    if not (run_dir / "config.toml").is_file():
        raise UserError(f"{run_dir}: not a run folder (no config.toml)")
    removed = []
    if with_loras:
        for lora in saved_files(run_dir):
            lora.unlink()
            shutil.rmtree(state_dir(lora), ignore_errors=True)
            removed.append(lora)
    shutil.rmtree(run_dir)
    return removed + [run_dir]
