"""Helpers shared by the CLI commands."""
from __future__ import annotations

import json
import sys

from workbench.config.schema import TrainConfig, load_toml
from workbench.config.validate import errors, validate
from workbench.errors import UserError


def load_config(path: str, warn_unknown: bool = True) -> TrainConfig:
    """Read a config TOML; unknown keys are reported on stderr (not used, not dropped silently)."""
    cfg, unknown = load_toml(path)
    if unknown and warn_unknown:
        print(f"{path}: unknown keys, not used: {', '.join(unknown)}", file=sys.stderr)
    return cfg


def refuse_config_errors(cfg: TrainConfig) -> None:
    """Raise the first validation error as one line (and say how many more there are)."""
    found = errors(validate(cfg))
    if found:
        more = f" (and {len(found) - 1} more: run workbench check)" if len(found) > 1 else ""
        raise UserError(f"{found[0].field}: {found[0].message}{more}")


def print_json(obj) -> None:
    """One write: json.dump would hand an unbuffered stdout (a pipe under PYTHONUNBUFFERED) hundreds of
    thousands of tiny writes for a 10,000-image plan."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()
