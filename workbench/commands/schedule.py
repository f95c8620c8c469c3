"""`workbench schedule CONFIG [--json]`."""
from __future__ import annotations

import sys

from workbench.commands._common import load_config, print_json, refuse_config_errors
from workbench.errors import UserError
from workbench.planning.plan import make_plan
from workbench.planning.schedules import make_schedule


def add_arguments(parser) -> None:
    parser.add_argument("config", help="config TOML")
    parser.add_argument("--json", action="store_true", help="print the curve as JSON")


def total_steps_of(cfg) -> int:
    """From the plan when the config names a dataset, else max_train_steps."""
    if cfg.train_data_dir:
        return make_plan(cfg).total_steps
    if cfg.max_train_steps <= 0:
        raise UserError("train_data_dir is empty and max_train_steps is 0: give one of them")
    return cfg.max_train_steps


def run(args) -> int:
    cfg = load_config(args.config)
    refuse_config_errors(cfg)
    sched = make_schedule(cfg, total_steps_of(cfg))
    ignored = f"warmup {cfg.lr_warmup_steps:g} ignored: {cfg.lr_scheduler} has no warmup" if sched.warmup_ignored else ""
    if args.json:
        if ignored:
            print(f"{args.config}: note: {ignored}", file=sys.stderr)
        print_json(sched.to_json())
        return 0
    print(f"{cfg.lr_scheduler}: {sched.total_steps} steps, warmup {sched.warmup_steps}" + (f" ({ignored})" if ignored else ""))
    marks = sorted({0, sched.warmup_steps, sched.total_steps // 4, sched.total_steps // 2,
                    3 * sched.total_steps // 4, max(0, sched.total_steps - 1)})
    for s in (m for m in marks if m < sched.total_steps):
        print(f"  step {s:>7}: unet {sched.unet[s]:.3e}   text encoder {sched.text_encoder[s]:.3e}")
    return 0
