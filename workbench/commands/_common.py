"""Helpers shared by the CLI commands."""
from __future__ import annotations

import json
import sys

from workbench.config import TrainConfig, load_toml


def load_config(path: str, warn_unknown: bool = True) -> TrainConfig:
    """Read a config TOML; unknown keys are reported on stderr (not used, not dropped silently)."""
    cfg, unknown = load_toml(path)
    if unknown and warn_unknown:
        print(f"{path}: unknown keys not used: {', '.join(unknown)}", file=sys.stderr)
    return cfg


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
