"""What the Training page shows about a run, computed from its files (metrics.jsonl events and
status.json), without Streamlit: loss and LR chart data, progress with s/step and ETA, the
output files and samples, the run history, and a diagnosis of a failed or crashed run.

`RunMetrics.add` takes only the events read since the last refresh (workbench.runs.registry.MetricsTail),
so a refresh costs the same at step 10 and at step 100,000; charts are thinned to a fixed number
of points for the same reason.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from workbench.runs.estimate_record import EstimateCheck, estimate_check

SMOOTHING = 0.9          # EMA weight of the smoothed loss (TensorBoard's slider default is 0.6;
                         # LoRA losses are noisy enough that 0.9 shows the trend)
MAX_CHART_POINTS = 1500  # per series: Vega-Lite stays quick and a refresh stays constant-time
RECENT_STEPS = 20        # s/step is the mean over this many latest steps (the first step is slow)


# ---------------------------------------------------------------- metrics

class Ema:
    """Debiased exponential moving average (as TensorBoard's smoothing): the first values are
    not pulled towards 0. Non-finite values are skipped, so one NaN does not erase the curve."""

    def __init__(self, weight: float = SMOOTHING):
        self.weight = weight
        self.value = 0.0
        self.count = 0

    def update(self, x: float) -> float | None:
        if x is None or not math.isfinite(x):
            return self.current()
        self.count += 1
        self.value = self.weight * self.value + (1 - self.weight) * x
        return self.current()

    def current(self) -> float | None:
        if self.count == 0:
            return None
        return self.value / (1 - self.weight ** self.count)


def ema(values: list[float], weight: float = SMOOTHING) -> list[float | None]:
    smoother = Ema(weight)
    return [smoother.update(v) for v in values]


@dataclass
class RunMetrics:
    """The run's series, grown incrementally from metrics events."""
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    smoothed: list[float | None] = field(default_factory=list)
    lr_unet: list[float | None] = field(default_factory=list)
    lr_te: list[float | None] = field(default_factory=list)
    s_per_step: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    start: dict | None = None
    end: dict | None = None
    saves: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    validation: list[tuple[int, float]] = field(default_factory=list)    # (step, validation loss)
    epoch: int | None = None
    _ema: Ema = field(default_factory=Ema)

    def add(self, events: list[dict]) -> None:
        for event in events:
            kind = event.get("event")
            if kind == "step":
                self._add_step(event)
            elif kind == "start":
                self.start = event
            elif kind == "end":
                self.end = event
            elif kind == "save":
                self.saves.append(event)
            elif kind == "remove":      # save_last_n_*: that file is gone
                self.saves = [s for s in self.saves if s.get("path") != event.get("path")]
            elif kind == "sample":
                self.samples.append(event)
            elif kind == "validation" and _number(event.get("loss")) is not None:
                self.validation.append((int(event.get("step", self.last_step)), float(event["loss"])))
            elif kind == "epoch":
                self.epoch = event.get("epoch", self.epoch)

    def _add_step(self, event: dict) -> None:
        loss = _number(event.get("loss"))
        self.steps.append(int(event.get("step", len(self.steps) + 1)))
        self.loss.append(loss)
        self.smoothed.append(self._ema.update(loss))
        self.lr_unet.append(_number(event.get("lr_unet")))
        self.lr_te.append(_number(event.get("lr_te")))
        if _number(event.get("s_per_step")) is not None:
            self.s_per_step.append(float(event["s_per_step"]))
        if _number(event.get("time")) is not None:
            self.times.append(float(event["time"]))
        self.epoch = event.get("epoch", self.epoch)

    @property
    def last_step(self) -> int:
        return self.steps[-1] if self.steps else 0

    def loss_frame(self, max_points: int = MAX_CHART_POINTS):
        """Long-form frame (step, series, loss) with series "raw" and "smoothed", and "validation"
        (the held-out images' loss, at the steps it was measured) beside them; NaN left out."""
        rows = []
        for i in _thinned(len(self.steps), max_points):
            if self.loss[i] is not None:
                rows.append((self.steps[i], "raw", self.loss[i]))
            if self.smoothed[i] is not None:
                rows.append((self.steps[i], "smoothed", self.smoothed[i]))
        rows += [(step, "validation", loss) for step, loss in self.validation]
        return _frame(rows, ["step", "series", "loss"])

    def lr_frame(self, max_points: int = MAX_CHART_POINTS):
        """Long-form frame (step, group, lr) for the UNet and text-encoder parameter groups."""
        rows = []
        for i in _thinned(len(self.steps), max_points):
            for group, values in (("UNet", self.lr_unet), ("Text encoder", self.lr_te)):
                if values[i] is not None:
                    rows.append((self.steps[i], group, values[i]))
        return _frame(rows, ["step", "group", "lr"])


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _thinned(n: int, max_points: int) -> range:
    """Evenly spaced indices, at most about max_points of them, always ending at the last one."""
    if n <= max_points:
        return range(n)
    stride = math.ceil(n / max_points)
    return range((n - 1) % stride, n, stride)


def _frame(rows: list[tuple], columns: list[str]):
    import pandas as pd
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------- progress

@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    s_per_step: float | None
    eta_s: float | None       # None when the run is not running or the speed is unknown
    elapsed_s: float | None

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0

    def text(self) -> str:
        parts = [f"step {self.step}/{self.total or '?'}"]
        if self.s_per_step is not None:
            parts.append(f"{self.s_per_step:.2f} s/step")
        if self.eta_s is not None:
            parts.append(f"ETA {format_duration(self.eta_s)}")
        if self.elapsed_s is not None:
            parts.append(f"elapsed {format_duration(self.elapsed_s)}")
        return " · ".join(parts)


def progress(status: dict, metrics: RunMetrics, running: bool, now: float | None = None) -> Progress:
    """Step and total from the newest of status.json and the events; s/step over the latest
    RECENT_STEPS steps (the first steps include warm-up work); ETA = steps left × s/step."""
    now = time.time() if now is None else now
    step = max(metrics.last_step, int(status.get("step") or 0))
    total = int(status.get("total_steps") or (metrics.start or {}).get("total_steps") or 0)
    speed = seconds_per_step(metrics)
    eta = (total - step) * speed if running and speed is not None and total else None
    return Progress(step, total, speed, eta, elapsed_seconds(status, now if running else None))


def download_progress(status: dict) -> tuple[float, str] | None:
    """(fraction, text) while the trainer downloads a Hub base model, else None."""
    download = status.get("download") or {}
    done, total = download.get("done"), download.get("total")
    if not isinstance(done, int) or not isinstance(total, int) or not total or done >= total:
        return None
    return done / total, f"downloading the base model: {done / 1e6:.1f} of {total / 1e6:.1f} MB"


def seconds_per_step(metrics: RunMetrics) -> float | None:
    recent = metrics.s_per_step[-RECENT_STEPS:]
    if recent:
        return sum(recent) / len(recent)
    times = metrics.times[-RECENT_STEPS - 1:]
    if len(times) >= 2 and times[-1] > times[0]:
        return (times[-1] - times[0]) / (len(times) - 1)
    return None


def elapsed_seconds(status: dict, now: float | None) -> float | None:
    """Wall time of the run: until now while it runs, else until its last status update."""
    started = status.get("started_at")
    ended = now if now is not None else status.get("finished_at") or status.get("updated_at")
    if not isinstance(started, (int, float)) or not isinstance(ended, (int, float)):
        return None
    return max(0.0, ended - started)


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# ---------------------------------------------------------------- files of a run

def output_files(status: dict, metrics: RunMetrics | None = None) -> list[str]:
    """The LoRA files the run saved: status.json's outputs, then save events, each once."""
    paths = [str(p) for p in status.get("outputs") or []]
    paths += [str(e["path"]) for e in (metrics.saves if metrics else []) if e.get("path")]
    return list(dict.fromkeys(paths))


def sample_images(run_dir: Path, metrics: RunMetrics | None = None) -> list[tuple[Path, str]]:
    """(image, caption) of the run's samples, oldest first: those the sample events name (with
    their prompt and step), then any other image in samples/ (caption: its file name)."""
    run_dir = Path(run_dir)
    found: dict[Path, str] = {}
    for event in metrics.samples if metrics else []:
        path = Path(event.get("path", ""))
        path = path if path.is_absolute() else run_dir / path
        found[path] = f"step {event.get('step', '?')}: {event.get('prompt', '')}".strip()
    folder = run_dir / "samples"
    if folder.is_dir():
        for path in sorted(folder.iterdir(), key=lambda p: (p.stat().st_mtime, p.name)):
            if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp") and path not in found:
                found[path] = path.name
    return [(p, caption) for p, caption in found.items() if p.is_file()]


def history_rows(runs, now: float | None = None) -> list[dict]:
    """One row per run (workbench.runs.registry.RunInfo) for the history table."""
    now = time.time() if now is None else now
    rows = []
    for run in runs:
        status = run.status
        elapsed = elapsed_seconds(status, now if run.active else None)
        started = status.get("started_at")
        rows.append({
            "run": run.name,
            "state": run.state,
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)) if started else "",
            "duration": format_duration(elapsed) if elapsed is not None else "",
            **estimate_columns(estimate_check(run.dir, ended=not run.active and run.state != "queued")),
            "steps": f"{status.get('step') or 0}/{status.get('total_steps') or '?'}",
            "outputs": ", ".join(Path(p).name for p in output_files(status)),
        })
    return rows


