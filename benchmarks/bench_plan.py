"""Plan benchmark → benchmarks/out/plan.json (measured, not asserted).

A dataset of 10,000 real images (PNG and JPEG, sizes 128–1024 px of varied aspects, in 10
`<repeats>_<name>` folders, 9 in 10 with a .txt caption) is generated once into a cache folder
(WORKBENCH_BENCH_CACHE, default ~/.cache/lora-workbench-bench) and reused. Then, alternated,
3 tries each, best kept:

- plan: `make_plan(cfg)` — scan (listing, image headers, captions), buckets, repeats, steps;
- floor: a bare loop doing only the unavoidable I/O: list each folder, open each image's header
  with PIL (`Image.open(p).size`), read each caption's first line.
  plan_vs_floor = plan seconds / floor seconds; the target is 1.5 or less.

Run: python benchmarks/bench_plan.py [--images 10000]
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from datetime import date
from pathlib import Path

from workbench.config.schema import TrainConfig
from workbench.fileio import write_json_atomic
from workbench.planning.plan import make_plan

OUT = Path(__file__).resolve().parent / "out" / "plan.json"
FOLDERS = 10
TRIES = 3
TARGET = 1.5


def cache_dir(images: int) -> Path:
    root = os.environ.get("WORKBENCH_BENCH_CACHE") or Path.home() / ".cache" / "lora-workbench-bench"
    return Path(root) / f"plan-{images}"


def generate(root: Path, images: int) -> None:
    """Write the dataset once; a finished marker makes a half-written cache start over."""
    from PIL import Image
    if (root / "done").exists():
        return
    rng = random.Random(0)
    for i in range(images):
        folder = root / f"{i % FOLDERS + 1}_subject{i % FOLDERS}"
        folder.mkdir(parents=True, exist_ok=True)
        size = (rng.randrange(128, 1025, 8), rng.randrange(128, 1025, 8))
        path = folder / f"img{i:05d}.{'png' if i % 2 else 'jpg'}"
        Image.new("RGB", size, (i % 256, 80, 160)).save(path)
        if i % 10:
            path.with_suffix(".txt").write_text(f"subject{i % FOLDERS}, tag{i % 37}, tag{i % 11}\n")
    (root / "done").write_text("ok")


def floor(root: Path) -> int:
    """The unavoidable work: list, read each header, read each caption's first line."""
    from PIL import Image
    found = 0
    for folder in sorted(os.listdir(root)):
        base = root / folder
        if not base.is_dir():
            continue
        for name in os.listdir(base):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in (".png", ".jpg"):
                continue
            with Image.open(base / name) as im:
                im.size
            try:
                with open(base / (stem + ".txt"), encoding="utf-8") as f:
                    f.readline()
            except FileNotFoundError:
                pass
            found += 1
    return found


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args()
    root = cache_dir(args.images)
    started = time.perf_counter()
    generate(root, args.images)
    print(f"dataset: {root} ({time.perf_counter() - started:.1f} s to make or find)", file=sys.stderr)
    cfg = TrainConfig(train_data_dir=str(root), max_train_epochs=1)
    assert floor(root) == len(make_plan(cfg).images) == args.images
    plans, floors = [], []
    for _ in range(TRIES):
        floors.append(timed(lambda: floor(root)))
        plans.append(timed(lambda: make_plan(cfg)))
    result = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
              f"{platform.python_implementation()} {platform.python_version()}", "images": args.images,
              "plan_s": round(min(plans), 4), "floor_s": round(min(floors), 4),
              "plan_vs_floor": round(min(plans) / min(floors), 3), "target_vs_floor": TARGET}
    write_json_atomic(OUT, result)
    print(result)


if __name__ == "__main__":
    main()
