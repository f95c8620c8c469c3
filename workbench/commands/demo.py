"""`workbench demo [DIR]`: build the offline demo (tiny random-weight models, dataset, configs)."""
from __future__ import annotations

from workbench import workspace
from workbench.models.demo import RANDOM_WEIGHTS_NOTE, build_demo


def add_arguments(parser) -> None:
    parser.add_argument("dir", nargs="?", help="where to build it (default: the workspace's demo/)")


def run(args) -> int:
    demo = build_demo(args.dir or workspace.demo_dir())
    print(f"Demo in {demo.root}: " + (f"built {', '.join(demo.built)}" if demo.built else "already complete"))
    print(f"  {RANDOM_WEIGHTS_NOTE}.")
    print(f"  SD1 config:  {demo.config}\n  SDXL config: {demo.config_sdxl}")
    print(f"  Train it:    workbench train {demo.config}")
    return 0
