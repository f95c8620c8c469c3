"""The run queue: a run started while another trainer is alive waits instead of sharing the GPU.

A queued run is a run dir like any other (config.toml frozen, status.json state "queued"); its
place in line is WORKBENCH_HOME/queue.json, a list of run dir paths. Nothing in the app holds
the queue: the trainer process, as it ends, starts the next queued run (`advance`), so the queue
moves on with the browser closed and the app stopped; the app and the CLI also advance it when
they look (a trainer killed with SIGKILL cannot). Every change happens under one file lock.

"Busy" means a live trainer launched by this workspace (its output lock names a live pid), not
only runs under runs/: a `workbench train --run-dir` elsewhere counts too.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from pathlib import Path

from workbench import workspace
from workbench.config.schema import load_toml
from workbench.errors import UserError
from workbench.fileio import write_json_atomic
from workbench.models.sources import remember_recent
from workbench.runs import registry as runs
from workbench.runs.outputs import lora_path

QUEUED = "queued"


def queue_path() -> Path:
    return workspace.home() / "queue.json"


@contextlib.contextmanager
def _locked():
    lock = workspace.home() / "queue.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _read() -> list[str]:
    try:
        names = json.loads(queue_path().read_text())
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def queued() -> list[Path]:
    """The queued run dirs in the order they will start (entries whose run is gone are skipped)."""
    return [Path(p) for p in _read() if runs.read_status(Path(p)).get("state") == QUEUED]


def busy() -> list[Path]:
    """Run dirs of the live trainers this workspace launched."""
    live = []
    for lock in sorted((workspace.home() / "locks").glob("*.json")):
        try:
            held = json.loads(lock.read_text())
        except (OSError, ValueError):
            continue
        # a trainer advancing the queue as it ends still holds its lock: it is not in the way
        if held.get("pid") != os.getpid() and runs.pid_alive(held.get("pid"), held.get("pid_start")):
            live.append(Path(held["run_dir"]))
    return live


def same_output_ahead(cfg) -> Path | None:
    """A queued or training run that will write this config's output (the later one would fail)."""
    target = lora_path(cfg).expanduser().absolute()
    for run_dir in queued() + busy():
        try:
            other, _ = load_toml(run_dir / "config.toml")
        except (UserError, OSError):
            continue
        if lora_path(other).expanduser().absolute() == target:
            return run_dir
    return None


def enqueue(cfg, run_dir: str | Path | None = None) -> Path:
    """Freeze the config into a new run dir that waits in line (last); refused when a run ahead
    writes the same output (it would be refused when its turn came, unseen)."""
    ahead = same_output_ahead(cfg)
    if ahead is not None:
        raise UserError(f"run {ahead.name} (queued or training) writes the same output {cfg.output_name} in "
                        f"{cfg.output_dir}; change output_name")
    run_dir = runs.create_run(cfg, run_dir).absolute()
    runs.write_status(run_dir, state=QUEUED, queued_at=time.time(), step=0)
    with _locked():
        write_json_atomic(queue_path(), _read() + [str(run_dir)])
    return run_dir


def start_or_queue(cfg, run_dir: str | Path | None = None, parallel: bool = False) -> tuple[Path, bool]:
    """Start the run now when no trainer is alive (or `parallel`: beside them), else queue it.
    Returns (run dir, started now)."""
    remember_recent(cfg.pretrained_model_name_or_path)
    if parallel or not busy():
        return runs.start_run(cfg, run_dir)[0], True
    run_dir = enqueue(cfg, run_dir)
    advance()                  # the trainer may have ended between the look and the queueing
    return run_dir, runs.read_status(run_dir).get("state") != QUEUED


def advance() -> Path | None:
    """Start the first queued run if no trainer is alive; a queued run that cannot start is
    marked failed with the reason and the next one is tried. Returns the started run dir."""
    with _locked():
        if busy():
            return None
        line = _read()
        while line:
            run_dir = Path(line.pop(0))
            write_json_atomic(queue_path(), line)
            if runs.read_status(run_dir).get("state") != QUEUED:
                continue
            try:
                runs.write_status(run_dir, state="starting", started_at=time.time())
                runs.launch(run_dir)
                return run_dir
            except (UserError, OSError) as exc:
                runs.write_status(run_dir, state="failed", error=f"could not start from the queue: {exc}")
    return None


def move(run_dir: str | Path, delta: int) -> None:
    """Move a queued run `delta` places (negative: earlier)."""
    with _locked():
        line = _read()
        key = str(Path(run_dir))
        if key not in line:
            raise UserError(f"{Path(run_dir).name}: not in the queue (it may have started)")
        i = line.index(key)
        j = max(0, min(len(line) - 1, i + delta))
        line.insert(j, line.pop(i))
        write_json_atomic(queue_path(), line)


def remove(run_dir: str | Path) -> None:
    """Take a run out of the queue and delete its run dir (it holds only the frozen config)."""
    run_dir = Path(run_dir)
    with _locked():
        line = _read()
        if str(run_dir) not in line or runs.read_status(run_dir).get("state") != QUEUED:
            raise UserError(f"{run_dir.name}: not in the queue (it may have started)")
        line.remove(str(run_dir))
        write_json_atomic(queue_path(), line)
        shutil.rmtree(run_dir, ignore_errors=True)
