"""Where a run's scalars go besides metrics.jsonl, sd-scripts' log_with: TensorBoard (its folder:
logging_dir, else the run's tb/; with log_prefix a <prefix><YYYYmmddHHMMSS> folder inside, as
sd-scripts names it), Weights & Biases, or both ("all"). wandb is an optional extra; its API key
is read by wandb itself from WANDB_API_KEY (or its own login) and never passes through the
workbench, so no config, run folder or LoRA can hold it. WANDB_MODE=offline logs to the run folder."""
from __future__ import annotations

import time
from pathlib import Path

from workbench.errors import UserError

DEFAULT_PROJECT = "network_train"     # sd-scripts' tracker name when log_tracker_name is empty


def uses_tensorboard(cfg) -> bool:
    return cfg.log_with in ("tensorboard", "all")


def uses_wandb(cfg) -> bool:
    return cfg.log_with in ("wandb", "all")


def tensorboard_folder(cfg, run_dir: Path, started: float | None = None) -> Path:
    base = Path(cfg.logging_dir).expanduser() if cfg.logging_dir else Path(run_dir) / "tb"
    if not cfg.log_prefix:
        return base
    return base / f"{cfg.log_prefix}{time.strftime('%Y%m%d%H%M%S', time.localtime(started or time.time()))}"


def open_wandb(cfg, run_dir: Path):
    """A wandb run: project log_tracker_name (or sd-scripts' "network_train"), name wandb_run_name,
    files under the run folder, the config (which holds no secret) as its config."""
    try:
        import wandb
    except ImportError:
        raise UserError("log_with: wandb is not installed; pip install 'lora-workbench[wandb]' or log to "
                        "tensorboard") from None
    return wandb.init(project=cfg.log_tracker_name or DEFAULT_PROJECT, name=cfg.wandb_run_name or None,
                      dir=str(run_dir), config=cfg.to_dict())


def close_wandb(run) -> None:
    """Finish the run and stop wandb's service, which writes out what it still holds (offline: the
    .wandb file) before the trainer process ends."""
    import wandb
    run.finish()
    wandb.teardown()
