"""The step breakdown shows make_plan's numbers, derived in order, on real image folders."""
from __future__ import annotations

import pytest

from tests.conftest import make_image
from workbench.config.schema import TrainConfig
from workbench.planning.plan import make_plan
from workbench.planning.schedules import stop_text_encoder_step
from workbench.views.step_breakdown import breakdown, warmup_of


@pytest.fixture
def cfg(tmp_path):
    for i in range(5):
        make_image(tmp_path / "train" / "3_sks dog" / f"sq{i}.png", (512, 512))
    for i in range(3):
        make_image(tmp_path / "train" / "2_sks dog wide" / f"w{i}.png", (768, 512))
    for i in range(4):
        make_image(tmp_path / "reg" / "1_dog" / f"r{i}.png", (512, 512))
    return TrainConfig(train_data_dir=str(tmp_path / "train"), reg_data_dir=str(tmp_path / "reg"),
                       train_batch_size=4, gradient_accumulation_steps=2, max_train_epochs=5,
                       lr_scheduler="cosine", lr_warmup_steps=0.1, stop_text_encoder_training=50)


def test_numbers_equal_make_plan(cfg):
    plan = make_plan(cfg)
    b = breakdown(plan, cfg)
    assert (b.num_train_images, b.num_reg_images) == (plan.num_train_images, plan.num_reg_images) == (21, 4)
    assert [(s.folder, s.with_repeats, s.used) for s in b.subsets] == [
        ("2_sks dog wide", 6, 6), ("3_sks dog", 15, 15), ("1_dog", 4, 21)]
    assert b.reg_used == sum(im.repeats for im in plan.images if im.is_reg) == 21
    assert {bk.bucket: bk.count for bk in b.buckets} == plan.buckets
    assert sum(bk.batches for bk in b.buckets) == b.batches_per_epoch == plan.batches_per_epoch
    assert (b.steps_per_epoch, b.epochs, b.total_steps) == (plan.steps_per_epoch, plan.epochs, plan.total_steps)
    # 512×512: 15 + 21 reg = 36 → 9 batches; the wide bucket: 6 → 2; 11 batches / 2 accumulation → 6
    assert [bk.batches for bk in b.buckets if bk.bucket == (512, 512)] == [9]
    assert (b.batches_per_epoch, b.steps_per_epoch, b.total_steps) == (11, 6, 30)
    assert (b.warmup_steps, b.stop_te_step) == (3, 15)


def test_lines_tell_the_derivation(cfg):
    text = "\n".join(breakdown(make_plan(cfg), cfg).lines())
    assert "3_sks dog: 5 images × 3 repeats = 15" in text
    assert "Reg 1_dog: 4 images × 1 repeats = 4; balanced to the 21 training images: 21 used" in text
    assert "Bucket 512×512: 36 images → ⌈36 / 4⌉ = 9 batches" in text
    assert "Steps per epoch: ⌈11 / 1 process(es) / 2 accumulation⌉ = 6" in text
    assert "Total: 5 epochs × 6 = 30 steps" in text
    assert "Warmup: the first 3 steps" in text
    assert "Text encoder stops learning after step 15" in text


def test_batch_size_changes_total_steps(cfg):
    smaller = cfg.replace(train_batch_size=1)
    b = breakdown(make_plan(smaller), smaller)
    assert b.batches_per_epoch == 42 and b.total_steps == 5 * 21


def test_max_train_steps_decides_when_epochs_empty(cfg):
    by_steps = cfg.replace(max_train_epochs=None, max_train_steps=50)
    b = breakdown(make_plan(by_steps), by_steps)
    assert (b.total_steps, b.epochs, b.epochs_given) == (50, 9, False)
    assert "Total: max_train_steps = 50 steps (⌈50 / 6⌉ = 9 epochs)" in b.lines()


def test_warmup_and_stop_te_rules(cfg):
    assert warmup_of(cfg.replace(lr_warmup_steps=7), 30) == 7
    assert warmup_of(cfg.replace(lr_scheduler="constant", lr_warmup_steps=7), 30) == 0
    assert warmup_of(cfg.replace(lr_warmup_steps=100), 30) == 30
    assert stop_text_encoder_step(cfg.replace(stop_text_encoder_training=33), 30) == 10
    assert stop_text_encoder_step(cfg.replace(stop_text_encoder_training=0), 30) is None
    assert stop_text_encoder_step(cfg.replace(network_train_unet_only=True), 30) is None
