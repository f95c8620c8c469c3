"""TensorBoard tags as sd-scripts' train_network.py logs them. The expected dicts are worked out by hand
from generate_step_logs: one tag per LR description, then its for-loop's `else:` (which always runs)
logs the first group again as lr/textencoder unless network_train_unet_only and every later group as
lr/group<i>; D-Adaptation / Prodigy add lr/d*lr/… for each."""
from __future__ import annotations

from workbench.config.schema import new_config
from workbench.runs import tensorboard_tags as tags


def test_text_encoder_and_unet():
    groups = [("textencoder", 5e-5, None), ("unet", 1e-4, None)]
    assert tags.lr_scalars(groups, unet_only=False) == {"lr/textencoder": 5e-5, "lr/unet": 1e-4, "lr/group1": 1e-4}


def test_unet_only_numbers_from_group0():
    assert tags.lr_scalars([("unet", 1e-4, None)], unet_only=True) == {"lr/unet": 1e-4, "lr/group0": 1e-4}


def test_loraplus_groups_keep_their_descriptions_and_are_numbered():
    groups = [("textencoder", 1.0, None), ("textencoder plus", 16.0, None), ("unet", 2.0, None),
              ("unet plus", 32.0, None)]
    assert tags.lr_scalars(groups, unet_only=False) == {
        "lr/textencoder": 1.0, "lr/textencoder plus": 16.0, "lr/unet": 2.0, "lr/unet plus": 32.0,
        "lr/group1": 16.0, "lr/group2": 2.0, "lr/group3": 32.0}


def test_d_adaptation_and_prodigy_log_d_times_lr():
    groups = [("textencoder", 1.0, 0.5), ("unet", 1.0, 0.25)]
    assert tags.lr_scalars(groups, unet_only=False) == {
        "lr/textencoder": 1.0, "lr/d*lr/textencoder": 0.5, "lr/unet": 1.0, "lr/d*lr/unet": 0.25,
        "lr/group1": 1.0, "lr/d*lr/group1": 0.25}


def test_step_scalars_carry_the_losses_and_max_norm():
    logs = tags.step_scalars(0.5, 0.4, [("unet", 1e-4, None)], True, max_norm=(3, 0.7, 1.0))
    assert {k: logs[k] for k in ("loss/current", "loss/average", "max_norm/keys_scaled", "max_norm/max_key_norm",
                                 "norm/avg_key_norm")} == {"loss/current": 0.5, "loss/average": 0.4,
                                                           "max_norm/keys_scaled": 3, "max_norm/max_key_norm": 1.0,
                                                           "norm/avg_key_norm": 0.7}
    assert tags.epoch_scalars(0.3) == {"loss/epoch_average": 0.3}
    assert tags.epoch_scalars(None) == {}          # resumed at an epoch's end: no loss seen yet


def test_group_names_and_order_are_sd_scripts():
    groups = [("unet", 2.0, None), ("text_encoder", 1.0, None)]
    ordered = tags.sd_scripts_order([(tags.lr_description(n), lr, d) for n, lr, d in groups])
    assert ordered == [("textencoder", 1.0, None), ("unet", 2.0, None)]
    assert tags.unet_only(new_config(text_encoder_lr=0.0)) and not tags.unet_only(new_config())
