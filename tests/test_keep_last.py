"""save_last_n_epochs / save_last_n_steps (and their _state): which earlier save each save
deletes, sd-scripts' get_remove_epoch_no / get_remove_step_no with its own worked example."""
from __future__ import annotations

from pathlib import Path

from workbench.config.schema import TrainConfig
from workbench.config.validate import validate
from workbench.runs.outputs import removed_epoch, removed_step, superseded


def test_epoch_rule_keeps_the_last_n_saves():
    cfg = TrainConfig(save_every_n_epochs=2, save_last_n_epochs=3)
    # saves at 2, 4, 6, 8: saving 8 deletes 8 − 2·3 = 2, leaving 4, 6, 8
    assert [removed_epoch(cfg, e) for e in (2, 4, 6, 8, 10)] == [None, None, None, 2, 4]
    assert removed_epoch(cfg.replace(save_last_n_epochs=None), 8) is None
    assert removed_epoch(cfg.replace(save_every_n_epochs=None), 8) is None


def test_step_rule_is_sd_scripts_worked_example():
    # sd-scripts' comment: save_every_n_steps=10, save_last_n_steps=30: at step 50 keep 30 steps' worth, delete 10
    cfg = TrainConfig(save_every_n_steps=10, save_last_n_steps=30)
    assert removed_step(cfg, 50) == 10
    assert [removed_step(cfg, s) for s in (10, 20, 30, 40, 60)] == [None, None, None, None, 20]
    odd = TrainConfig(save_every_n_steps=2, save_last_n_steps=3)      # 8 − 3 − 1 = 4 → 4
    assert [removed_step(odd, s) for s in (2, 4, 6, 8)] == [None, None, 2, 4]


def test_state_folders_follow_their_own_count_when_given():
    cfg = TrainConfig(save_every_n_epochs=1, save_last_n_epochs=3, save_last_n_epochs_state=1, save_state=True,
                      output_dir="/o", output_name="x")
    assert (removed_epoch(cfg, 4), removed_epoch(cfg, 4, state=True)) == (1, 3)
    assert superseded(cfg, Path("/o/x-000004.safetensors"), 4, 4) == [
        Path("/o/x-000001.safetensors"), Path("/o/x-000003-state")]
    steps = TrainConfig(save_every_n_steps=5, save_last_n_steps_state=5, output_dir="/o", output_name="x")
    assert superseded(steps, Path("/o/x-step00000015.safetensors"), None, 15) == []       # no save_state
    assert superseded(steps.replace(save_state=True), Path("/o/x.safetensors"), None, 15) == [
        Path("/o/x-step00000005-state")]


def test_check_says_when_a_keep_last_option_has_nothing_to_thin_out():
    notes = {f.field: f.message for f in validate(TrainConfig(save_every_n_epochs=None, save_last_n_epochs=2,
                                                               save_last_n_steps_state=3))}
    assert "save_every_n_epochs" in notes["save_last_n_epochs"]
    assert "save_state with save_every_n_steps" in notes["save_last_n_steps_state"]
    assert not [f for f in validate(TrainConfig(save_every_n_epochs=1, save_last_n_epochs=2))
                if f.field.startswith("save_last")]
