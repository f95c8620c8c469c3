"""The current config (the workspace's current.toml), read and written by every page: one place, so
a page never holds a copy that differs from the disk."""
from __future__ import annotations

from workbench import workspace
from workbench.config.schema import TrainConfig, new_config


def current_config() -> TrainConfig:
    """The config on disk, read inside a callback (which runs before the page reads it)."""
    return workspace.load_current() or new_config()


def save_config(cfg: TrainConfig) -> None:
    workspace.save_current(cfg)
