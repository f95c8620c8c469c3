"""Caption jobs for the app: a folder per job, a process per job, files as the contract.

    <job>/job.json       what to caption and how (settings + folder), written once
    <job>/status.json    pid, state, total, done, counts, eta_s, images_per_s, error (replaced atomically)
    <job>/outcomes.jsonl one line per image: written / skipped / failed, with the reason
    <job>/worker.log     the process's output

Jobs live under WORKBENCH_HOME/caption-jobs/. The page rebuilds everything from these files, so
reloads and closed tabs see the same job; Stop is SIGTERM to the pid in status.json (checked
against the pid's start time), and the worker stops after its current batch. One job runs at a
time: two at once could write the same captions.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from workbench import workspace
from workbench.captioning.settings import CaptionSettings, cli_args
from workbench.errors import UserError
from workbench.fileio import write_json_atomic
from workbench.runs.registry import PROJECT_ROOT, pid_alive, proc_start_time, read_status, trainer_env, write_status

ACTIVE_STATES = ("starting", "loading", "running")
_children: set[int] = set()      # worker pids this process started, reaped without blocking


def jobs_dir() -> Path:
    return workspace.home() / "caption-jobs"


def create_job(settings: CaptionSettings, folder: str | Path) -> Path:
    settings.check()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    job_dir, n = jobs_dir() / stamp, 1
    while job_dir.exists():
        n += 1
        job_dir = jobs_dir() / f"{stamp}-{n}"
    job_dir.mkdir(parents=True)
    write_json_atomic(job_dir / "job.json", {"folder": str(Path(folder).expanduser().absolute()),
                                             "settings": settings.to_json()})
    return job_dir


def read_job(job_dir: Path) -> tuple[CaptionSettings, Path]:
    try:
        data = json.loads((Path(job_dir) / "job.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{job_dir}/job.json: unreadable ({exc})") from None
    return CaptionSettings.from_json(data["settings"]), Path(data["folder"])


def launch_job(job_dir: Path) -> subprocess.Popen:
    """Start `python -m workbench.captioning.worker JOB_DIR` in its own session (it outlives the
    page); refused while another job runs."""
    busy = active_job()
    if busy is not None:
        raise UserError(f"a caption run is already going ({busy.dir.name}); stop it or let it finish first")
    write_status(job_dir, state="starting", started_at=time.time())
    with open(Path(job_dir) / "worker.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "workbench.captioning.worker", str(job_dir)],
                                cwd=PROJECT_ROOT, env=trainer_env(), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    if not read_status(job_dir).get("pid"):           # unless the worker already wrote its own
        write_status(job_dir, pid=proc.pid, pid_start=proc_start_time(proc.pid))
    _children.add(proc.pid)
    return proc


def stop_job(job_dir: Path) -> bool:
    """SIGTERM the job's worker: it finishes the batch it is on, then ends as "stopped"."""
    info = job_info(job_dir)
    if not info.active or not info.status.get("pid"):
        return False
    os.kill(info.status["pid"], signal.SIGTERM)
    return True


@dataclass
class JobInfo:
    dir: Path
    status: dict
    state: str       # status.json's state, or "crashed" when it says running but the pid is gone

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def job_info(job_dir: Path) -> JobInfo:
    _reap()
    status = read_status(Path(job_dir))
    state = status.get("state", "unknown")
    launching = state == "starting" and not status.get("pid")
    if state in ACTIVE_STATES and not launching and not pid_alive(status.get("pid"), status.get("pid_start")):
        state = "crashed"
    return JobInfo(Path(job_dir), status, state)


def list_jobs() -> list[JobInfo]:
    """Every job, newest first."""
    root = jobs_dir()
    if not root.is_dir():
        return []
    dirs = sorted((d for d in root.iterdir() if (d / "job.json").is_file()), key=lambda d: d.name, reverse=True)
    return [job_info(d) for d in dirs]


def latest_job() -> JobInfo | None:
    jobs = list_jobs()
    return jobs[0] if jobs else None


def active_job() -> JobInfo | None:
    return next((j for j in list_jobs() if j.active), None)


def read_outcomes(job_dir: Path) -> list[dict]:
    try:
        lines = (Path(job_dir) / "outcomes.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:          # a line being written
            continue
    return out


def _reap() -> None:
    for pid in list(_children):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _children.discard(pid)


def run_preview(folder: str | Path, settings: CaptionSettings, count: int,
                timeout_s: float = 900) -> tuple[list[dict], list[str]]:
    """`workbench caption FOLDER … --preview COUNT --json` in a subprocess (the app never loads a
    model itself): the rows it prints and its notes, or a UserError with its one-line error."""
    command = [sys.executable, "-m", "workbench", "caption", str(folder), *cli_args(settings.check()),
               "--preview", str(count), "--json"]
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=PROJECT_ROOT,
                              env=trainer_env(), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise UserError(f"preview: the model took over {timeout_s:.0f} s on {count} images; "
                        "try a smaller model") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise UserError(lines[-1].removeprefix("workbench caption: error: ") if lines else
                        f"preview failed (exit status {done.returncode})")
    notes = [line.removeprefix("note: ") for line in done.stderr.splitlines() if line.startswith("note: ")]
    return json.loads(done.stdout), notes
