"""LR schedules beyond the reference vectors: warmup forms, which rate each curve uses, edge cases."""
from __future__ import annotations

import math

import pytest

from workbench.config.schema import TrainConfig
from workbench.planning.schedules import has_warmup, lr_lambda, make_schedule, warmup_steps_for


def test_warmup_int_is_steps_and_float_below_one_is_a_ratio():
    assert warmup_steps_for(25, 1000) == 25
    assert warmup_steps_for(0.1, 1000) == 100
    assert warmup_steps_for(0.105, 999) == 104          # int(), like sd-scripts: 104.895 -> 104
    assert warmup_steps_for(0, 1000) == 0


def test_unet_and_text_encoder_rates():
    cfg = TrainConfig(lr_scheduler="constant", lr_warmup_steps=0, learning_rate=1e-4, unet_lr=3e-4,
                      text_encoder_lr=None)
    sched = make_schedule(cfg, 5)
    assert sched.unet == [3e-4] * 5 and sched.text_encoder == [1e-4] * 5
    unet_only = make_schedule(cfg.replace(network_train_unet_only=True), 5)
    assert unet_only.text_encoder == [0.0] * 5
    assert make_schedule(cfg.replace(text_encoder_lr=0.0), 5).text_encoder == [0.0] * 5


def test_linear_warmup_then_cosine_reaches_zero():
    cfg = TrainConfig(lr_scheduler="cosine", lr_warmup_steps=4, learning_rate=1.0)
    sched = make_schedule(cfg, 12)
    assert sched.unet[:4] == [0.0, 0.25, 0.5, 0.75] and sched.unet[4] == 1.0
    assert sched.unet[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert sched.warmup_steps == 4 and not sched.warmup_ignored


def test_constant_and_adafactor_ignore_the_warmup_and_say_so():
    for name in ("constant", "adafactor"):
        sched = make_schedule(TrainConfig(lr_scheduler=name, optimizer_type="Adafactor", lr_warmup_steps=0.5,
                                          learning_rate=2e-4), 10)
        assert sched.unet == [2e-4] * 10 and sched.warmup_ignored and not has_warmup(name)


def test_restarts_and_polynomial_shapes():
    restarts = lr_lambda("cosine_with_restarts", 0, 100, num_cycles=2)
    assert restarts(0) == 1.0 and restarts(50) == 1.0 and restarts(49) < 0.01
    poly = lr_lambda("polynomial", 0, 10, power=2.0, lr_init=1.0)
    assert poly(5) == pytest.approx((1 - 1e-7) * 0.25 + 1e-7)
    assert poly(10) == pytest.approx(1e-7)


def test_ten_thousand_steps_json_shape():
    sched = make_schedule(TrainConfig(lr_scheduler="linear", lr_warmup_steps=0.05), 10_000).to_json()
    assert set(sched) == {"total_steps", "warmup_steps", "unet", "text_encoder"}
    assert len(sched["unet"]) == len(sched["text_encoder"]) == 10_000 and sched["warmup_steps"] == 500


def test_unknown_scheduler_is_refused():
    with pytest.raises(ValueError, match="valid: constant"):
        lr_lambda("cosine_annealing", 0, 10)
