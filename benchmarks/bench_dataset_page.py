"""First render of the Dataset page on 5,000 images once their thumbnails are cached (target < 2 s).

Builds 5,000 real images (five `<repeats>_<name>` folders, several sizes, two thirds captioned) in
a temporary workspace, renders the page once to fill the thumbnail cache, then measures a first
render with Streamlit's caches cleared — what a new app process pays — through AppTest, plus the
page's data functions on their own. Writes benchmarks/out/dataset_page.json.

    python benchmarks/bench_dataset_page.py [--images 5000]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "dataset_page.json"
SIZES = [(512, 512), (768, 512), (512, 768), (640, 480), (1024, 576)]
TARGET_S = 2.0


def build_dataset(root: Path, count: int) -> Path:
    from PIL import Image
    train = root / "train"
    for i in range(count):
        folder = train / f"{i % 5 + 1}_subject{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", SIZES[i % len(SIZES)], (i % 251, (i * 7) % 251, 90))
        image.save(folder / f"img{i:05d}.png", compress_level=1)     # fast to write; only headers are read
        if i % 3:
            (folder / f"img{i:05d}.txt").write_text(f"subject{i % 5}, tag{i % 17}, tag{i % 29}", encoding="utf-8")
    return train


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def render_page():
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / "app_pages" / "1_Dataset.py"), default_timeout=120)
    at.run()
    if at.exception:
        raise SystemExit(f"the page raised: {at.exception[0].message}")
    return at


def data_functions(cfg) -> dict:
    """Seconds of each data step the page takes on a first render, without Streamlit."""
    from workbench.dataset.scan import scan_config
    from workbench.dataset.thumbnails import thumbnails
    from workbench.planning.plan import make_plan
    from workbench.views.dataset_tables import ImageFilter, bucket_assignment_rows, filter_images, top_tags
    dataset, scan_s = timed(lambda: scan_config(cfg))
    plan, plan_s = timed(lambda: make_plan(cfg, dataset=dataset))
    images, filter_s = timed(lambda: filter_images(plan, ImageFilter()))
    _, thumbs_s = timed(lambda: thumbnails([im.info.path for im in images[:24]], square=True))   # as the grid asks
    _, tables_s = timed(lambda: (bucket_assignment_rows(plan), top_tags(dataset)))
    return {"scan_s": scan_s, "plan_s": plan_s, "filter_s": filter_s, "cached_thumbnails_page_s": thumbs_s,
            "tables_s": tables_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WORKBENCH_HOME"] = str(Path(tmp) / "home")
        import streamlit as st

        from workbench import workspace
        from workbench.config.schema import TrainConfig
        train, build_s = timed(lambda: build_dataset(Path(tmp), args.images))
        cfg = TrainConfig(train_data_dir=str(train), output_dir=str(Path(tmp) / "out"))
        workspace.save_current(cfg)
        _, warm_s = timed(render_page)                 # fills the thumbnail cache of the first grid page
        st.cache_data.clear()
        st.cache_resource.clear()
        at, first_s = timed(render_page)
        _, rerun_s = timed(lambda: at.run())
        steps = data_functions(cfg)
    result = {"benchmark": "dataset_page_first_render", "images": args.images,
              "first_render_s": round(first_s, 3), "target_s": TARGET_S, "within_target": first_s < TARGET_S,
              "rerun_s": round(rerun_s, 3), "render_filling_thumbnails_s": round(warm_s, 3),
              "data_steps_s": {k: round(v, 4) for k, v in steps.items()}, "dataset_build_s": round(build_s, 1),
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
              "date": time.strftime("%Y-%m-%d")}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
