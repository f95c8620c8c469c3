"""The workspace: WORKBENCH_HOME (default ~/.lora-workbench) holds the demo, the current config,
runs, the thumbnail cache and settings. Everything the app must keep across a browser refresh
lives here on disk, never only in a Streamlit session."""
from __future__ import annotations

import os
from pathlib import Path

from workbench.config.schema import TrainConfig, load_toml, save_toml


def home() -> Path:
    return Path(os.environ.get("WORKBENCH_HOME") or Path.home() / ".lora-workbench").expanduser()


def runs_dir() -> Path:
    return home() / "runs"


def demo_dir() -> Path:
    return home() / "demo"


def thumbs_dir() -> Path:
    return home() / "thumbs"


def current_config_path() -> Path:
    return home() / "current.toml"


def load_current() -> TrainConfig | None:
    """The config the app is editing, or None when there is none yet."""
    path = current_config_path()
    if not path.is_file():
        return None
    cfg, _ = load_toml(path)
    return cfg


def save_current(cfg: TrainConfig) -> Path:
    return save_toml(cfg, current_config_path())
