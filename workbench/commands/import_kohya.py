"""`workbench import-kohya IN -o OUT.toml [--force]`."""
from __future__ import annotations

from workbench.config.kohya import import_file, write_new

DESCRIPTION = """convert a kohya_ss GUI config JSON or an sd-scripts config TOML into a workbench config.

Prints one line per key of the input: mapped (to which workbench key and value), ignored (why),
default (sd-scripts' or the workbench's default used), dropped (a secret such as wandb_api_key or
huggingface_token: never copied). OUT is written atomically and never replaced unless --force."""


def add_arguments(parser) -> None:
    parser.add_argument("input", help="kohya_ss GUI .json or sd-scripts .toml")
    parser.add_argument("-o", "--output", required=True, help="the workbench config TOML to write")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def run(args) -> int:
    imported = import_file(args.input)
    out = write_new(imported.config, args.output, args.force)
    print(f"{args.input} ({imported.source}) -> {out}")
    if imported.report:
        print(imported.text())
    print(f"Next: workbench check {out}")
    return 0
