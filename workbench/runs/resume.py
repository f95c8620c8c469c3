"""Resume a stopped, failed or crashed run where it left off: a new run of the same frozen
config with `resume` pointing at the run's latest training state, so the trainer continues the
steps, the LR schedule and the data order (trainer/saving.py's state: network, optimizer,
scheduler, RNG, step and position in the epoch).

The trainer keeps RUN_DIR/state — replaced at every save and at Stop — whatever save_state says;
save_state adds sd-scripts' <output_name>-…-state folders beside the LoRA files."""
from __future__ import annotations

from pathlib import Path

from workbench.config.schema import TrainConfig, load_toml
from workbench.errors import UserError
from workbench.runs.outputs import state_dir
from workbench.runs.registry import read_status, run_info

STATE_FOLDER = "state"        # inside the run dir
RESUMABLE_STATES = ("stopped", "failed", "crashed")


def latest_state(run_dir: Path) -> Path | None:
    """The run's own state folder, else the newest <lora>-state folder of its saved outputs."""
    own = Path(run_dir) / STATE_FOLDER
    if (own / "train_state.json").is_file():
        return own
    saved = [state_dir(Path(p)) for p in read_status(run_dir).get("outputs") or []]
    found = [s for s in saved if (s / "train_state.json").is_file()]
    return max(found, key=lambda s: s.stat().st_mtime) if found else None


def resume_config(run_dir: str | Path) -> TrainConfig:
    """The config of a run that continues `run_dir`; UserError (naming the run) when it cannot."""
    run_dir = Path(run_dir).expanduser().absolute()
    if not (run_dir / "config.toml").is_file():
        raise UserError(f"{run_dir}: not a run folder (no config.toml)")
    info = run_info(run_dir)
    if info.state not in RESUMABLE_STATES:
        raise UserError(f"{run_dir.name}: {info.state}; only a stopped, failed or crashed run can be resumed")
    state = latest_state(run_dir)
    if state is None:
        raise UserError(f"{run_dir.name}: no saved training state to resume from (it stopped before its first "
                        "save, or was made before the workbench kept one)")
    cfg, _ = load_toml(run_dir / "config.toml")
    return cfg.replace(resume=str(state))

