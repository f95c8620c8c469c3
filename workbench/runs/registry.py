"""Run directories: the contract between the app and the trainer.

    <run>/config.toml    frozen copy of the config the run uses
    <run>/metrics.jsonl  events, one JSON object per line, appended and flushed by the trainer
    <run>/status.json    pid, state, step, total_steps, times, outputs, error (replaced atomically)
    <run>/trainer.log    the process's output
    <run>/samples/       sample images
    <run>/estimate.json  the estimate it was started with (workbench.runs.estimate_record)

Everything the app shows about a run is rebuilt from these files, so reloads, closed browsers and
restarted apps see the same runs. The trainer runs in its own session (it outlives the app);
stopping is SIGTERM to the pid in status.json, checked against the pid's start time.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from workbench import workspace
from workbench.config.schema import FIELDS, TrainConfig, load_toml, save_toml
from workbench.config.topics import where
from workbench.config.validate import errors, validate
from workbench.dataset.masks import mask_findings
from workbench.errors import UserError
from workbench.fileio import write_json_atomic
from workbench.planning.plan import make_plan
from workbench.runs.estimate_record import record_estimate
from workbench.runs.metrics_file import MetricsTail, read_metrics  # noqa: F401  (the run-dir API: runs.read_metrics)
from workbench.runs.preflight import cuda_available, hardware_findings, model_findings, output_findings

PROJECT_ROOT = Path(__file__).resolve().parents[2]      # the checkout: workbench/runs/registry.py
ACTIVE_STATES = ("starting", "running")
_children: set[int] = set()   # pids this process launched, reaped without blocking


class RunError(UserError):
    pass


# ---------------------------------------------------------------- processes

def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (Linux); None when there is no such file."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def proc_start_time(pid: int) -> int | None:
    """The pid's start time in clock ticks since boot (Linux /proc), to tell a reused pid apart."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def pid_alive(pid: int | None, start_time: int | None = None) -> bool:
    if not pid:
        return False
    reap_children()
    try:
        os.kill(pid, 0)
    except OSError as exc:
        if exc.errno != errno.EPERM:
            return False
    fields = _proc_stat(pid)          # None off Linux: os.kill is all we can tell
    if fields is not None:
        if fields[0] == "Z":          # exited, not yet reaped by its parent
            return False
        if start_time is not None and int(fields[19]) != start_time:
            return False
    return True


def reap_children() -> None:
    """waitpid(WNOHANG) on the trainers this process started, so none is left a zombie."""
    for pid in list(_children):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _children.discard(pid)


def trainer_command(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "trainer", str(run_dir)]


def trainer_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ---------------------------------------------------------------- run dirs

def new_run_dir(cfg: TrainConfig, root: Path | None = None) -> Path:
    root = Path(root or workspace.runs_dir())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in cfg.output_name or "run")
    path = root / f"{stamp}-{name}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{name}-{n}"
    return path