def estimate_columns(check: EstimateCheck) -> dict[str, str]:
    """The history's estimate-vs-actual cells: the run's recorded estimate (time and s/step), its
    measured s/step once it ended, and actual ÷ estimate ("" where either is unknown)."""
    def seconds(value: float | None, digits: int = 3) -> str:
        return f"{value:.{digits}f}" if value is not None else ""
    estimated = check.estimated_seconds
    return {"estimate": format_duration(estimated) if estimated is not None else "",
            "est. s/step": seconds(check.estimated_s_per_step), "s/step": seconds(check.actual_s_per_step),
            "actual ÷ est.": f"{check.ratio:.2f}×" if check.ratio is not None else ""}


# ---------------------------------------------------------------- failure diagnosis

@dataclass(frozen=True)
class Diagnosis:
    kind: str      # "out_of_memory" | "nan_loss" | "missing_file" | "wrong_model_family" | "crashed" | "error"
    title: str     # what happened, one sentence
    advice: str    # what to do
    line: str      # the line of the error or log that shows it


OOM = re.compile(r"out of memory|OutOfMemoryError|can't allocate memory|\bMemoryError\b|^Killed$",
                 re.IGNORECASE | re.MULTILINE)
NAN = re.compile(r"\bloss\b[^\n]*\b(nan|inf|non-finite)\b|\b(nan|non-finite)\b[^\n]*\bloss\b|"
                 r"returned nan values", re.IGNORECASE)
