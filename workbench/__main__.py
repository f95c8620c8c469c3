"""The `workbench` command line. Each command lives in workbench/commands/<name>.py with
`add_arguments(parser)` and `run(args) -> exit code`; only the chosen one is imported, so
`workbench --help` stays fast and never imports torch."""
from __future__ import annotations

import argparse
import importlib
import sys

from workbench.errors import UserError

COMMANDS = {
    "plan": "buckets, repeats, reg balancing and total steps of a config's dataset",
    "schedule": "the learning rate of every optimizer step",
    "check": "preflight: what would fail or silently surprise before a run",
    "train": "run the trainer in the foreground with live progress",
    "demo": "build the offline demo: tiny models, dataset and configs",
    "inspect": "describe a LoRA .safetensors from its header; verify its hash",
    "import-kohya": "convert a kohya_ss GUI JSON or sd-scripts TOML into a workbench config",
    "export": "the sd-scripts command (and TOML) that runs the same job",
}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="LoRA Workbench: plan, check, train and "
                                     "inspect Stable Diffusion LoRAs the way kohya-ss/sd-scripts does.")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help in COMMANDS.items():
        sub = subs.add_parser(name, help=help, description=help)
        if name == command:
            module = importlib.import_module(f"workbench.commands.{name.replace('-', '_')}")
            module.add_arguments(sub)
            sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0 if not argv else 2
    try:
        return args.run(args)
    except UserError as exc:
        print(f"workbench {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"workbench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
