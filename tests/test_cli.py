"""The command line as a user meets it, in fresh processes: one clear line and a non-zero exit
for bad input (never a traceback), and a start that imports no heavy library."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from tests.conftest import make_image, run_cli, write_config

HEAVY = ("torch", "diffusers", "transformers", "streamlit")


def one_line_error(done, *words, code=1):
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    err = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(err) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in err[0], err[0]
    return err[0]


@pytest.fixture
def dataset(tmp_path):
    make_image(tmp_path / "train" / "3_cat" / "a.png", (512, 512))
    return tmp_path / "train"


def test_missing_config_file(tmp_path):
    one_line_error(run_cli("plan", tmp_path / "nope.toml"), "workbench plan: error:", "nope.toml: config file not found")


def test_unreadable_toml(tmp_path):
    (tmp_path / "c.toml").write_text("train_data_dir = [unclosed\n")
    one_line_error(run_cli("plan", tmp_path / "c.toml"), "c.toml: not valid TOML")


def test_wrong_type_names_key_and_file(tmp_path, dataset):
    config = write_config(tmp_path / "c.toml", train_data_dir=str(dataset), train_batch_size="many")
    one_line_error(run_cli("schedule", config), "c.toml: train_batch_size: 'many' is not a whole number")


def test_unknown_keys_are_reported_and_the_command_still_runs(tmp_path, dataset):
    config = write_config(tmp_path / "c.toml", train_data_dir=str(dataset), netwrok_dim=4, max_train_epochs=1)
    done = run_cli("plan", config, "--json")
    assert done.returncode == 0 and "unknown keys, not used: netwrok_dim" in done.stderr
    assert json.loads(done.stdout)["num_train_images"] == 3


def test_missing_dataset_folder(tmp_path):
    config = write_config(tmp_path / "c.toml", train_data_dir=str(tmp_path / "gone"), max_train_epochs=1)
    one_line_error(run_cli("plan", config), "train_data_dir", "gone: folder not found")
    config = write_config(tmp_path / "r.toml", train_data_dir=str(tmp_path), reg_data_dir=str(tmp_path / "noreg"),
                          max_train_epochs=1)
    one_line_error(run_cli("plan", config), "reg_data_dir", "noreg: folder not found")


def test_image_pil_cannot_open(tmp_path, dataset):
    (dataset / "3_cat" / "bad.webp").write_bytes(b"RIFF0000WEBPnothing")
    config = write_config(tmp_path / "c.toml", train_data_dir=str(dataset), max_train_epochs=1)
    one_line_error(run_cli("plan", config), "bad.webp: not a readable image", "workbench check")


def test_config_errors_stop_plan_and_schedule_with_the_first_one(tmp_path, dataset):
    config = write_config(tmp_path / "c.toml", train_data_dir=str(dataset), lr_scheduler="cosine_annealing",
                          train_batch_size=0, max_train_epochs=1)
    line = one_line_error(run_cli("schedule", config), "unknown 'cosine_annealing'", "(and 1 more: run workbench check)")
    assert "valid: constant" in line
    config = write_config(tmp_path / "s.toml", max_train_epochs="", max_train_steps=0)
    one_line_error(run_cli("schedule", config), "max_train_epochs", "1,600")


def test_bad_command_lines_exit_2_with_one_line(tmp_path):
    one_line_error(run_cli("plan"), "the following arguments are required: config", code=2)
    one_line_error(run_cli("frobnicate"), "invalid choice", code=2)
    one_line_error(run_cli("plan", tmp_path / "c.toml", "--num-processes", "0"), "not a whole number of 1 or more",
                   code=2)


def test_plan_text_summary_and_schedule_text(tmp_path, dataset):
    config = write_config(tmp_path / "c.toml", train_data_dir=str(dataset), max_train_epochs=2,
                          lr_scheduler="constant", lr_warmup_steps=0.1)
    done = run_cli("plan", config)
    assert done.returncode == 0 and "Total steps:       6" in done.stdout and "512 × 512" in done.stdout
    done = run_cli("schedule", config)
    assert done.returncode == 0 and "ignored: constant has no warmup" in done.stdout


def test_import_and_help_load_no_heavy_library():
    code = ("import sys, runpy; sys.argv = ['workbench', '--help']\n"
            "try:\n    runpy.run_module('workbench', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "plan" in done.stdout and done.stdout.strip().endswith("[]")


def test_core_modules_and_commands_load_no_heavy_library():
    modules = ["workbench", "workbench.config.schema", "workbench.config.validate", "workbench.dataset.scan", "workbench.planning.buckets",
               "workbench.planning.plan", "workbench.planning.schedules", "workbench.runs.preflight", "workbench.config.kohya", "workbench.models.modelinfo",
               "workbench.commands.plan", "workbench.commands.schedule", "workbench.commands.check",
               "workbench.commands.import_kohya", "workbench.commands.export"]
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


class CountingStdout(io.StringIO):
    """stdout that counts the writes it is handed (an unbuffered pipe makes each one a syscall)."""

    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_plan_json_goes_out_in_one_write(tmp_path, monkeypatch):
    from workbench.__main__ import main
    for i in range(40):
        make_image(tmp_path / "train" / "2_cat" / f"{i:03}.png", (64 + 8 * (i % 5), 64))
    config = write_config(tmp_path / "c.toml", train_data_dir=str(tmp_path / "train"), max_train_epochs=1,
                          resolution="64,64", min_bucket_reso=64)
    out = CountingStdout()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["plan", str(config), "--json"]) == 0
    assert out.writes == 1 and len(json.loads(out.getvalue())["images"]) == 40
