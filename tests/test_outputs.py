"""Output names (workbench/runs/outputs.py): what a run writes, what is refused, the free name offered."""
from __future__ import annotations

from workbench.config.schema import TrainConfig
from workbench.runs import outputs


def test_planned_outputs_skip_the_last_epoch_and_existing_ones_are_refused(tmp_path):
    cfg = TrainConfig(output_dir=str(tmp_path), output_name="x", save_every_n_epochs=2, save_state=True)
    names = [p.name for p in outputs.planned_outputs(cfg, epochs=6)]
    assert names == ["x-000002.safetensors", "x-000004.safetensors", "x.safetensors",
                     "x-000002-state", "x-000004-state", "x-state"]
    resumed = [p.name for p in outputs.planned_outputs(cfg, epochs=6, first_epoch=3)]
    assert resumed[:2] == ["x-000004.safetensors", "x.safetensors"]
    (tmp_path / "x-000004.safetensors").write_bytes(b"old")
    assert outputs.existing_outputs(cfg, epochs=6) == [tmp_path / "x-000004.safetensors"]
    stopped = outputs.lora_path(cfg, outputs.stopped_tag(7))
    stopped.write_bytes(b"old")
    assert outputs.unique_path(stopped).name == "x-stopped-step7-2.safetensors"


def test_existing_outputs_with_and_without_the_epoch_count(tmp_path):
    cfg = TrainConfig(output_dir=str(tmp_path), output_name="x", save_every_n_epochs=1)
    (tmp_path / "x-000007.safetensors").write_bytes(b"old")       # from an earlier, longer run
    assert outputs.existing_outputs(cfg, epochs=3) == []          # a 3-epoch run never writes epoch 7
    assert outputs.existing_outputs(cfg) == [tmp_path / "x-000007.safetensors"]   # no plan: counted
    (tmp_path / "x.safetensors").write_bytes(b"old")
    assert outputs.existing_outputs(cfg, epochs=3) == [tmp_path / "x.safetensors"]


def test_free_output_name_skips_every_taken_name(tmp_path):
    cfg = TrainConfig(output_dir=str(tmp_path), output_name="demo", save_every_n_epochs=1)
    assert outputs.free_output_name(cfg, epochs=2) == "demo"
    (tmp_path / "demo.safetensors").write_bytes(b"old")
    (tmp_path / "demo-2-000001.safetensors").write_bytes(b"old")
    assert outputs.free_output_name(cfg, epochs=2) == "demo-3"


def test_step_saves_every_n_steps_the_last_step_included(tmp_path):
    cfg = TrainConfig(output_dir=str(tmp_path), output_name="x", save_every_n_epochs=None, save_every_n_steps=4)
    names = [p.name for p in outputs.planned_outputs(cfg, epochs=2, total_steps=12)]
    assert names == ["x-step00000004.safetensors", "x-step00000008.safetensors", "x-step00000012.safetensors",
                     "x.safetensors"]
    resumed = [p.name for p in outputs.planned_outputs(cfg, epochs=2, first_epoch=2, total_steps=12, first_step=9)]
    assert resumed == ["x-step00000012.safetensors", "x.safetensors"]
    (tmp_path / "x-step00000040.safetensors").write_bytes(b"old")     # the step count is not known here
    assert outputs.existing_outputs(cfg, epochs=2) == [tmp_path / "x-step00000040.safetensors"]
    assert outputs.existing_outputs(cfg) == [tmp_path / "x-step00000040.safetensors"]
    assert outputs.existing_outputs(cfg.replace(save_every_n_steps=None)) == []
    assert outputs.free_output_name(cfg, epochs=2) == "x-2"


def test_a_suggested_name_counts_up_instead_of_growing_suffixes(tmp_path):
    cfg = TrainConfig(output_dir=str(tmp_path), output_name="demo-lora-2", save_every_n_epochs=None)
    (tmp_path / "demo-lora-2.safetensors").write_bytes(b"old")
    assert outputs.free_output_name(cfg, epochs=1) == "demo-lora-3"
    (tmp_path / "demo-lora-3.safetensors").write_bytes(b"old")
    assert outputs.free_output_name(cfg, epochs=1) == "demo-lora-4"
    # a name ending in -1 or in a date is the user's own, not a suggestion
    assert outputs.free_output_name(cfg.replace(output_name="v-1"), epochs=1) == "v-1"
    (tmp_path / "run-20261204.safetensors").write_bytes(b"old")
    assert outputs.free_output_name(cfg.replace(output_name="run-20261204"), epochs=1) == "run-20261204-2"
