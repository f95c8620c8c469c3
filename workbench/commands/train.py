"""`workbench train CONFIG [--run-dir DIR] [--queue | --parallel]`: make a run dir, start the trainer
in it and follow it on the terminal (step/total, loss, s/step, ETA) until it ends. While another
run is training it is refused, queued (--queue: it starts when the GPU is free) or started beside
it (--parallel). Exit 0 when it finished (or was queued); on failure the end event's error and
exit 1. Ctrl-C asks the trainer to stop (SIGTERM): it saves the LoRA and the training state under
a "stopped" name first; a second Ctrl-C leaves it running in the background."""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from workbench.commands._common import load_config
from workbench.errors import UserError
from workbench.models.sources import remember_recent
from workbench.runs import queue as run_queue
from workbench.runs.registry import MetricsTail, start_blockers, start_run
from workbench.runs.resume import resume_config

POLL_S = 0.25            # seconds between reads of metrics.jsonl
BAR_WIDTH = 24
LINE_EVERY_S = 5.0       # without a terminal: one progress line per this many seconds


def add_arguments(parser) -> None:
    parser.add_argument("config", nargs="?", help="config TOML (not with --resume)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped, failed or crashed run from its last "
                        "saved state (steps, LR schedule, data order), as a new run of the same config")
    parser.add_argument("--run-dir", help="run directory to create (default: a new one under the workspace's runs/)")
    parser.add_argument("--queue", action="store_true", help="when another run is training, queue this one to start "
                        "when it ends (and return at once); otherwise start and follow it as usual")
    parser.add_argument("--parallel", action="store_true", help="start now even while another run is training "
                        "(both share the GPU)")


def run(args) -> int:
    cfg = config_to_run(args)
    problems = start_blockers(cfg)      # the Training page's Start asks the same, before anything is made
    if problems:
        raise UserError("not started: " + "; ".join(problems))
    if not args.parallel and run_queue.busy():
        return queue_behind(cfg, args)
    run_dir, proc = start_run(cfg, args.run_dir, foreground=True)
    remember_recent(cfg.pretrained_model_name_or_path)
    print(f"run dir: {run_dir}  (log: {run_dir / 'trainer.log'})", flush=True)
    return Follower(run_dir, sys.stderr).follow(proc)


def config_to_run(args):
    if args.resume and args.config:
        raise UserError("give a CONFIG or --resume RUN_DIR, not both (a resumed run keeps its own config)")
    if args.resume:
        cfg = resume_config(args.resume)
        print(f"resuming {Path(args.resume).name} from {cfg.resume}", flush=True)
        return cfg
    if not args.config:
        raise UserError("give a CONFIG, or --resume RUN_DIR")
    return load_config(args.config)


def queue_behind(cfg, args) -> int:
    """Another trainer is alive: queue this run with --queue, else say how to."""
    training = ", ".join(p.name for p in run_queue.busy())
    if not args.queue:
        raise UserError(f"run {training} is training; add --queue to start this one when it ends, or --parallel "
                        "to start it now beside it (both share the GPU: slower, and memory may run out)")
    run_dir = run_queue.enqueue(cfg, args.run_dir)
    remember_recent(cfg.pretrained_model_name_or_path)
    run_queue.advance()            # the other run may have ended meanwhile
    place = [str(p) for p in run_queue.queued()]
    where = f"#{place.index(str(run_dir)) + 1} in the queue" if str(run_dir) in place else "started"
    print(f"queued: {run_dir} ({where}, behind {training}); it starts when the GPU is free, with or without "
          "the app; watch it on the Training page", flush=True)
    return 0


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
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return f"downloading the base model [{bar}] {done / 1e6:.1f}/{total / 1e6:.1f} MB"


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
