"""The run queue with real trainers on the demo: a run started while another trains waits, starts
when that one ends — started by the ending trainer itself, no app and no CLI watching — and the
queue can be reordered and emptied. Nothing is mocked: the trainers are `workbench train`."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.config.schema import load_toml, save_toml
from workbench.models.demo import build_demo
from workbench.runs import queue as run_queue
from workbench.runs import registry as runs

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 300          # a generous bound on a tiny CPU run; no assertion depends on it


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo(tmp_path_factory.getbasetemp() / "demo")


def config(demo, tmp_path: Path, name: str, **values) -> Path:
    cfg, _ = load_toml(demo.config)
    cfg = cfg.replace(output_dir=str(tmp_path / "out"), output_name=name, sample_every_n_epochs=None,
                      save_every_n_epochs=None, **values)
    return save_toml(cfg, tmp_path / f"{name}.toml")


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.2)


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=WAIT_S)


def test_queued_runs_keep_their_order_and_can_be_moved_and_removed(demo, tmp_path):
    a, b, c = (run_queue.enqueue(load_toml(config(demo, tmp_path, n))[0]) for n in ("a", "b", "c"))
    assert run_queue.queued() == [a, b, c]
    assert all(runs.run_info(d).state == "queued" for d in (a, b, c))
    run_queue.move(c, -1)
    assert run_queue.queued() == [a, c, b]
    run_queue.move(a, 5)                            # past the end: last
    assert run_queue.queued() == [c, b, a]
    run_queue.remove(b)
    assert run_queue.queued() == [c, a] and not b.exists()
    with pytest.raises(run_queue.UserError, match="not in the queue"):
        run_queue.remove(b)
    with pytest.raises(run_queue.UserError, match=f"run {c.name} .* writes the same output c"):
        run_queue.enqueue(load_toml(config(demo, tmp_path, "c"))[0])


@pytest.mark.slow
def test_a_run_started_while_another_trains_waits_and_the_ending_trainer_starts_it(demo, tmp_path, workspace):
    first = subprocess.Popen([sys.executable, "-m", "workbench", "train", config(demo, tmp_path, "long",
                              max_train_epochs=200), "--run-dir", tmp_path / "long"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: runs.read_status(tmp_path / "long").get("state") == "running", "the first run to train")
    second = config(demo, tmp_path, "next", max_train_epochs=1)
    refused = cli("train", second)
    assert refused.returncode == 1 and "run long is training; add --queue" in refused.stderr
    queued = cli("train", "--queue", second, "--run-dir", tmp_path / "next")
    assert queued.returncode == 0, queued.stderr
    assert "#1 in the queue, behind long" in queued.stdout
    assert run_queue.queued() == [tmp_path / "next"] and runs.run_info(tmp_path / "next").state == "queued"
    first.send_signal(signal.SIGINT)           # Ctrl-C on the first: it stops, saves, and starts the next
    first.communicate(timeout=WAIT_S)
    wait_for(lambda: runs.read_status(tmp_path / "next").get("state") in ("finished", "failed"), "the queued run")
    long_status, next_status = runs.read_status(tmp_path / "long"), runs.read_status(tmp_path / "next")
    assert next_status["state"] == "finished", runs.log_tail(tmp_path / "next")
    assert long_status["state"] == "stopped" and next_status["started_at"] >= long_status["finished_at"]
    assert f"queue: started the next run {tmp_path / 'next'}" in runs.log_tail(tmp_path / "long")
    assert run_queue.queued() == []


@pytest.mark.slow
def test_parallel_starts_beside_a_training_run_when_asked(demo, tmp_path):
    first = subprocess.Popen([sys.executable, "-m", "workbench", "train", config(demo, tmp_path, "long",
                              max_train_epochs=200), "--run-dir", tmp_path / "long"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: runs.read_status(tmp_path / "long").get("state") == "running", "the first run to train")
        both = cli("train", "--parallel", config(demo, tmp_path, "beside", max_train_epochs=1),
                   "--run-dir", tmp_path / "beside")
        assert both.returncode == 0, both.stderr
        assert runs.read_status(tmp_path / "long").get("state") == "running"      # still training: two at once
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=WAIT_S)
    assert os.path.isdir(tmp_path / "beside") and run_queue.queued() == []
