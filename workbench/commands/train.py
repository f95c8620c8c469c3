"""`workbench train CONFIG [--run-dir DIR]`: make a run dir, start the trainer in it and follow it
on the terminal (step/total, loss, s/step, ETA) until it ends. Exit 0 when it finished; on
failure the end event's error and exit 1. Ctrl-C asks the trainer to stop (SIGTERM): it saves
the LoRA under a "stopped" name first; a second Ctrl-C leaves it running in the background."""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from workbench.commands._common import load_config
from workbench.errors import UserError
from workbench.model_sources import remember_recent
from workbench.runs import MetricsTail, start_blockers, start_run

POLL_S = 0.25            # seconds between reads of metrics.jsonl
BAR_WIDTH = 24
LINE_EVERY_S = 5.0       # without a terminal: one progress line per this many seconds


def add_arguments(parser) -> None:
    parser.add_argument("config", help="config TOML")
    parser.add_argument("--run-dir", help="run directory to create (default: a new one under the workspace's runs/)")


def run(args) -> int:
    cfg = load_config(args.config)
    problems = start_blockers(cfg)      # the Training page's Start asks the same, before anything is made
    if problems:
        raise UserError("not started: " + "; ".join(problems))
    run_dir, proc = start_run(cfg, args.run_dir, foreground=True)
    remember_recent(cfg.pretrained_model_name_or_path)
    print(f"run dir: {run_dir}  (log: {run_dir / 'trainer.log'})", flush=True)
    return Follower(run_dir, sys.stderr).follow(proc)


class Follower:
    def __init__(self, run_dir: Path, out):
        self.tail = MetricsTail(Path(run_dir) / "metrics.jsonl")
        self.out, self.tty = out, out.isatty()
        self.total, self.end, self.durations = 0, None, []
        self.last_line = 0.0
        self.interrupted = False

    def follow(self, proc) -> int:
        while True:
            try:
                self.read()
                if proc.poll() is not None:
                    self.read()
                    break
                time.sleep(POLL_S)
            except KeyboardInterrupt:
                if self.interrupted:
                    self.write_line(f"left running in the background (pid {proc.pid})")
                    return 130
                self.interrupted = True
                proc.send_signal(signal.SIGTERM)
                self.write_line("stopping: the trainer finishes its step and saves (Ctrl-C again to leave it running)")
        return self.exit_code(proc.returncode)

    def read(self) -> None:
        for event in self.tail.read_new():
            kind = event.get("event")
            if kind == "start":
                self.total = int(event.get("total_steps") or 0)
            elif kind == "step":
                self.on_step(event)
            elif kind == "download":
                self.on_download(event)
            elif kind in ("save", "sample"):
                self.write_line(f"{kind}: {event.get('path')}")
            elif kind == "end":
                self.end = event

    def on_step(self, event: dict) -> None:
        self.durations = (self.durations + [float(event.get("s_per_step") or 0.0)])[-50:]
        if self.tty:
            self.out.write("\r" + progress_line(event, self.total, self.durations))
            self.out.flush()
        elif time.monotonic() - self.last_line >= LINE_EVERY_S or event.get("step") == self.total:
            self.last_line = time.monotonic()
            self.write_line(progress_line(event, self.total, self.durations))

    def on_download(self, event: dict) -> None:
        line = download_line(int(event.get("done") or 0), int(event.get("total") or 0))
        if self.tty:
            self.out.write("\r" + line)
            self.out.flush()
        else:
            self.write_line(line)

    def write_line(self, text: str) -> None:
        self.out.write(("\n" if self.tty else "") + text + "\n")
        self.out.flush()

    def exit_code(self, returncode: int | None) -> int:
        status = (self.end or {}).get("status")
        if status == "finished":
            self.write_line("finished")
            return 0
        if status == "stopped":
            self.write_line("stopped")
            return 130 if self.interrupted else 1
        if self.end and self.end.get("error"):
            raise UserError(self.end["error"])
        raise UserError(f"the trainer exited (code {returncode}) without an end event; see trainer.log")


def download_line(done: int, total: int) -> str:
    """downloading the base model [#####...........] 12.0/54.0 MB"""
    filled = BAR_WIDTH * done // total if total else 0
    return f"downloading the base model [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done / 1e6:.1f}/{total / 1e6:.1f} MB"


def progress_line(event: dict, total: int, durations: list[float]) -> str:
    """[#########...............] 12/54  loss 0.1093  0.094 s/step  ETA 0:04"""
    step = int(event.get("step") or 0)
    filled = BAR_WIDTH * step // total if total else 0
    per_step = sum(durations) / len(durations) if durations else 0.0
    eta = int(per_step * max(0, total - step))
    loss = event.get("loss")
    loss_text = f"{loss:.4f}" if isinstance(loss, (int, float)) else "?"
    return (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {step}/{total}  loss {loss_text}  "
            f"{per_step:.3f} s/step  ETA {eta // 60}:{eta % 60:02d}")
