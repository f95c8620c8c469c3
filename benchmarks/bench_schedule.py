"""Schedule benchmark → benchmarks/out/schedule.json (measured, not asserted).

`make_schedule(cfg, 10_000)` — both curves (UNet and text encoder), every scheduler — once to
warm up, then the median of 21 runs per scheduler; the target is under 0.1 s each. The floor in
the same run is the cheapest possible curve: a bare list comprehension of 2 × 10,000 floats.

Run: python benchmarks/bench_schedule.py [--steps 10000]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

from workbench.config.schema import SCHEDULERS, TrainConfig
from workbench.fileio import write_json_atomic
from workbench.planning.schedules import make_schedule

OUT = Path(__file__).resolve().parent / "out" / "schedule.json"
RUNS = 21
TARGET_S = 0.1


def median_seconds(fn) -> float:
    fn()                                   # warm
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    args = parser.parse_args()
    per_scheduler = {}
    for name in SCHEDULERS:
        cfg = TrainConfig(lr_scheduler=name, optimizer_type="Adafactor" if name == "adafactor" else "AdamW",
                          lr_warmup_steps=0.05, lr_scheduler_num_cycles=3, lr_scheduler_power=2.0)
        per_scheduler[name] = round(median_seconds(lambda: make_schedule(cfg, args.steps)), 5)
    floor = median_seconds(lambda: ([1e-4 * s for s in range(args.steps)], [1e-4 * s for s in range(args.steps)]))
    result = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
              f"{platform.python_implementation()} {platform.python_version()}", "steps": args.steps,
              "seconds": per_scheduler, "slowest_s": max(per_scheduler.values()), "floor_s": round(floor, 5),
              "target_s": TARGET_S}
    write_json_atomic(OUT, result)
    print(result)


if __name__ == "__main__":
    main()
