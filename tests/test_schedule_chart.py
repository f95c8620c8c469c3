"""LR chart data: curves from workbench.planning.schedules, markers at the right steps."""
from __future__ import annotations

import math

from workbench.config.schema import TrainConfig
from workbench.planning.schedules import make_schedule
from workbench.views.schedule_chart import chart_frames, markers, sampled_steps


def marks(cfg, total, per_epoch, epochs):
    return {(m.kind, m.step) for m in markers(cfg, total, per_epoch, epochs)}


def test_cosine_restarts_warmup_and_saves():
    cfg = TrainConfig(lr_scheduler="cosine_with_restarts", lr_scheduler_num_cycles=3, lr_warmup_steps=10,
                      save_every_n_epochs=2, max_train_epochs=10)
    got = marks(cfg, 100, 10, 10)
    # restarts every (100 - 10) / 3 = 30 steps after warmup: indices 40 and 70 → steps 41 and 71
    assert {s for k, s in got if k == "restart"} == {41, 71}
    assert ("warmup", 10) in got
    # saves at epochs 2, 4, 6, 8 (not 10: the last epoch's file is the final one) and the final
    assert sorted(s for k, s in got if k == "save") == [20, 40, 60, 80, 100]


def test_step_saves_are_marked_too():
    cfg = TrainConfig(save_every_n_epochs=None, save_every_n_steps=30, max_train_epochs=2)
    # steps 30, 60, 90; step 100's would be the final file's step, marked once as the final save
    assert sorted(s for k, s in marks(cfg, 100, 50, 2) if k == "save") == [30, 60, 90, 100]
    assert sorted(s for k, s in marks(cfg.replace(save_every_n_epochs=1), 100, 50, 2) if k == "save") == \
        [30, 50, 60, 90, 100]


def test_restart_marker_is_where_the_curve_jumps():
    cfg = TrainConfig(lr_scheduler="cosine_with_restarts", lr_scheduler_num_cycles=4, learning_rate=1e-3,
                      lr_warmup_steps=0)
    curves, marker_frame = chart_frames(cfg, 200, 20, 10)
    unet = curves[curves.curve == "UNet"].set_index("step").lr
    for step in marker_frame[marker_frame.kind == "restart"].step:
        assert unet[step] > unet[step - 1] + 5e-4
    assert len(marker_frame[marker_frame.kind == "restart"]) == 3


def test_stop_te_marker_and_curve_drops_to_zero_after_it():
    cfg = TrainConfig(lr_scheduler="constant", learning_rate=1e-4, text_encoder_lr=5e-5,
                      stop_text_encoder_training=25, save_every_n_epochs=None)
    curves, marker_frame = chart_frames(cfg, 40, 4, 10)
    assert ("stop_te", 10) in set(zip(marker_frame.kind, marker_frame.step))
    te = curves[curves.curve == "Text encoder"].set_index("step").lr
    assert te[10] == 5e-5 and te[11] == 0.0 and te[40] == 0.0
    assert set(curves[curves.curve == "UNet"].lr) == {1e-4}
    assert list(marker_frame.kind) == ["stop_te", "save"]


def test_curves_equal_the_schedule_and_skip_an_untrained_text_encoder():
    cfg = TrainConfig(lr_scheduler="cosine", learning_rate=2e-4, network_train_unet_only=True, lr_warmup_steps=0.2)
    curves, marker_frame = chart_frames(cfg, 50, 5, 10)
    assert list(curves.curve.unique()) == ["UNet"]
    assert list(curves.lr) == make_schedule(cfg, 50).unet
    assert list(curves.step) == list(range(1, 51))
    assert ("warmup", 10) in set(zip(marker_frame.kind, marker_frame.step))


def test_constant_has_no_warmup_marker():
    cfg = TrainConfig(lr_scheduler="constant", lr_warmup_steps=5)
    assert not any(k == "warmup" for k, _ in marks(cfg, 30, 3, 10))


def test_long_runs_are_thinned_but_keep_markers_sharp():
    cfg = TrainConfig(lr_scheduler="cosine_with_restarts", lr_scheduler_num_cycles=2, max_train_epochs=4,
                      lr_warmup_steps=0, save_every_n_epochs=1)
    curves, marker_frame = chart_frames(cfg, 20_000, 5_000, 4)
    unet = curves[curves.curve == "UNet"]
    assert len(unet) < 2_000
    steps = set(unet.step)
    assert {1, 20_000, 10_000, 10_001, 10_002, 5_000, 15_000} <= steps
    assert sampled_steps(10, [3]) == list(range(1, 11))
    assert math.isclose(unet.set_index("step").lr[10_001], cfg.learning_rate)
