"""validation_split in the plan, as sd-scripts' split_train_val makes it: which images are held
out, the training steps that remain, the validation batches and timesteps."""
from __future__ import annotations

import random

from tests.test_plan import config
from workbench.config.schema import TrainConfig
from workbench.config.validate import validate
from workbench.planning import holdout
from workbench.planning.plan import make_plan


def test_counts_are_sd_scripts_ceil_and_round():
    assert holdout.split_counts(10, 0.2) == (8, 2)
    assert holdout.split_counts(10, 0.25) == (8, 2)          # ceil(7.5) = 8 train, round(2.5) = 2 (half to even)
    assert holdout.split_counts(7, 0.5) == (4, 4)            # one image both trains and validates
    assert holdout.split_counts(5, 0.0) == (5, 0)


def test_the_held_out_images_are_the_last_of_the_seeded_shuffle():
    paths = [f"/d/{i:02d}.png" for i in range(10)]
    order = list(paths)
    random.seed(1234)                          # sd-scripts: random.seed(validation_seed); random.shuffle(dataset)
    random.shuffle(order)
    trains, validates = holdout.split_paths(paths, 0.3, 1234)
    assert validates == set(order[7:]) and trains == set(order[:7])
    assert holdout.split_paths(paths, 0.3, None)[1] == set(paths[7:])     # no seed: path order


def test_validation_timesteps_are_numpys_linspace_inside_the_range():
    assert holdout.validation_timesteps(0, 1000) == [200, 400, 600, 800]
    assert holdout.validation_timesteps(100, 900) == [260, 420, 580, 740]
    assert holdout.validation_timesteps(0, 999) == [199, 399, 599, 799]


def test_the_plan_holds_images_out_of_training_and_counts_what_remains(tmp_path):
    cfg = config(tmp_path, {"3_sks": [(512, 512)] * 8 + [(512, 768)] * 2}, {"1_dog": [(512, 512)] * 40},
                 max_train_epochs=2, train_batch_size=2, validation_split=0.2, validation_seed=7)
    plan = make_plan(cfg)
    held = plan.validation_images
    assert len(held) == 2 and all(im.repeats == 0 and not im.is_reg for im in held)
    assert plan.num_train_images == 8 * 3 and plan.num_validation_images == 2 * 3
    # reg balancing follows the images that still train: 24 reg uses, not 30
    assert sum(im.repeats for im in plan.images if im.is_reg) == 24
    full = make_plan(cfg.replace(validation_split=0.0))
    assert full.num_train_images == 30 and plan.total_steps < full.total_steps
    assert plan.validation_timesteps == (200, 400, 600, 800)
    buckets = {im.bucket for im in held}
    assert plan.validation_batches == sum(-(-3 * sum(im.bucket == b for im in held) // 2) for b in buckets)
    assert make_plan(cfg.replace(max_validation_steps=1)).validation_batches == 1
    data = plan.to_json()["validation"]
    assert data["num_validation_images"] == 6 and data["seed"] == 7 and len(data["images"]) == 2
    assert "validation" not in full.to_json()


def test_the_runs_seed_picks_the_images_without_validation_seed(tmp_path):
    cfg = config(tmp_path, {"1_sks": [(512, 512)] * 20}, max_train_epochs=1, validation_split=0.25)
    picks = {frozenset(str(im.info.path) for im in make_plan(cfg, seed=s).validation_images) for s in range(4)}
    assert len(picks) > 1
    same = make_plan(cfg.replace(seed=3)).validation_images
    assert [im.info.path for im in same] == [im.info.path for im in make_plan(cfg, seed=3).validation_images]


def test_check_findings_for_validation():
    def found(**changes):
        return {f.field: (f.level, f.message) for f in validate(TrainConfig(**changes))}
    assert found(validation_split=1.0)["validation_split"][0] == "error"
    assert "ignored, validation_split is 0" in found(validate_every_n_steps=5)["validate_every_n_steps"][1]
    assert found(validation_split=0.1)["validation_seed"][0] == "warning"
    assert "validation_seed" not in found(validation_split=0.1, seed=1)


def test_the_step_breakdown_says_what_is_held_out_and_what_remains(tmp_path):
    from workbench.views.step_breakdown import breakdown
    cfg = config(tmp_path, {"2_sks": [(512, 512)] * 7}, max_train_epochs=1, validation_split=0.5, validation_seed=1,
                 validate_every_n_steps=10)
    lines = breakdown(make_plan(cfg), cfg).lines()
    assert lines[0] == ("2_sks: 7 images, 4 held out for validation; 1 of them also trains (sd-scripts' rounding) "
                        "→ 4 × 2 repeats = 8")
    assert lines[-1].startswith("Validation: 4 held-out images × repeats = 8; 8 batches × timesteps 200, 400, 600, "
                                "800 after every epoch and every 10 steps (images chosen by seed 1")

