"""Resume in one step: a run stopped mid-epoch (Ctrl-C / the app's Stop, without save_state) keeps
its training state in RUN_DIR/state, and `workbench train --resume RUN_DIR` continues it — the
same steps, LR and losses as a run that was never stopped. Real tiny-model training throughout."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.config.schema import load_toml, save_toml
from workbench.models.demo import build_demo
from workbench.runs import registry as runs
from workbench.runs.resume import resume_config

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4                   # 18 steps each on the demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo(tmp_path_factory.getbasetemp() / "demo")


def steps(run_dir: Path) -> list[dict]:
    return [e for e in runs.read_metrics(run_dir) if e["event"] == "step"]


def test_a_stopped_run_resumes_where_it_stopped_as_if_never_stopped(demo, tmp_path):
    cfg, _ = load_toml(demo.config)
    # a save after each epoch: the run's state is replaced at each, then at the stop
    cfg = cfg.replace(max_train_epochs=EPOCHS, sample_every_n_epochs=None, save_every_n_epochs=1, seed=7,
                      save_state=False)
    from trainer.recipe import run
    reference = runs.create_run(cfg.replace(output_dir=str(tmp_path / "ref")), tmp_path / "ref-run")
    assert run(reference) == 0
    config = save_toml(cfg.replace(output_dir=str(tmp_path / "out")), tmp_path / "cfg.toml")
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "train", str(config), "--run-dir",
                             str(tmp_path / "stopped")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 300
    while len(steps(tmp_path / "stopped")) < 21:          # past the first epoch's save
        assert proc.poll() is None and time.monotonic() < deadline, runs.log_tail(tmp_path / "stopped")
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)               # Ctrl-C: the trainer stops after this step and saves
    proc.communicate(timeout=300)
    stopped_at = runs.read_status(tmp_path / "stopped")["step"]
    assert runs.run_info(tmp_path / "stopped").state == "stopped" and 21 <= stopped_at < EPOCHS * 18
    assert (tmp_path / "stopped" / "state" / "train_state.json").is_file()

    done = subprocess.run([sys.executable, "-m", "workbench", "train", "--resume", str(tmp_path / "stopped"),
                           "--run-dir", str(tmp_path / "resumed")], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr + runs.log_tail(tmp_path / "resumed")
    assert f"resuming stopped from {tmp_path / 'stopped' / 'state'}" in done.stdout
    after, expected = steps(tmp_path / "resumed"), steps(reference)[stopped_at:]
    assert [e["step"] for e in after] == list(range(stopped_at + 1, EPOCHS * 18 + 1))
    assert [e["lr_unet"] for e in after] == pytest.approx([e["lr_unet"] for e in expected])
    # the same batches in the same order with the same noise: the same losses as the unstopped run
    assert [e["loss"] for e in after] == pytest.approx([e["loss"] for e in expected], rel=1e-4)
    assert (tmp_path / "out" / "demo-lora.safetensors").is_file()


def test_a_run_that_cannot_be_resumed_says_why(demo, tmp_path):
    cfg, _ = load_toml(demo.config)
    run_dir = runs.create_run(cfg.replace(output_dir=str(tmp_path / "out")), tmp_path / "run")
    runs.write_status(run_dir, state="finished")
    with pytest.raises(runs.UserError, match="finished; only a stopped, failed or crashed run can be resumed"):
        resume_config(run_dir)
    runs.write_status(run_dir, state="stopped")
    with pytest.raises(runs.UserError, match="no saved training state"):
        resume_config(run_dir)
    done = subprocess.run([sys.executable, "-m", "workbench", "train", "--resume", str(tmp_path / "nope")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.strip().endswith("nope: not a run folder (no config.toml)")
