"""How long a run is, sd-scripts' rule everywhere: epochs decide when given, else max_train_steps
(epochs = ⌈steps / steps per epoch⌉); both given → epochs, and the ignored steps are said; neither → a
one-line error naming both keys; an empty value means "not set". Through plan, check, export, the
Parameters page, and (slow) the trainer and the metadata it writes."""
from __future__ import annotations

import json
import math

import pytest
import tomllib
from streamlit.testing.v1 import AppTest

from tests.conftest import make_image, run_cli, write_config
from tests.test_app_parameters import PAGE
from workbench import workspace
from workbench.config.schema import TrainConfig, load_toml, new_config
from workbench.config.validate import validate

STEPS_PER_EPOCH = 18          # 12 images × 3 repeats, batch 2: 18 batches (one bucket)


@pytest.fixture
def dataset(tmp_path):
    for i in range(12):
        make_image(tmp_path / "train" / "3_sks" / f"{i:02}.png", (512, 512))
    return tmp_path / "train"


def config(tmp_path, dataset, **length) -> str:
    return write_config(tmp_path / "c.toml", train_data_dir=str(dataset), train_batch_size=2,
                        output_dir=str(tmp_path / "out"), **length)


def plan_json(path) -> dict:
    done = run_cli("plan", path, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_steps_only_decide_and_epochs_follow(tmp_path, dataset):
    plan = plan_json(config(tmp_path, dataset, max_train_steps=300))
    assert plan["steps_per_epoch"] == STEPS_PER_EPOCH
    assert (plan["total_steps"], plan["epochs"]) == (300, math.ceil(300 / STEPS_PER_EPOCH)) == (300, 17)


def test_an_empty_epoch_count_means_not_set(tmp_path, dataset):
    path = config(tmp_path, dataset, max_train_epochs="", max_train_steps=300)
    assert load_toml(path)[0].max_train_epochs is None
    assert plan_json(path)["total_steps"] == 300


def test_both_given_epochs_decide_and_check_says_steps_are_ignored(tmp_path, dataset):
    path = config(tmp_path, dataset, max_train_epochs=2, max_train_steps=300)
    assert (plan_json(path)["total_steps"], plan_json(path)["epochs"]) == (2 * STEPS_PER_EPOCH, 2)
    done = run_cli("check", path)
    assert done.returncode == 1
    assert "max_train_steps 300 is ignored: max_train_epochs 2 decides" in done.stdout


def test_neither_given_is_one_line_naming_both_keys(tmp_path, dataset):
    path = config(tmp_path, dataset)
    for command in ("plan", "train", "export"):
        done = run_cli(command, path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1, (command, done.stderr)
        assert "max_train_epochs" in lines[0] and "max_train_steps" in lines[0] and "Traceback" not in lines[0]
    assert not (workspace.home() / "runs").exists() or not any((workspace.home() / "runs").iterdir())


def test_export_keeps_the_key_that_decides(tmp_path, dataset):
    out = tmp_path / "export"
    for length, kept, dropped in (({"max_train_steps": 300}, ("max_train_steps", 300), "max_train_epochs"),
                                  ({"max_train_epochs": 2, "max_train_steps": 300}, ("max_train_epochs", 2),
                                   "max_train_steps")):
        done = run_cli("export", config(tmp_path, dataset, **length), "-o", out, "--force")
        assert done.returncode == 0, done.stderr
        values = tomllib.loads((out / "last.sd-scripts.toml").read_text())
        assert values[kept[0]] == kept[1] and dropped not in values


def test_new_configs_from_the_app_and_the_demo_name_an_epoch_count():
    assert TrainConfig().max_train_epochs is None          # a file without the key: not set
    assert new_config().max_train_epochs == 1 and not [f for f in validate(new_config()) if f.level == "error"]


def test_parameters_page_says_max_train_steps_is_ignored(tmp_path, dataset):
    workspace.save_current(new_config(train_data_dir=str(dataset), train_batch_size=2, max_train_epochs=2,
                                      max_train_steps=300))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["group"] = "Training"
    at.run()
    assert not at.exception
    assert any("max_train_steps 300 is ignored" in w.value for w in at.warning)
    assert any(m.label == "Total steps" and m.value == str(2 * STEPS_PER_EPOCH) for m in at.metric)


def test_parameters_page_counts_steps_when_only_steps_are_given(tmp_path, dataset):
    workspace.save_current(new_config(train_data_dir=str(dataset), train_batch_size=2, max_train_epochs=None,
                                      max_train_steps=300))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception and not at.warning
    assert any(m.label == "Total steps" and m.value == "300" for m in at.metric)


@pytest.mark.slow
def test_the_trainer_runs_max_train_steps_and_records_them(tmp_path):
    """Steps only, in the middle of an epoch: the trainer stops at that step, and ss_max_train_steps /
    ss_num_epochs say what ran (18 demo steps per epoch: 20 steps is 2 epochs)."""
    from tests.test_trainer import train_in_process
    from workbench.lora.header import metadata_of, read_header
    from workbench.models.demo import build_demo
    demo = build_demo(tmp_path / "demo")
    cfg, _ = load_toml(demo.config)
    cfg = cfg.replace(output_dir=str(tmp_path / "out"), max_train_epochs=None, max_train_steps=20,
                      save_every_n_epochs=None, sample_every_n_epochs=None)
    code, status, events = train_in_process(cfg, tmp_path / "run")
    assert code == 0 and status["state"] == "finished", status
    assert [e["step"] for e in events if e["event"] == "step"][-1] == 20
    meta = metadata_of(read_header(tmp_path / "out" / "demo-lora.safetensors")[1])
    assert (meta["ss_max_train_steps"], meta["ss_num_epochs"], meta["ss_steps"]) == ("20", "2", "20")
