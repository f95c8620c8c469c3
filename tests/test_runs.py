"""The run-dir contract (workbench/runs/registry.py): run dirs, launching the real trainer process, the
lock against a second run of the same output, liveness against pid reuse, stopping while the
trainer is still starting, and the incremental metrics reader."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from workbench.config.schema import TrainConfig, new_config
from workbench.runs import registry as runs


def config(tmp_path, **changes) -> TrainConfig:
    # paths need not exist: these tests stop or inspect the trainer before it reads them
    return new_config(pretrained_model_name_or_path=str(tmp_path / "model"), train_data_dir=str(tmp_path / "data"),
                      output_dir=str(tmp_path / "out"), output_name="lora", mixed_precision="no",
                      optimizer_type="AdamW", **changes)


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_create_run_freezes_the_config_and_never_reuses_a_run_dir(tmp_path):
    cfg = config(tmp_path, train_batch_size=3)
    run_dir = runs.create_run(cfg, tmp_path / "run")
    frozen, _ = __import__("workbench.config.schema", fromlist=["load_toml"]).load_toml(run_dir / "config.toml")
    assert frozen == cfg
    with pytest.raises(runs.RunError, match="already holds a run"):
        runs.create_run(cfg, run_dir)


def test_new_run_dirs_are_unique_and_listed_newest_first(tmp_path):
    cfg = config(tmp_path)
    first = runs.create_run(cfg)
    second = runs.create_run(cfg)
    assert first != second and first.parent == second.parent
    assert [r.dir for r in runs.list_runs()] == sorted([first, second], key=lambda d: d.name, reverse=True)


def test_metrics_tail_reads_only_new_complete_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = runs.MetricsTail(path)
    assert tail.read_new() == []                      # no file yet
    with open(path, "w") as f:
        f.write('{"event": "start"}\n{"event": "step", "st')
    assert tail.read_new() == [{"event": "start"}]
    offset = tail.offset
    assert tail.read_new() == [] and tail.offset == offset     # the partial line waits
    with open(path, "a") as f:
        f.write('ep": 1}\n')
    assert tail.read_new() == [{"event": "step", "step": 1}]
    assert [e["event"] for e in tail.events] == ["start", "step"]


def test_a_dead_pid_shows_a_running_run_as_crashed(tmp_path):
    run_dir = runs.create_run(config(tmp_path), tmp_path / "run")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runs.write_status(run_dir, state="running", pid=dead.pid, pid_start=None)
    assert runs.run_info(run_dir).state == "crashed"


def test_a_reused_pid_is_not_taken_for_the_trainer(tmp_path):
    run_dir = runs.create_run(config(tmp_path), tmp_path / "run")
    me = os.getpid()
    runs.write_status(run_dir, state="running", pid=me, pid_start=runs.proc_start_time(me))
    assert runs.run_info(run_dir).state == "running"
    runs.write_status(run_dir, pid_start=runs.proc_start_time(me) - 1)    # same pid, another process
    assert runs.run_info(run_dir).state == "crashed"


@pytest.mark.slow
def test_stop_while_the_trainer_is_starting_ends_stopped_and_frees_the_output(tmp_path):
    cfg = config(tmp_path)
    run_dir = runs.create_run(cfg, tmp_path / "run")
    proc = runs.launch(run_dir)
    assert runs.run_info(run_dir).state == "starting"
    second = runs.create_run(cfg, tmp_path / "run2")
    with pytest.raises(runs.RunError, match="already being trained"):
        runs.launch(second)
    time.sleep(0.5)               # past interpreter start-up, well before torch is imported
    assert runs.stop(run_dir)
    assert proc.wait(timeout=120) == 0
    runs.reap_children()
    assert runs.run_info(run_dir).state == "stopped"
    events = runs.read_metrics(run_dir)
    assert events[-1]["event"] == "end" and events[-1]["status"] == "stopped"
    assert runs.active_run_for_output(cfg) is None


@pytest.mark.slow
def test_a_background_trainer_is_reaped_and_leaves_no_zombie(tmp_path):
    run_dir = runs.create_run(config(tmp_path), tmp_path / "run")
    proc = runs.launch(run_dir)          # fails fast: the dataset folder does not exist
    assert wait_for(lambda: runs.run_info(run_dir).state not in runs.ACTIVE_STATES, timeout=120)
    info = runs.run_info(run_dir)
    assert info.state == "failed" and "folder not found" in info.status["error"]
    assert wait_for(lambda: runs.run_info(run_dir) and proc.pid not in runs._children, timeout=10)
    with pytest.raises(ChildProcessError):
        os.waitpid(proc.pid, os.WNOHANG)     # already reaped by reap_children
    assert json.loads((run_dir / "status.json").read_text())["pid"] == proc.pid


def test_the_trainer_starts_from_the_checkout_root():
    """The trainer runs with the checkout as its cwd and first PYTHONPATH entry, wherever the
    registry module sits in the package (it moved into workbench/runs/ once and pointed at workbench/)."""
    assert (runs.PROJECT_ROOT / "trainer" / "__main__.py").is_file()
    assert runs.trainer_env()["PYTHONPATH"].split(os.pathsep)[0] == str(runs.PROJECT_ROOT)
