"""The Dataset page's tables and filter, on real image folders through the real plan."""
from __future__ import annotations

import pytest

from tests.conftest import make_image
from workbench.config.schema import new_config
from workbench.planning.plan import make_plan
from workbench.views.dataset_tables import (
    ImageFilter,
    bucket_assignment_rows,
    bucket_histogram_rows,
    caption_of,
    filter_images,
    subset_rows,
    top_tags,
)


@pytest.fixture
def plan(tmp_path):
    train, reg = tmp_path / "train", tmp_path / "reg"
    make_image(train / "2_sks dog" / "wide.png", (1024, 512))
    (train / "2_sks dog" / "wide.txt").write_text("Sks Dog, Beach, sks dog", encoding="utf-8")
    make_image(train / "2_sks dog" / "square.png", (512, 512))
    (train / "2_sks dog" / "square.txt").write_text("sks dog, snow", encoding="utf-8")
    make_image(train / "2_sks dog" / "bare.png", (512, 512))
    for i in range(8):
        make_image(reg / "1_dog" / f"r{i}.png", (512, 512))
    cfg = new_config(train_data_dir=str(train), reg_data_dir=str(reg), resolution="512,512")
    return make_plan(cfg)


def test_subset_rows(plan):
    assert subset_rows(plan.dataset) == [
        {"folder": "2_sks dog", "kind": "train", "repeats": 2, "class tokens": "sks dog", "images": 3, "captioned": 2},
        {"folder": "1_dog", "kind": "reg", "repeats": 1, "class tokens": "dog", "images": 8, "captioned": 0}]


def test_bucket_assignment_rows_show_resize_and_crop(plan):
    wide = next(r for r in bucket_assignment_rows(plan) if r["image"] == "wide.png")
    assert wide == {"image": "wide.png", "folder": "2_sks dog", "size": "1024×512", "bucket": "704×320",
                    "resized": "704×352", "crop": "0×32", "repeats": 2}
    assert len(bucket_assignment_rows(plan)) == 11


def test_bucket_histogram_counts_distinct_images_and_repeats(plan):
    # T = 3 images × 2 = 6: reg images are taken one repeat each until 6; 2 are left unused
    assert bucket_histogram_rows(plan) == [{"bucket": "512×512", "images": 8, "with repeats": 10},
                                           {"bucket": "704×320", "images": 1, "with repeats": 2}]


@pytest.mark.parametrize("image_filter, names", [
    (ImageFilter(uncaptioned=True), {"bare.png"} | {f"r{i}.png" for i in range(8)}),
    (ImageFilter(tag="BEACH"), {"wide.png"}),
    (ImageFilter(tag="sks dog", bucket="512×512"), {"square.png", "bare.png"}),
    (ImageFilter(text="squ"), {"square.png"}),
    (ImageFilter(text="SNOW"), {"square.png"}),
    (ImageFilter(bucket="704×320", uncaptioned=True), set()),
])
def test_filter(plan, image_filter, names):
    assert {im.info.path.name for im in filter_images(plan, image_filter)} == names


def test_top_tags_count_training_captions_the_sd_scripts_way(plan):
    # "Sks Dog" and "sks dog" in wide.txt count twice; bare.png trains on (and counts) its class tokens
    tags = top_tags(plan.dataset)
    assert tags[0] == {"tag": "sks dog", "count": 4}
    assert sorted(tags[1:], key=lambda t: t["tag"]) == [{"tag": "beach", "count": 1}, {"tag": "snow", "count": 1}]
    assert {"tag": "dog", "count": 8} in top_tags(plan.dataset, include_reg=True)


def test_caption_of_tells_a_missing_file_from_an_empty_caption(plan, tmp_path):
    by_name = {im.info.path.name: im.info for im in plan.images}
    path, shown = caption_of(by_name["bare.png"], ".txt")
    assert (path.name, shown) == ("bare.txt", None)
    assert caption_of(by_name["square.png"], ".txt")[1] == "sks dog, snow"