FAMILY = re.compile(r"is an? [^\n]*model but the config says|size mismatch for|"
                    r"Error\(s\) in loading state_dict|wrong model family", re.IGNORECASE)
MISSING = re.compile(r"FileNotFoundError|No such file or directory|\bnot found\b|no file named|"
                     r"does not appear to have a file named", re.IGNORECASE)
ERROR_LINE = re.compile(r"\w*(Error|Exception)\b|\berror\b|^Killed$", re.IGNORECASE)

RULES = (
    ("out_of_memory", OOM, "The run ran out of memory.",
     "Lower train_batch_size or the resolution, turn on gradient_checkpointing and cache_latents, "
     "use mixed_precision fp16/bf16 or an 8-bit optimizer (AdamW8bit) on CUDA."),
    ("nan_loss", NAN, "The loss became NaN (the training diverged).",
     "Lower the learning rate (or unet_lr/text_encoder_lr), keep max_grad_norm at 1, prefer bf16 to "
     "fp16 mixed precision, and check alpha against rank."),
    ("wrong_model_family", FAMILY, "The base model is not the family the config says.",
     "Set v2 / sdxl in Parameters to match the checkpoint (Parameters reads the family from the file)."),
    ("missing_file", MISSING, "A file or folder the run needs was not found.",
     "Check the path named below in Parameters (model, folders, network_weights, sample_prompts)."),
)


def run_error(status: dict, metrics: RunMetrics | None = None) -> str:
    """The run's error: status.json's, else the end event's."""
    end = (metrics.end if metrics else None) or {}
    return str(status.get("error") or end.get("error") or "").strip()


def diagnose(status: dict, log_text: str, state: str | None = None) -> Diagnosis | None:
    """Why a run failed or crashed, from status.json's error and the log's tail; None when it
    did neither. The first rule that matches the error (then the log) names the cause."""
    state = state or status.get("state")
    if state not in ("failed", "crashed"):
        return None
    error = str(status.get("error") or "").strip()
    # in the log only lines that read like errors count: a warning such as "xformers not found"
    # must not be taken for the cause
    log_errors = "\n".join(line for line in (log_text or "").splitlines() if ERROR_LINE.search(line))
    for text in (error, log_errors):
        for kind, pattern, title, advice in RULES:
            match = pattern.search(text or "")
            if match:
                return Diagnosis(kind, title, advice, _line_at(text, match.start()))
    line = error.splitlines()[-1] if error else last_error_line(log_text)
    if state == "crashed":
        return Diagnosis("crashed", "The trainer process ended without writing its end event "
                         "(killed, or the machine restarted).",
                         "Look at the log below; start the run again (resume from a saved state if you used save_state).",
                         line)
    return Diagnosis("error", "The run failed.", "Read the error below; the log tail has the details.", line)


def _line_at(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start:end if end >= 0 else len(text)].strip()


def last_error_line(log_text: str) -> str:
    """The last line that reads like an error (a traceback's final line), else the last line."""
    lines = [line.strip() for line in (log_text or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if ERROR_LINE.search(line) and not line.startswith("Traceback"):
            return line
    return lines[-1] if lines else ""


def lora_files(infos) -> list[str]:
    """The .safetensors files the runs (workbench.runs.registry.RunInfo, newest first) saved and that
    still exist, each once: what the Inspect page offers to open."""
    paths = [p for info in infos for p in output_files(info.status) if p.endswith(".safetensors")]
    return [p for p in dict.fromkeys(paths) if Path(p).is_file()]