def create_run(cfg: TrainConfig, run_dir: str | Path | None = None) -> Path:
    """Make the run dir, freeze the config into it and record the run's estimate (estimate.json).
    An existing run dir is never reused."""
    run_dir = Path(run_dir) if run_dir else new_run_dir(cfg)
    if (run_dir / "config.toml").exists() or (run_dir / "status.json").exists():
        raise RunError(f"{run_dir}: already holds a run; choose a new --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_toml(cfg, run_dir / "config.toml")
    # the estimate the start panel shows, kept for the history's estimate-vs-actual columns
    record_estimate(run_dir, cfg, list_runs())
    return run_dir


def read_status(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / "status.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def write_status(run_dir: Path, **values) -> dict:
    status = {**read_status(run_dir), **values, "updated_at": time.time()}
    write_json_atomic(Path(run_dir) / "status.json", status)
    return status


# ---------------------------------------------------------------- may a run start? start it

def start_blockers(cfg: TrainConfig, num_processes: int = 1) -> list[str]:
    """Why the config cannot start a run, one line each naming the field, folder or file: the
    preflight errors that are quick to find (validation, the model's family, the hardware, an output
    that would be overwritten) and a plan that cannot be made; empty when it can start. The one start
    decision: the page and `workbench train` ask it before anything is created, the trainer again on
    the frozen config before it loads anything. The image decoding pass of preflight is the Dataset
    page's, not a click's."""
    config_errors = errors(validate(cfg, require_paths=True))
    findings = config_errors + model_findings(cfg) + output_findings(cfg) + hardware_findings(cfg, cuda_available())
    problems = [f"{f.field}: {f.message}" if f.field else f.message for f in errors(findings)]
    if config_errors:              # the plan reads the config: only a sound one can be planned
        return problems
    try:
        plan = make_plan(cfg, num_processes=num_processes)
    except UserError as exc:       # the dataset: a missing folder, no images …
        return problems + [str(exc)]
    return problems + _mask_blockers(cfg, plan)


# blockers about these keys are fixed on the Dataset page (its folders, the image and mask files)
DATASET_KEYS = ("train_data_dir", "reg_data_dir", "conditioning_data_dir", "masked_loss", "alpha_mask")


def where_to_fix(blocker: str) -> str:
    """Where the user fixes one start_blockers line: "Parameters › Topic › Section › Label" for a
    config key, "Dataset" for the folders and files the plan reads (its lines name no key)."""
    key = blocker.partition(":")[0].strip()
    if key in FIELDS and key not in DATASET_KEYS:
        return f"Parameters › {where(key)}"
    return "Dataset"


def _mask_blockers(cfg: TrainConfig, plan) -> list[str]:
    """masked_loss with a mask folder: sd-scripts refuses to start when a training image has no mask
    of its size (a quick look at file names and headers; extra masks stay a Dataset-page warning)."""
    train = list(dict.fromkeys(im.info.path for im in plan.images if not im.is_reg))
    return [f"{f.field}: {f.message} (first: {f.files[0]})" for f in errors(mask_findings(cfg, train))]


def start_run(cfg: TrainConfig, run_dir: str | Path | None = None, foreground: bool = False):
    """Freeze the config into a new run dir and launch its trainer: (run dir, process). A refusal
    (another live run writes the same output) raises RunError with the reason and leaves no
    empty run behind."""
    run_dir = create_run(cfg, run_dir)
    try:
        return run_dir, launch(run_dir, foreground=foreground)
    except UserError:
        for made in ("config.toml", "estimate.json", "status.json"):      # what create_run and launch wrote
            (run_dir / made).unlink(missing_ok=True)
        try:
            run_dir.rmdir()
        except OSError:
            pass
        raise


# ---------------------------------------------------------------- launch / stop

def _lock_path(cfg: TrainConfig) -> Path:
    target = str(Path(cfg.output_dir or ".").expanduser().absolute() / cfg.output_name)
    return workspace.home() / "locks" / (hashlib.sha1(target.encode()).hexdigest()[:16] + ".json")


def active_run_for_output(cfg: TrainConfig) -> Path | None:
    """The run dir of a live trainer writing the same output_dir/output_name, if any."""
    lock = _lock_path(cfg)
    try:
        held = json.loads(lock.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if pid_alive(held.get("pid"), held.get("pid_start")):
        return Path(held["run_dir"])
    return None


def launch(run_dir: str | Path, foreground: bool = False) -> subprocess.Popen:
    """Start `python -m trainer RUN_DIR` in a new session, output to trainer.log, stdin from
    /dev/null. Refuses when a live run already writes the same output."""
    import fcntl

    run_dir = Path(run_dir).absolute()
    cfg, _ = load_toml(run_dir / "config.toml")
    lock = _lock_path(cfg)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock.with_suffix(".guard"), "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)          # check-and-take is atomic across processes
        busy = active_run_for_output(cfg)
        if busy is not None and busy != run_dir:
            raise RunError(f"output {cfg.output_name} in {cfg.output_dir} is already being trained by "
                           f"run {busy.name}; stop it first or change output_name")
        if not (run_dir / "status.json").exists():     # before the trainer can write its own
            write_status(run_dir, state="starting", started_at=time.time())
        with open(run_dir / "trainer.log", "ab") as log:
            proc = subprocess.Popen(trainer_command(run_dir), cwd=PROJECT_ROOT, env=trainer_env(),
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        start = proc_start_time(proc.pid)
        write_json_atomic(lock, {"pid": proc.pid, "pid_start": start, "run_dir": str(run_dir)})
        _record_pid(run_dir, proc.pid, start)
    if not foreground:
        _children.add(proc.pid)
    return proc


def _record_pid(run_dir: Path, pid: int, start: int | None) -> None:
    """Put the pid into status.json unless the trainer already wrote its own (it knows best)."""
    if not read_status(run_dir).get("pid"):
        write_status(run_dir, pid=pid, pid_start=start)


def stop(run_dir: str | Path) -> bool:
    """SIGTERM the run's trainer: it finishes the current step, saves, writes its end event."""
    status = read_status(Path(run_dir))
    pid = status.get("pid")
    if status.get("state") not in ACTIVE_STATES or not pid_alive(pid, status.get("pid_start")):
        return False
    os.kill(pid, signal.SIGTERM)
    return True


# ---------------------------------------------------------------- reading runs

@dataclass
class RunInfo:
    dir: Path
    status: dict
    state: str      # status.json's state, or "crashed" when it says running but the pid is gone

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def run_info(run_dir: str | Path) -> RunInfo:
    reap_children()          # every look at a run also collects finished trainers (no zombies)
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    state = status.get("state", "unknown")
    launching = state == "starting" and not status.get("pid")     # launch() is about to record it
    if state in ACTIVE_STATES and not launching and not pid_alive(status.get("pid"), status.get("pid_start")):
        state = "crashed"
    return RunInfo(run_dir, status, state)


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """Every run under the workspace's runs/, newest first."""
    root = Path(root or workspace.runs_dir())
    if not root.is_dir():
        return []
    dirs = [d for d in root.iterdir() if (d / "config.toml").is_file()]
    return [run_info(d) for d in sorted(dirs, key=lambda d: d.name, reverse=True)]


def log_tail(run_dir: str | Path, max_bytes: int = 8192) -> str:
    path = Path(run_dir) / "trainer.log"
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - max_bytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
