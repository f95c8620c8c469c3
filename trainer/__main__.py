"""`python -m trainer RUN_DIR`: train the run whose frozen config is RUN_DIR/config.toml.

Several GPUs: `accelerate launch --num_processes N -m trainer RUN_DIR`."""
from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m trainer RUN_DIR", file=sys.stderr)
        return 2
    if not (Path(argv[0]) / "config.toml").is_file():
        print(f"trainer: {Path(argv[0]) / 'config.toml'} not found; make the run with `workbench train` "
              "(or workbench.runs.create_run)", file=sys.stderr)
        return 2
    from trainer.recipe import run
    return run(argv[0])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
