"""The live view of one run: progress, loss and LR charts, samples, log tail, Stop, outputs, and
the error with its diagnosis. Rendered inside the page's one fragment, which refreshes every
REFRESH_S seconds while the run is active and is off otherwise."""
from __future__ import annotations

from pathlib import Path

import altair as alt
import streamlit as st

from workbench import runs
from workbench.thumbnails import ThumbnailError, thumbnail
from workbench.training_view import (RunMetrics, diagnose, output_files, progress, run_error,
                                     sample_images)

REFRESH_S = 1.5          # seconds between refreshes of a running run
LOG_LINES = 40           # lines of trainer.log shown
SAMPLES_SHOWN = 6        # newest sample images shown


def live_view(run_dir: Path) -> None:
    """The one top-level fragment of the Training page: timed only while the run is active."""
    was_active = runs.run_info(run_dir).active
    fragment = st.fragment(_render_run, run_every=REFRESH_S if was_active else None)
    fragment(run_dir, was_active)


def cached_metrics(run_dir: Path) -> RunMetrics:
    """The run's metrics, read incrementally: session_state keeps a MetricsTail per run as a
    cache only (a new session rebuilds it from metrics.jsonl); each refresh reads the new bytes."""
    cache = st.session_state.setdefault("metrics_tails", {})
    key = str(run_dir)
    if key not in cache:
        cache[key] = (runs.MetricsTail(Path(run_dir) / "metrics.jsonl"), RunMetrics())
    tail, metrics = cache[key]
    metrics.add(tail.read_new())
    return metrics


def _render_run(run_dir: Path, was_active: bool) -> None:
    info = runs.run_info(run_dir)
    if was_active and not info.active:
        st.rerun()          # the run ended: the whole page re-renders (history, outputs, fragment off)
    metrics = cached_metrics(run_dir)
    log = runs.log_tail(run_dir)
    _header(info)
    prog = progress(info.status, metrics, info.active)
    st.progress(prog.fraction, text=prog.text())
    _problem(info, metrics, log)
    _charts(metrics)
    _outputs(info, metrics)
    _samples(run_dir, metrics)
    with st.expander("Log (trainer.log, last lines)", expanded=info.state in ("failed", "crashed")):
        st.code("\n".join(log.splitlines()[-LOG_LINES:]) or "(empty)", language=None)


def _header(info: runs.RunInfo) -> None:
    left, right = st.columns([4, 1])
    left.subheader(f"Run {info.name} — {info.state}")
    if info.active and right.button("Stop", key=f"stop-{info.name}", help="SIGTERM: the trainer finishes the "
                                    "current step, saves the LoRA under a name that says it stopped, and exits"):
        if runs.stop(info.dir):
            st.info("Stop requested: the trainer finishes its step and saves.")


def _problem(info: runs.RunInfo, metrics: RunMetrics, log: str) -> None:
    status = {**info.status, "error": run_error(info.status, metrics)}
    if info.state == "crashed":
        st.error(f"Crashed: status.json says {info.status.get('state')} but process {info.status.get('pid')} "
                 "is gone.")
    elif info.state == "failed":
        st.error(status["error"] or "The run failed.")
    diagnosis = diagnose(status, log, info.state)
    if diagnosis is not None:
        st.warning(f"**{diagnosis.title}** {diagnosis.advice}")
        if diagnosis.line:
            st.code(diagnosis.line, language=None)


def _charts(metrics: RunMetrics) -> None:
    if not metrics.steps:
        st.caption("No steps yet: the charts appear with the first optimizer step.")
        return
    loss, lr = st.columns(2)
    loss.altair_chart(_line(metrics.loss_frame(), "loss", "series", "Loss (raw and smoothed)"))
    lr.altair_chart(_line(metrics.lr_frame(), "lr", "group", "Learning rate per group"))


def _line(frame, y: str, color: str, title: str) -> alt.Chart:
    return (alt.Chart(frame, title=title).mark_line()
            .encode(x=alt.X("step:Q", title="optimizer step"),
                    # loss: zoom to its range (the trend is the point); lr: from 0, as the schedule is drawn
                    y=alt.Y(f"{y}:Q", title=y, scale=alt.Scale(zero=y == "lr"),
                            axis=alt.Axis(format=".2e" if y == "lr" else ".3f")),
                    color=alt.Color(f"{color}:N", title=None),
                    tooltip=["step", color, alt.Tooltip(f"{y}:Q", format=".4g")]))


def _outputs(info: runs.RunInfo, metrics: RunMetrics) -> None:
    files = output_files(info.status, metrics)
    if not files:
        return
    st.markdown("**Saved LoRA files**")
    for path in files:
        size = Path(path).stat().st_size / 1e6 if Path(path).is_file() else None
        text = f"`{path}`" + (f" ({size:.1f} MB)" if size is not None else " (missing on disk)")
        left, right = st.columns([4, 1])
        left.markdown(text)
        right.page_link("pages/4_Inspect.py", label="Inspect", icon="🔎", query_params={"file": path})


def _samples(run_dir: Path, metrics: RunMetrics) -> None:
    samples = sample_images(run_dir, metrics)[-SAMPLES_SHOWN:]
    if not samples:
        return
    st.markdown("**Samples**")
    columns = st.columns(min(len(samples), 3))
    for i, (path, caption) in enumerate(samples):
        try:     # a cached thumbnail: the fragment refreshes every REFRESH_S, never decode the original
            columns[i % len(columns)].image(str(thumbnail(path)), caption=caption)
        except ThumbnailError as exc:      # a sample still being written, or damaged
            columns[i % len(columns)].caption(str(exc))
