"""The plan on real image folders: reg balancing, step counts, bucket modes, the JSON contract."""
from __future__ import annotations

import math

import pytest

from tests.conftest import make_image, write_caption
from workbench.config.schema import TrainConfig
from workbench.planning.plan import PlanError, balance_reg_repeats, count_steps, make_plan


def folders(root, spec):
    """spec: {"folder": [(w, h), ...]} -> real PNGs root/folder/iNN.png."""
    for folder, sizes in spec.items():
        for i, size in enumerate(sizes):
            make_image(root / folder / f"i{i:02d}.png", size)
    return root


def config(tmp_path, train, reg=None, **changes):
    folders(tmp_path / "train", train)
    if reg:
        folders(tmp_path / "reg", reg)
    return TrainConfig(train_data_dir=str(tmp_path / "train"), reg_data_dir=str(tmp_path / "reg") if reg else "",
                       **changes)


def test_reg_larger_than_train_leaves_unused_reg_images_out_of_the_json(tmp_path):
    cfg = config(tmp_path, {"2_cat": [(512, 512)] * 3}, {"1_animal": [(512, 512)] * 10}, max_train_epochs=1)
    plan = make_plan(cfg)
    assert (plan.num_train_images, plan.num_reg_images) == (6, 10)
    reg = [im for im in plan.images if im.is_reg]
    assert [im.repeats for im in reg] == [1] * 6 + [0] * 4        # taken in order until the total reaches 6
    listed = [im for im in plan.to_json()["images"] if im["is_reg"]]
    assert [im["path"].rsplit("/", 1)[1] for im in listed] == [f"i{i:02d}.png" for i in range(6)]
    assert plan.buckets == {(512, 512): 12}


def test_reg_smaller_than_train_grows_round_robin(tmp_path):
    cfg = config(tmp_path, {"5_cat": [(512, 512)] * 3}, {"2_a": [(512, 512)] * 2, "1_b": [(512, 512)]},
                 max_train_epochs=1)
    plan = make_plan(cfg)
    # T = 15; reg in order 1_b (1), 2_a (2, 2) = 5, then +1 each round-robin until 15:
    # after 3 rounds 1_b 4, 2_a 5, 5 = 14, then 1_b gets one more = 15
    reg = [(im.subset.name, im.repeats) for im in plan.images if im.is_reg]
    assert reg == [("1_b", 5), ("2_a", 5), ("2_a", 5)]
    assert sum(r for _, r in reg) == plan.num_train_images == 15 and plan.num_reg_images == 5


def test_balance_reg_repeats_rule_directly():
    assert balance_reg_repeats([(0, 3), (1, 3), (2, 3)], 4) == [3, 3, 0]
    assert balance_reg_repeats([(0, 1), (1, 1)], 5) == [3, 2]
    assert balance_reg_repeats([(0, 2)], 0) == [0]
    assert balance_reg_repeats([], 9) == []


def test_batches_round_up_per_bucket_then_accumulation_and_processes_divide(tmp_path):
    cfg = config(tmp_path, {"3_cat": [(512, 512)] * 3 + [(768, 512)] * 2}, train_batch_size=4,
                 gradient_accumulation_steps=2, max_train_epochs=3)
    plan = make_plan(cfg)
    assert sorted(plan.buckets.values()) == [6, 9]
    assert plan.batches_per_epoch == math.ceil(9 / 4) + math.ceil(6 / 4) == 5
    assert plan.steps_per_epoch == math.ceil(5 / 1 / 2) == 3
    assert (plan.epochs, plan.total_steps) == (3, 9)
    two_gpus = make_plan(cfg, num_processes=2)
    assert two_gpus.steps_per_epoch == math.ceil(5 / 2 / 2) == 2 and two_gpus.total_steps == 6


def test_max_train_steps_mode_rounds_epochs_up(tmp_path):
    cfg = config(tmp_path, {"1_cat": [(512, 512)] * 7}, train_batch_size=2, max_train_epochs=None,
                 max_train_steps=10)
    plan = make_plan(cfg)
    assert (plan.steps_per_epoch, plan.total_steps, plan.epochs) == (4, 10, 3)


def test_count_steps_needs_epochs_or_steps():
    with pytest.raises(PlanError, match="set one of them"):
        count_steps({(512, 512): 4}, 1, 1, 1, None, 0)


def test_bucket_no_upscale_and_enable_bucket_false(tmp_path):
    cfg = config(tmp_path, {"1_x": [(300, 200), (2048, 1024)]}, max_train_epochs=1, bucket_no_upscale=True)
    got = {tuple(im["size"]): (tuple(im["bucket"]), tuple(im["resized"])) for im in make_plan(cfg).to_json()["images"]}
    assert got[(300, 200)] == ((256, 192), (300, 200))
    assert got[(2048, 1024)] == ((640, 320), (640, 320))       # to about 512² in area, on 64 px steps
    flat = make_plan(cfg.replace(bucket_no_upscale=False, enable_bucket=False))
    assert flat.buckets == {(512, 512): 2}
    assert {tuple(im.resized) for im in flat.images} == {(768, 512), (1024, 512)}


def test_a_thin_image_with_no_upscale_is_an_error_naming_the_file(tmp_path):
    cfg = config(tmp_path, {"1_x": [(512, 512), (40, 40)]}, max_train_epochs=1, bucket_no_upscale=True)
    with pytest.raises(PlanError, match=r"i01\.png: 40×40 has a side below bucket_reso_steps"):
        make_plan(cfg)


def test_json_contract_and_captions(tmp_path):
    cfg = config(tmp_path, {"2_sks dog": [(512, 512), (512, 768)]}, {"1_dog": [(512, 512)]}, max_train_epochs=2)
    write_caption(tmp_path / "train" / "2_sks dog" / "i00.png", "sks dog on grass\nignored")
    plan = make_plan(cfg).to_json()
    assert list(plan) == ["num_train_images", "num_reg_images", "subsets", "images", "buckets",
                          "batches_per_epoch", "steps_per_epoch", "epochs", "total_steps"]
    assert plan["subsets"][0] == {"dir": str(tmp_path / "train" / "2_sks dog"), "repeats": 2,
                                  "class_tokens": "sks dog", "is_reg": False, "images": 2}
    first = plan["images"][0]
    assert first == {"path": str(tmp_path / "train" / "2_sks dog" / "i00.png"), "size": [512, 512],
                     "bucket": [512, 512], "resized": [512, 512], "repeats": 2, "is_reg": False,
                     "caption": "sks dog on grass"}
    assert plan["images"][1]["caption"] == "sks dog"
    assert plan["images"][2]["repeats"] == 4 and plan["images"][2]["is_reg"]
    assert plan["buckets"] == [{"resolution": [384, 640], "count": 2}, {"resolution": [512, 512], "count": 6}]


def test_no_training_images_is_a_clear_error(tmp_path):
    (tmp_path / "train" / "5_empty").mkdir(parents=True)
    cfg = TrainConfig(train_data_dir=str(tmp_path / "train"))
    with pytest.raises(PlanError, match="no training images"):
        make_plan(cfg)
