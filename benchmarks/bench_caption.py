"""Caption benchmark → benchmarks/out/caption.json (measured, not asserted).

Images per second of a whole caption run (`CaptionRun`: read captions, decode, preprocess, model,
atomic writes) on this machine, for both kinds of model, built tiny and offline like the tests':

- tagger: the WD14-format ONNX tagger of tests/caption_models.py at the real 448 px input side
  (the preprocessing costs what a real tagger's does; the graph itself is tiny), on photos of
  512–1024 px, batch 8 (decoding on a thread per core); beside it the floor: decode + preprocessing
  alone, on one thread, nothing written;
- captioner: the tiny random BLIP (32 px, one layer), max 20 new tokens, greedy, batch 8.

Run: python benchmarks/bench_caption.py [--images 200]
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.caption_models import build_blip, build_tagger  # noqa: E402
from workbench.captioning.run import CaptionRun, collect_items, load_model, open_image  # noqa: E402
from workbench.captioning.settings import CaptionSettings  # noqa: E402
from workbench.captioning.wd14 import _tagger_pixels as tagger_pixels  # noqa: E402
from workbench.fileio import write_json_atomic  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "caption.json"
SIDE = 448
BATCH = 8


def make_images(folder: Path, count: int) -> None:
    from PIL import Image
    rng = random.Random(0)
    folder.mkdir(parents=True)
    for i in range(count):
        size = (rng.randrange(512, 1025, 8), rng.randrange(512, 1025, 8))
        Image.effect_noise(size, 60).convert("RGB").save(folder / f"{i:04d}.jpg", quality=90)


def rate(settings: CaptionSettings, folder: Path) -> tuple[float, str]:
    """images/s of a full overwrite run over `folder` (the model loaded beforehand)."""
    model = load_model(settings)
    items = collect_items(folder, settings.extension)
    start = time.perf_counter()
    tally = CaptionRun(settings, model).run(items)
    assert tally.counts["written"] == len(items), tally.counts
    return len(items) / (time.perf_counter() - start), getattr(model, "device", "?")


def floor_rate(folder: Path) -> float:
    """One thread decoding and preparing each image as the tagger needs it; no model, no writes."""
    items = collect_items(folder, ".txt")
    start = time.perf_counter()
    for item in items:
        tagger_pixels(open_image(item.image), SIDE)
    return len(items) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "1_bench"
        make_images(folder, args.images)
        tagger = build_tagger(tmp / "tagger", side=SIDE)
        blip = build_blip(tmp / "blip")
        floor = floor_rate(folder)
        tag_rate, tag_device = rate(CaptionSettings(str(tagger), existing="overwrite", batch_size=BATCH), folder)
        blip_rate, blip_device = rate(CaptionSettings(str(blip), existing="overwrite", batch_size=BATCH,
                                                      max_length=20), folder)
    result = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
              f"{platform.python_implementation()} {platform.python_version()}", "images": args.images,
              "image_sizes_px": "512–1024 JPEG", "batch_size": BATCH,
              "tagger_images_per_s": round(tag_rate, 2), "tagger_device": tag_device, "tagger_input_side": SIDE,
              "tagger_floor_decode_preprocess_images_per_s": round(floor, 2),
              "captioner_images_per_s": round(blip_rate, 2), "captioner_device": blip_device,
              "captioner_max_new_tokens": 20}
    write_json_atomic(OUT, result)
    print(result)


if __name__ == "__main__":
    main()
