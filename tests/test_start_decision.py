"""One start decision (workbench.runs.registry.start_blockers): the Training page, `workbench train` and the
trainer itself refuse the same config with the same lines, every blocker at once."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import diffusers_stub, make_image, run_cli
from workbench import workspace
from workbench.config.schema import TrainConfig, save_toml
from workbench.errors import UserError
from workbench.runs.preflight import cuda_available
from workbench.runs.registry import start_blockers, where_to_fix


def three_blockers(tmp_path) -> TrainConfig:
    """A config with three faults in three places: a field's value, the model folder, an output file."""
    make_image(tmp_path / "data" / "1_dog" / "a.png", (64, 64))
    model = diffusers_stub(tmp_path / "model")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "dog.safetensors").write_bytes(b"an earlier run's LoRA")
    return TrainConfig(pretrained_model_name_or_path=str(model), train_data_dir=str(tmp_path / "data"),
                       output_dir=str(tmp_path / "out"), output_name="dog", resolution="64,64",
                       min_bucket_reso=64, max_bucket_reso=128, max_train_epochs=1, optimizer_type="AdamW",
                       mixed_precision="bf16", bucket_reso_steps=48, sdxl=True)


def test_every_blocker_is_reported_at_once(tmp_path):
    problems = start_blockers(three_blockers(tmp_path))
    assert any(p.startswith("bucket_reso_steps:") for p in problems)
    assert any(p.startswith("pretrained_model_name_or_path:") and "sdxl" in p for p in problems)
    assert any(p.startswith("output_name:") and "dog.safetensors already exists" in p for p in problems)
    assert len(problems) == 3


@pytest.mark.skipif(cuda_available(), reason="the fp16 rule is about a machine without a CUDA GPU")
def test_fp16_without_a_gpu_blocks_the_start(tmp_path):
    cfg = three_blockers(tmp_path).replace(mixed_precision="fp16", bucket_reso_steps=64, sdxl=False)
    (tmp_path / "out" / "dog.safetensors").unlink()
    assert start_blockers(cfg) == ["mixed_precision: fp16 needs a CUDA GPU; on the CPU choose bf16 or no"]


def test_the_trainer_refuses_with_the_same_lines(tmp_path):
    from trainer.recipe import read_config
    cfg = three_blockers(tmp_path)
    save_toml(cfg, tmp_path / "run" / "config.toml")
    with pytest.raises(UserError) as refused:
        read_config(tmp_path / "run")
    assert str(refused.value) == "; ".join(start_blockers(cfg))


def test_the_cli_refuses_with_the_same_lines_and_creates_nothing(tmp_path):
    cfg = three_blockers(tmp_path)
    save_toml(cfg, tmp_path / "config.toml")
    done = run_cli("train", tmp_path / "config.toml")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].endswith("not started: " + "; ".join(start_blockers(cfg)))
    assert not workspace.runs_dir().exists() or not list(workspace.runs_dir().iterdir())


def test_the_training_page_refuses_with_the_same_lines(tmp_path):
    cfg = three_blockers(tmp_path)
    workspace.save_current(cfg)
    at = AppTest.from_file(str(Path(__file__).parents[1] / "app.py"), default_timeout=60)
    at.switch_page("app_pages/3_Training.py").run()
    at.button(key="start").click().run()
    shown = " ".join(e.value for e in at.error if "Not started" in e.value)
    assert all(p in shown for p in start_blockers(cfg))
    assert not workspace.runs_dir().exists() or not list(workspace.runs_dir().iterdir())


def test_a_missing_dataset_folder_is_reported_beside_the_other_blockers(tmp_path):
    cfg = three_blockers(tmp_path).replace(bucket_reso_steps=64, train_data_dir=str(tmp_path / "nowhere"))
    problems = start_blockers(cfg)
    assert any(p.startswith("pretrained_model_name_or_path:") for p in problems)
    assert any(p.startswith("output_name:") for p in problems)
    assert any("nowhere" in p and "not found" in p for p in problems)


def test_the_training_page_says_where_each_blocker_is_fixed(tmp_path):
    """Not "fix these in Parameters" for everything: a field's line names its Parameters topic, a
    missing dataset folder the Dataset page."""
    cfg = three_blockers(tmp_path).replace(bucket_reso_steps=64, train_data_dir=str(tmp_path / "nowhere"))
    workspace.save_current(cfg)
    at = AppTest.from_file(str(Path(__file__).parents[1] / "app.py"), default_timeout=60)
    at.switch_page("app_pages/3_Training.py").run()
    at.button(key="start").click().run()
    shown = " ".join(e.value for e in at.error if "Not started" in e.value)
    assert "in Parameters first" not in shown
    assert "**Parameters › Model › Base model" in shown and "**Parameters › Folders › Output" in shown
    assert f"**Dataset**: {[p for p in start_blockers(cfg) if 'nowhere' in p][0]}" in shown
    assert where_to_fix("learning_rate: -1 is below the minimum 0.0") == \
        "Parameters › Learning rate & schedule › Learning rates › Learning rate"
