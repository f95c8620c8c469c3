"""The estimate a run was started with, kept in its run dir, beside what the run really took.

    <run>/estimate.json   {"s_per_step", "seconds", "total_steps", "peak_gib", "basis", "gpu", "made_at"}

Written once, when the run dir is made (workbench.runs.registry.create_run: the Training page, `workbench
train`, the queue and Resume all go through it), from the same estimate the start panel shows
(workbench.planning.estimate). The run history then shows it against the run's measured s/step and
duration, so a person sees how far to trust the next estimate.
"""
from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.fileio import write_json_atomic
from workbench.planning.estimate import estimate, gpu_name, mean_s_per_step
from workbench.planning.plan import make_plan
from workbench.runs.metrics_file import read_metrics

ESTIMATE_FILE = "estimate.json"


def record_estimate(run_dir: Path, cfg, infos) -> dict:
    """Estimate the run's length (calibrated by `infos`, the workspace's runs) and write it into
    the run dir. Never raises: a run is never refused for want of an estimate, it records why."""
    try:
        total_steps = make_plan(cfg).total_steps
        gpu = gpu_name()
        found = estimate(cfg, total_steps, infos, gpu)
    except Exception as exc:       # noqa: BLE001 — advisory only; start_blockers judges the config
        record = {"s_per_step": None, "seconds": None, "total_steps": None, "peak_gib": None,
                  "basis": f"not estimated: {exc}", "gpu": None}
    else:
        record = {"s_per_step": found.seconds / total_steps if found.seconds is not None and total_steps else None,
                  "seconds": found.seconds, "total_steps": total_steps, "peak_gib": found.peak_gib,
                  "basis": found.basis, "gpu": gpu}
    record["made_at"] = time.time()
    write_json_atomic(Path(run_dir) / ESTIMATE_FILE, record)
    return record


def read_estimate(run_dir: Path) -> dict:
    """The recorded estimate; {} for a run made before estimates were recorded, or a broken file."""
    try:
        record = json.loads((Path(run_dir) / ESTIMATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


@dataclass(frozen=True)
class EstimateCheck:
    estimated_s_per_step: float | None
    estimated_seconds: float | None       # the whole run's steps × s/step (loading and sampling not counted)
    actual_s_per_step: float | None       # measured the way estimates are calibrated (mean_s_per_step)

    @property
    def ratio(self) -> float | None:
        """Actual ÷ estimated s/step: 1.0 on the mark, 2.0 twice as slow as estimated."""
        if not self.estimated_s_per_step or self.actual_s_per_step is None:
            return None
        return self.actual_s_per_step / self.estimated_s_per_step


def estimate_check(run_dir: Path, ended: bool) -> EstimateCheck:
    """The run's recorded estimate and, once it `ended` (a running run's s/step is the live view's),
    its measured s/step."""
    recorded = read_estimate(run_dir)
    actual = _measured(Path(run_dir) / "metrics.jsonl") if ended else None
    return EstimateCheck(_number(recorded.get("s_per_step")), _number(recorded.get("seconds")), actual)


def _measured(metrics: Path) -> float | None:
    try:
        stat = metrics.stat()
    except OSError:
        return None
    return _measured_cached(str(metrics), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=512)
def _measured_cached(path: str, size: int, mtime_ns: int) -> float | None:
    """Keyed by the file's size and time: an ended run's metrics are read once per process, not on
    every refresh of the history (a long run's metrics.jsonl holds one line per step)."""
    return mean_s_per_step(read_metrics(Path(path).parent))


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
