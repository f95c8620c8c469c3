"""TensorBoard on the workspace's runs: one server per workspace, started on demand in its own
session (it outlives the app like a trainer does), on 127.0.0.1 with a free port. Its pid, pid
start time and port are kept in WORKBENCH_HOME/tensorboard.json so every app session, and a
restarted app, reuses the live one instead of starting another."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from workbench import workspace
from workbench.fileio import write_json_atomic
from workbench.runs.registry import pid_alive, proc_start_time

HOST = "127.0.0.1"


@dataclass(frozen=True)
class TensorBoard:
    pid: int
    pid_start: int | None
    port: int
    logdir: str

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"


def state_path() -> Path:
    return workspace.home() / "tensorboard.json"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def running() -> TensorBoard | None:
    """The workspace's TensorBoard if its recorded process is still alive (pid and start time)."""
    try:
        board = TensorBoard(**json.loads(state_path().read_text()))
    except (OSError, ValueError, TypeError):
        return None
    _reap(board.pid)
    return board if pid_alive(board.pid, board.pid_start) else None


def ensure_running(logdir: str | Path | None = None) -> TensorBoard:
    """The live TensorBoard on `logdir` (default: the runs folder), started if there is none."""
    logdir = str(Path(logdir or workspace.runs_dir()).absolute())
    board = running()
    if board is not None and board.logdir == logdir:
        return board
    if board is not None:
        stop(board)
    return _start(logdir)


def _start(logdir: str) -> TensorBoard:
    Path(logdir).mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(workspace.home() / "tensorboard.log", "ab")
    with log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--host", HOST,
             "--port", str(port), "--reload_interval", "5"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    board = TensorBoard(proc.pid, proc_start_time(proc.pid), port, logdir)
    write_json_atomic(state_path(), board.__dict__)
    return board


def stop(board: TensorBoard, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within timeout_s."""
    if pid_alive(board.pid, board.pid_start):
        os.kill(board.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(board.pid)
        if not pid_alive(board.pid, board.pid_start):
            return
        time.sleep(0.1)
    try:
        os.kill(board.pid, signal.SIGKILL)
    except ProcessLookupError:        # it exited just now
        pass
    _reap(board.pid)


def wait_ready(board: TensorBoard, timeout_s: float = 30.0) -> bool:
    """True once the server accepts connections (it takes a few seconds to load)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, board.port), timeout=1):
                return True
        except OSError:
            if not pid_alive(board.pid, board.pid_start):
                return False
            time.sleep(0.2)
    return False


def _reap(pid: int) -> None:
    """Collect the exit status of a TensorBoard this process started, so no zombie is left."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
