"""LoRA+ (networks.lora's loraplus_* network_args) outside the trainer: the ratios a config
means, its checks, the LR chart's groups, the kohya_ss GUI keys."""
from __future__ import annotations

import json

import pytest

from workbench.config.kohya import import_file
from workbench.config.schema import ConfigError, TrainConfig
from workbench.config.validate import validate
from workbench.planning.schedules import make_schedule
from workbench.views.schedule_chart import chart_frames


def test_a_parts_own_ratio_wins_over_the_common_one():
    cfg = TrainConfig(network_args=["loraplus_lr_ratio=16", "loraplus_unet_lr_ratio=8"])
    assert cfg.loraplus_ratios() == {"unet": 8.0, "text_encoder": 16.0}
    assert TrainConfig().loraplus_ratios() == {"unet": None, "text_encoder": None}
    with pytest.raises(ConfigError, match='loraplus_lr_ratio="x" is not a number'):
        TrainConfig(network_args=["loraplus_lr_ratio=x"]).loraplus_ratios()


def test_check_refuses_a_bad_ratio_and_lycoris():
    def errors(**changes):
        return [f.message for f in validate(TrainConfig(max_train_epochs=1, **changes)) if f.level == "error"]
    assert any("must be above 0" in m for m in errors(network_args=["loraplus_lr_ratio=0"]))
    assert any("arguments of networks.lora" in m for m in errors(network_module="lycoris.kohya",
                                                                 network_args=["algo=locon", "loraplus_lr_ratio=16"]))
    assert not errors(network_args=["loraplus_lr_ratio=16"])


def test_the_lr_chart_draws_each_lora_plus_group_at_ratio_times_its_part():
    cfg = TrainConfig(learning_rate=1e-4, text_encoder_lr=5e-5, lr_scheduler="cosine", lr_warmup_steps=0,
                      network_args=["loraplus_unet_lr_ratio=16", "loraplus_text_encoder_lr_ratio=4"])
    curves, _ = chart_frames(cfg, total_steps=20, steps_per_epoch=10, epochs=2)
    by_curve = {name: frame.set_index("step")["lr"] for name, frame in curves.groupby("curve")}
    assert set(by_curve) == {"UNet", "Text encoder", "UNet LoRA+ up ×16", "Text encoder LoRA+ up ×4"}
    for step in (1, 7, 20):
        assert by_curve["UNet LoRA+ up ×16"][step] == pytest.approx(16 * by_curve["UNet"][step])
        assert by_curve["Text encoder LoRA+ up ×4"][step] == pytest.approx(4 * by_curve["Text encoder"][step])
    as_json = make_schedule(cfg, 20).to_json()
    assert as_json["unet plus"][0] == pytest.approx(16e-4)
    unet_only = chart_frames(cfg.replace(network_train_unet_only=True), 20, 10, 2)[0]
    assert set(unet_only["curve"]) == {"UNet", "UNet LoRA+ up ×16"}


def test_the_guis_loraplus_boxes_become_network_args(tmp_path):
    path = tmp_path / "gui.json"
    path.write_text(json.dumps({"epoch": 1, "LoRA_type": "Standard", "loraplus_lr_ratio": 16,
                                "loraplus_unet_lr_ratio": 0, "loraplus_text_encoder_lr_ratio": "4"}))
    result = import_file(path)
    assert result.config.network_args == ["loraplus_lr_ratio=16", "loraplus_text_encoder_lr_ratio=4"]
    assert result.config.loraplus_ratios() == {"unet": 16.0, "text_encoder": 4.0}
