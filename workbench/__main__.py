"""The `workbench` command line. Each command lives in workbench/commands/<name>.py with
`add_arguments(parser)` and `run(args) -> exit code`; only the chosen one is imported, so
`workbench --help` stays fast and never imports torch.

Every error is one line on stderr and a non-zero exit, never a traceback: a UserError is the
user's input (exit 1), an OSError names the file (exit 1), a bad command line exits 2, and
anything else is a workbench bug, said as such (WORKBENCH_DEBUG=1 shows the traceback)."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from workbench.errors import UserError

COMMANDS = {
    "plan": "buckets, repeats, reg balancing and total steps of a config's dataset",
    "schedule": "the learning rate of every optimizer step",
    "check": "preflight: what would fail or silently surprise before a run",
    "train": "run the trainer in the foreground with live progress",
    "models": "base models to pick from (recent, Hugging Face cache, A1111/ComfyUI folders) with their family",
    "demo": "build the offline demo: tiny models, dataset and configs",
    "inspect": "describe a LoRA .safetensors from its header; verify its hash",
    "import-kohya": "convert a kohya_ss GUI JSON or sd-scripts TOML into a workbench config",
    "export": "the sd-scripts command (and TOML) that runs the same job",
    "caption": "tag or caption a dataset's images with a WD14 tagger or an image-to-text model",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr (exit 2), not usage + error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def load_command(name: str):
    try:
        return importlib.import_module(f"workbench.commands.{name.replace('-', '_')}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("workbench.commands"):
            return None
        raise


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="workbench", description="LoRA Workbench: plan, check, train and "
                           "inspect Stable Diffusion LoRAs the way kohya-ss/sd-scripts does.")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, help in COMMANDS.items():
        module = load_command(name) if name == command else None
        sub = subs.add_parser(name, help=help, description=getattr(module, "DESCRIPTION", help),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        if module is not None:
            module.add_arguments(sub)
            sub.set_defaults(run=module.run)
    return parser


def run_command(args) -> int:
    try:
        return args.run(args)
    except UserError as exc:
        print(f"workbench {args.command}: error: {exc}", file=sys.stderr)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"workbench {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"workbench {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in the workbench, not the user's input
        if os.environ.get("WORKBENCH_DEBUG"):
            raise
        print(f"workbench {args.command}: internal error: {exc.__class__.__name__}: {exc} "
              "(a workbench bug; WORKBENCH_DEBUG=1 shows the traceback)", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in COMMANDS and load_command(command) is None:
        print(f"workbench {command}: error: this command is not part of this install yet", file=sys.stderr)
        return 1
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0 if not argv else 2
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
