"""How long a plan will train and how much GPU memory it will take at its peak, before Start.

Calibrated from measurements, never from a formula alone: first the finished runs of this
workspace with the same settings (their own s/step, and the peak GPU memory the trainer records),
then the GPU table of benchmarks/RESULTS.md for the GPU this machine has. When neither matches,
the estimate says so instead of guessing.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from workbench.config.schema import TrainConfig, load_toml
from workbench.errors import UserError
from workbench.runs.metrics_file import read_metrics

FIRST_STEPS_SKIPPED = 3      # the first steps of a run include warm-up work (allocation, compiling)


@dataclass(frozen=True)
class Measured:
    """One cell of benchmarks/RESULTS.md's GPU table."""
    gpu: str
    key: tuple                 # settings_key() of the measured config
    s_per_step: float
    peak_gib: float | None
    source: str


def settings_key(cfg: TrainConfig) -> tuple:
    """What the speed and memory of a step depend on (model family, size, batch, precision,
    checkpointing, compile, rank, optimizer); runs with the same key are compared."""
    return (cfg.model_family(), cfg.resolution.replace(" ", ""), cfg.train_batch_size, cfg.mixed_precision,
            bool(cfg.gradient_checkpointing), bool(cfg.torch_compile), cfg.network_dim, cfg.optimizer_type)


def _sd15(batch: int, compiled: bool) -> tuple:
    return ("sd1", "512,512", batch, "bf16", False, compiled, 16, "AdamW")


# benchmarks/RESULTS.md, "GPU (2026-11-26)": SD1.5-shaped UNet, 512 px, LoRA rank 16, AdamW, bf16
GPU_TABLE = (
    Measured("H200", _sd15(1, False), 0.131, 3.05, "RESULTS.md, H200, SD1.5 512 px batch 1"),
    Measured("H200", _sd15(4, False), 0.156, 6.6, "RESULTS.md, H200, SD1.5 512 px batch 4"),
    Measured("H200", _sd15(1, True), 0.103, None, "RESULTS.md, H200, SD1.5 512 px batch 1, torch_compile"),
)


@dataclass(frozen=True)
class Estimate:
    seconds: float | None
    peak_gib: float | None
    basis: str                 # where the numbers come from, or why there are none

    def line(self) -> str:
        if self.seconds is None:
            return f"No estimate: {self.basis}"
        peak = f", peak GPU memory about {self.peak_gib:.1f} GiB" if self.peak_gib else ""
        return f"About {format_seconds(self.seconds)}{peak} ({self.basis})"


def format_seconds(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def gpu_name() -> str | None:
    """The first GPU's name from nvidia-smi (the app never imports torch); None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = out.stdout.strip().splitlines()
    return names[0].strip() if out.returncode == 0 and names else None


def run_measurement(info) -> tuple[float, float | None] | None:
    """(mean s/step after the first steps, peak GPU GiB or None) of a finished run
    (workbench.runs.registry.RunInfo)."""
    if info.status.get("state") != "finished":
        return None
    per_step = mean_s_per_step(read_metrics(info.dir))
    if per_step is None:
        return None
    peak = info.status.get("peak_gpu_memory_bytes")
    return per_step, (peak / 2**30 if isinstance(peak, (int, float)) else None)


def mean_s_per_step(events: list[dict]) -> float | None:
    """Mean seconds per optimizer step of a run's step events, its first FIRST_STEPS_SKIPPED left
    out; None without a step after them. What calibrates an estimate and what it is checked by."""
    times = [e["s_per_step"] for e in events if e.get("event") == "step"
             and isinstance(e.get("s_per_step"), (int, float))][FIRST_STEPS_SKIPPED:]
    return sum(times) / len(times) if times else None


def from_history(cfg: TrainConfig, total_steps: int, infos) -> Estimate | None:
    """The newest finished run (workbench.runs.registry.RunInfo, newest first) with the same settings."""
    key = settings_key(cfg)
    for info in infos:
        try:
            other, _ = load_toml(info.dir / "config.toml")
        except (UserError, OSError):
            continue
        measured = run_measurement(info) if settings_key(other) == key else None
        if measured:
            per_step, peak = measured
            return Estimate(total_steps * per_step, peak, f"{total_steps} steps × {per_step:.3f} s/step, measured "
                            f"by run {info.name} with the same settings")
    return None


def from_gpu_table(cfg: TrainConfig, total_steps: int, gpu: str | None) -> Estimate | None:
    cell = next((m for m in GPU_TABLE if gpu and m.gpu in gpu and m.key == settings_key(cfg)), None)
    if cell is None:
        return None
    return Estimate(total_steps * cell.s_per_step, cell.peak_gib,
                    f"{total_steps} steps × {cell.s_per_step} s/step, {cell.source}")


def estimate(cfg: TrainConfig, total_steps: int, infos, gpu: str | None) -> Estimate:
    """This workspace's finished runs first, then the GPU table; else why there is no estimate."""
    found = from_history(cfg, total_steps, infos) or from_gpu_table(cfg, total_steps, gpu)
    if found:
        return found
    if gpu is None:
        return Estimate(None, None, "no CUDA GPU found (nvidia-smi), and no finished run with these settings "
                        "to time it by")
    measured = sorted({m.gpu for m in GPU_TABLE})
    return Estimate(None, None, f"{gpu} with these settings is not measured ({', '.join(measured)} is, "
                    "SD1.5 512 px only); a finished run with the same settings calibrates it")
