"""What the trainer tells the world (metrics.jsonl, status.json, TensorBoard, trainer.log) and
the one thing it is told (SIGTERM: stop after this step and save).

metrics.jsonl gets one JSON object per line, appended and flushed as it happens; status.json is
replaced atomically, at every change of state and at most every STATUS_EVERY_S seconds while
steps run (an fsync per step would cost more than a small model's step).
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import deque
from pathlib import Path

from trainer.trackers import close_wandb
from workbench.runs.registry import proc_start_time, write_status

STATUS_EVERY_S = 2.0       # seconds between status.json rewrites during steps
LOG_EVERY_S = 10.0         # seconds between progress lines in trainer.log


class StopRequest:
    """Set by SIGTERM (the app's Stop button) or SIGINT; the loop checks it after each step."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.requested = False
        self.previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}

    def restore(self) -> None:
        """Put back the handlers there were (the recipe may run inside another program, e.g. a test)."""
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if not self.requested:
            print(f"\n{signal.Signals(signum).name}: finishing this step, then saving and stopping", flush=True)
        self.requested = True


class RunEvents:
    def __init__(self, run_dir: Path, enabled: bool = True):
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.metrics = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") if enabled else None
        self.tensorboard = None
        self.wandb = None           # a wandb run with log_with wandb / all (trainer/trackers.py)
        self.step = 0               # the optimizer step the wandb scalars are logged at
        self.last_status = 0.0
        self.last_log = 0.0
        self.download_lock = threading.Lock()     # huggingface_hub reports from its download threads
        self.last_download = 0.0

    # ------------------------------------------------------------ metrics.jsonl
    def emit(self, event: str, **fields) -> None:
        if not self.enabled:
            return
        self.metrics.write(json.dumps({"event": event, **fields, "time": time.time()}) + "\n")
        self.metrics.flush()

    # ------------------------------------------------------------ status.json
    def status(self, **values) -> None:
        if self.enabled:
            write_status(self.run_dir, **values)
            self.last_status = time.monotonic()

    def starting(self, **values) -> None:
        pid = os.getpid()
        self.status(pid=pid, pid_start=proc_start_time(pid), state="starting", started_at=time.time(),
                    step=0, outputs=[], error=None, **values)

    def step_status(self, step: int) -> None:
        self.step = step
        if time.monotonic() - self.last_status >= STATUS_EVERY_S:
            self.status(state="running", step=step)

    def download(self, done: int, total: int) -> None:
        """The base model coming from the Hugging Face Hub: bytes so far, at most every
        STATUS_EVERY_S seconds (and the last), in metrics.jsonl and status.json."""
        with self.download_lock:
            if done < total and time.monotonic() - self.last_download < STATUS_EVERY_S:
                return
            if not self.last_download:
                self.log(f"downloading the base model into the Hugging Face cache: {total / 1e6:.1f} MB")
            self.last_download = time.monotonic()
            self.emit("download", done=done, total=total)
            self.status(download={"done": done, "total": total})

    # ------------------------------------------------------------ TensorBoard
    def open_tensorboard(self, logging_dir: str) -> Path | None:
        if not self.enabled:
            return None
        from torch.utils.tensorboard import SummaryWriter
        folder = Path(logging_dir) if logging_dir else self.run_dir / "tb"
        self.tensorboard = SummaryWriter(str(folder))
        return folder

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.tensorboard is not None:
            for tag, value in values.items():
                self.tensorboard.add_scalar(tag, value, step)
        if self.wandb is not None:      # sd-scripts logs to wandb with the global step as a value
            self.wandb.log({**values, "global_step": self.step})

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            close_wandb(self.wandb)
        if self.metrics is not None:
            self.metrics.close()

    # ------------------------------------------------------------ trainer.log
    def log(self, text: str) -> None:
        if self.enabled:
            print(text, flush=True)

    def progress_due(self) -> bool:
        if time.monotonic() - self.last_log >= LOG_EVERY_S:
            self.last_log = time.monotonic()
            return True
        return False


class LossWindow:
    """loss_avg: the mean of the last `size` step losses (one epoch's worth, as sd-scripts shows)."""

    def __init__(self, size: int):
        self.values: deque[float] = deque(maxlen=max(1, size))

    def add(self, loss: float) -> float:
        self.values.append(loss)
        return self.mean

    @property
    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None
