"""`workbench plan CONFIG [--json]`."""
from __future__ import annotations

import argparse

from workbench.commands._common import load_config, print_json, refuse_config_errors
from workbench.planning.estimate import estimate, gpu_name
from workbench.planning.plan import Plan, make_plan
from workbench.runs.registry import list_runs


def add_arguments(parser) -> None:
    parser.add_argument("config", help="config TOML")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument("--estimate", action="store_true", help="with --json: add {\"estimate\": {seconds, "
                        "peak_gpu_gib, basis}} (the text output always ends with it)")
    parser.add_argument("--num-processes", type=positive_int, default=1, help="GPUs the run will use (default 1)")


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def run(args) -> int:
    cfg = load_config(args.config)
    refuse_config_errors(cfg)
    plan = make_plan(cfg, num_processes=args.num_processes)
    if args.json:     # the plan's JSON keys are a contract: the estimate joins them only when asked
        extra = {"estimate": estimate_json(run_estimate(cfg, plan.total_steps))} if args.estimate else {}
        print_json({**plan.to_json(), **extra})
    else:
        print(summary(plan) + f"\nEstimate:          {run_estimate(cfg, plan.total_steps).line()}")
    return 0


def estimate_json(found) -> dict:
    return {"seconds": found.seconds, "peak_gpu_gib": found.peak_gib, "basis": found.basis}


def run_estimate(cfg, total_steps: int):
    """Time and peak GPU memory from this workspace's finished runs and the GPU table."""
    return estimate(cfg, total_steps, list_runs(), gpu_name())


def summary(plan: Plan) -> str:
    lines = ["Subsets:"]
    for s in plan.dataset.subsets:
        kind = "reg  " if s.is_reg else "train"
        lines.append(f"  {kind} {s.name:<30} repeats {s.repeats:>4}  images {len(s.images):>6}  "
                     f"captioned {s.captioned:>6}  class '{s.class_tokens}'")
    for folder, why in plan.dataset.skipped:
        lines.append(f"  skipped {folder}: {why}")
    lines += [f"Train images × repeats: {plan.num_train_images}",
              f"Reg images × repeats:   {plan.num_reg_images} (balanced to {sum(i.repeats for i in plan.images if i.is_reg)})",
              "", f"{'bucket':>12}  {'images×repeats':>14}  {'batches':>8}"]
    for (w, h), count in plan.buckets.items():
        lines.append(f"{w:>5} × {h:<5}  {count:>14}  {-(-count // plan.train_batch_size):>8}")
    lines += ["", f"Batches per epoch: {plan.batches_per_epoch} (batch size {plan.train_batch_size}, "
              "each bucket rounded up to whole batches)",
              f"Steps per epoch:   {plan.steps_per_epoch} (÷ {plan.gradient_accumulation_steps} accumulation"
              f", ÷ {plan.num_processes} processes, rounded up)",
              f"Epochs:            {plan.epochs}",
              f"Total steps:       {plan.total_steps}"]
    if plan.validation_images:
        lines += ["", f"Held out for validation: {len(plan.validation_images)} images "
                  f"({plan.num_validation_images} with repeats), {plan.validation_batches} batches × "
                  f"timesteps {list(plan.validation_timesteps)}; seed {plan.split_seed}"]
    return "\n".join(lines)
