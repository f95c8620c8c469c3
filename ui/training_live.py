"""The live view of one run — progress, loss and LR charts, samples, log tail, Stop, outputs, the
error with its diagnosis — and the run history under it. Rendered inside the page's one
fragment, which refreshes every REFRESH_S seconds while a run is active, every IDLE_REFRESH_S otherwise."""
from __future__ import annotations

from pathlib import Path

import altair as alt
import streamlit as st

from ui.shared_charts import overlapping_curves
from ui.shared_state import flash
from ui.training_history import history_table
from ui.training_samples import sample_gallery
from workbench.errors import UserError
from workbench.runs import queue as run_queue
from workbench.runs import registry as runs
from workbench.runs.resume import RESUMABLE_STATES, latest_state, resume_config
from workbench.views import training as training_view
from workbench.views.training import RunMetrics, diagnose, output_files, progress, run_error

REFRESH_S = 1.5          # seconds between refreshes of a running run
IDLE_REFRESH_S = 5.0     # seconds between looks for a run started elsewhere, while none is active
LOG_LINES = 40           # lines of trainer.log shown
OUTPUTS_IN_SIGHT = 3     # newest saved files listed outside the expander


def live_view(selected: runs.RunInfo | None, infos: list[runs.RunInfo]) -> None:
    """The one top-level fragment of the Training page: the selected run and the run history,
    refreshed every REFRESH_S seconds while any run is active, every IDLE_REFRESH_S otherwise (the
    history is in it, so its row of a running run says what the live view says, not the state at
    page load; idle, it still looks, so a run started from another tab or the CLI shows up unasked)."""
    active = frozenset(i.name for i in infos if i.active)
    fragment = st.fragment(_render, run_every=REFRESH_S if active else IDLE_REFRESH_S)
    fragment(selected.name if selected else None, active, frozenset(i.name for i in infos))


def _render(selected: str | None, was_active: frozenset, was_known: frozenset) -> None:
    infos = runs.list_runs()
    if frozenset(i.name for i in infos if i.active) != was_active or frozenset(i.name for i in infos) != was_known:
        st.rerun()          # a run started, ended, was queued or deleted: the whole page re-renders
    by_name = {i.name: i for i in infos}
    if selected in by_name:
        _render_run(by_name[selected])
    else:
        st.info("No runs yet: start one above.")
    st.divider()
    history_table(infos)


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


def _render_run(info: runs.RunInfo) -> None:
    run_dir = info.dir
    metrics = cached_metrics(run_dir)
    log = runs.log_tail(run_dir)
    _header(info)
    download = training_view.download_progress(info.status) if info.active else None
    if download is not None:
        st.progress(*download)
    prog = progress(info.status, metrics, info.active)
    st.progress(prog.fraction, text=prog.text())
    _problem(info, metrics, log)
    _charts(metrics)
    _outputs(info, metrics)
    sample_gallery(run_dir, metrics.samples)
    with st.expander("Log (trainer.log, last lines)", expanded=info.state in ("failed", "crashed")):
        st.code("\n".join(log.splitlines()[-LOG_LINES:]) or "(empty)", language=None)


def _header(info: runs.RunInfo) -> None:
    left, right = st.columns([4, 1])
    left.subheader(f"Run {info.name} — {info.state}")
    if info.state in RESUMABLE_STATES and latest_state(info.dir) is not None:
        right.button("Resume", key=f"resume-{info.name}", on_click=_resume, args=(info.dir,),
                     help="a new run of the same config that continues from this one's last saved state: "
                     "steps, LR schedule and data order (it queues if another run is training)")
    if info.active and right.button("Stop", key=f"stop-{info.name}", help="SIGTERM: the trainer finishes the "
                                    "current step, saves the LoRA under a name that says it stopped and its training "
                                    "state (Resume continues from it), and exits"):
        if runs.stop(info.dir):
            st.info("Stop requested: the trainer finishes its step and saves.")


def _resume(run_dir: Path) -> None:
    try:
        new, started = run_queue.start_or_queue(resume_config(run_dir))
    except UserError as exc:
        flash("error", f"Not resumed: {exc}")
        return
    flash("success", f"Resuming {run_dir.name} as {new.name}" + ("" if started else " (queued)"))
    st.query_params["run"] = new.name


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
        if diagnosis.line and diagnosis.line.strip() != (status["error"] or "").strip():
            st.code(diagnosis.line, language=None)       # the log line it read, unless it is the error above


def _charts(metrics: RunMetrics) -> None:
    if not metrics.steps:
        st.caption("No steps yet: the charts appear with the first optimizer step.")
        return
    loss, lr = st.columns(2)
    loss.altair_chart(_line(metrics.loss_frame(), "loss", "series", "Loss (raw and smoothed)"))
    lr.altair_chart(_lr_lines(metrics.lr_frame()))


def _lr_lines(frame) -> alt.Chart:
    """The UNet and text-encoder LRs as the Parameters page draws them: equal rates stay two curves."""
    names = list(dict.fromkeys(frame["group"]))
    return (alt.Chart(frame, title="Learning rate per group").mark_line()
            .encode(x=alt.X("step:Q", title="optimizer step"),
                    y=alt.Y("lr:Q", title="lr", scale=alt.Scale(zero=True), axis=alt.Axis(format=".2e")),
                    **overlapping_curves("group", names, None),
                    tooltip=["step", "group", alt.Tooltip("lr:Q", format=".4g")]))


def _line(frame, y: str, color: str, title: str) -> alt.Chart:
    # the loss zoomed to its range: its trend is the point
    return (alt.Chart(frame, title=title).mark_line()
            .encode(x=alt.X("step:Q", title="optimizer step"),
                    y=alt.Y(f"{y}:Q", title=y, scale=alt.Scale(zero=False), axis=alt.Axis(format=".3f")),
                    color=alt.Color(f"{color}:N", title=None),
                    tooltip=["step", color, alt.Tooltip(f"{y}:Q", format=".4g")]))


def _outputs(info: runs.RunInfo, metrics: RunMetrics) -> None:
    files = output_files(info.status, metrics)
    if not files:
        return
    st.markdown(f"**Saved LoRA files** ({len(files)})")
    # the newest in sight; a save every epoch of a long run would push the samples and log far down
    earlier, latest = files[:-OUTPUTS_IN_SIGHT], files[-OUTPUTS_IN_SIGHT:]
    if earlier:
        with st.expander(f"{len(earlier)} earlier file(s)"):
            for path in earlier:
                _output_row(path)
    for path in latest:
        _output_row(path)


def _output_row(path: str) -> None:
    size = Path(path).stat().st_size / 1e6 if Path(path).is_file() else None
    text = f"`{path}`" + (f" ({size:.1f} MB)" if size is not None else " (missing on disk)")
    left, right = st.columns([4, 1])
    left.markdown(text)
    right.page_link("app_pages/4_Inspect.py", label="Inspect", icon=":material/search:", query_params={"file": path})
