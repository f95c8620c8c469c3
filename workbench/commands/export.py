"""`workbench export CONFIG [-o DIR] [--force]`."""
from __future__ import annotations

import sys
from pathlib import Path

from workbench.commands._common import load_config, refuse_config_errors
from workbench.config.kohya import export_sd_scripts, write_new

DESCRIPTION = """the sd-scripts job that runs the same training: its config TOML (sd-scripts' own key
names, workbench-only keys left out) and the `accelerate launch ... train_network.py
--config_file ...` command (sdxl_train_network.py for SDXL), run from your sd-scripts folder.

Without -o the TOML is printed, the command as its first comment line, so
`workbench export my.toml > job.toml` works. With -o DIR the TOML is written to
DIR/<output_name>.sd-scripts.toml (never replaced unless --force) and the command printed.
What was left out or added, and why, goes to stderr."""


def add_arguments(parser) -> None:
    parser.add_argument("config", help="config TOML")
    parser.add_argument("-o", "--output-dir", help="folder to write the sd-scripts TOML into")
    parser.add_argument("--force", action="store_true", help="replace the TOML if it exists")


def run(args) -> int:
    cfg = load_config(args.config)
    refuse_config_errors(cfg)
    job = export_sd_scripts(cfg)
    for note in job.notes:
        print(f"note: {note}", file=sys.stderr)
    if not args.output_dir:
        print(f"# {job.command(job.file_name)}\n{job.toml()}", end="")
        return 0
    path = write_new(job.toml(), Path(args.output_dir) / job.file_name, args.force)
    print(job.command(str(path.absolute())))
    return 0
