"""A caption run seen from the Dataset page: progress with ETA and Stop above the tabs while it
runs (whatever tab is open), and its summary with an undo in the Caption tab. Everything is read
from the job's folder (workbench.captioning.jobs), so a reload or a closed tab sees the same job."""
from __future__ import annotations

import streamlit as st

from ui.dataset_bulk import undo_newest_edit
from ui.shared_data import forget_scan
from workbench.captioning import jobs
from workbench.captioning.summary import counts_line, eta_text, reason_lines
from workbench.dataset.captions import pending_undos

REFRESH_S = 1.0          # seconds between looks at a running job
SEEN_KEY = "captioner_seen"   # (job, images done) at the last full-page render


def job_strip() -> None:
    """Above the tabs: the running job's progress bar and Stop; refreshed every REFRESH_S while it
    runs. When new captions land (or the job ends) the whole page reruns, so the grid, the table
    and the counts show them."""
    job = jobs.active_job()
    st.session_state[SEEN_KEY] = _seen(job)
    if job is not None:
        st.fragment(_strip, run_every=REFRESH_S)(job.dir)


def _seen(job) -> tuple | None:
    return None if job is None else (job.dir.name, job.status.get("done", 0))


def _strip(job_dir) -> None:
    job = jobs.job_info(job_dir)
    if _seen(job if job.active else None) != st.session_state.get(SEEN_KEY):
        forget_scan()
        st.rerun()                     # new captions on disk, or the job ended: redraw the page
    left, right = st.columns([6, 1])
    left.progress(_fraction(job.status), text=progress_text(job))
    if right.button("Stop", key="captioner_stop", help="stops after the current batch; what is written stays"):
        jobs.stop_job(job.dir)
        st.info("Stop requested: the captioner finishes its batch.")


def _fraction(status: dict) -> float:
    total = status.get("total") or 0
    return min(1.0, (status.get("done") or 0) / total) if total else 0.0


def progress_text(job) -> str:
    s = job.status
    if job.state in ("starting", "loading"):
        return f"Caption run {job.dir.name}: loading the model …"
    rate = s.get("images_per_s") or 0.0
    return (f"Caption run {job.dir.name}: {s.get('done', 0)}/{s.get('total', '?')} images · {rate:.1f} img/s · "
            f"{eta_text(s.get('eta_s'))} · written {(s.get('counts') or {}).get('written', 0)}")


def last_job_panel() -> None:
    """In the Caption tab: the newest job's state, counts, reasons and its undo."""
    job = jobs.latest_job()
    if job is None:
        return
    st.markdown(f"**Last caption run** `{job.dir.name}` — {job.state}")
    if job.active:
        st.caption("Running: progress and Stop are above the tabs.")
        return
    for note in job.status.get("notes") or []:
        st.warning(f"Note: {note}")
    if job.state in ("failed", "crashed"):
        st.error(job.status.get("error") or f"The caption process ended without a result; see {job.dir}/worker.log")
    counts = job.status.get("counts")
    if counts:
        st.markdown(counts_line(counts, job.status.get("done", 0), job.status.get("total", 0),
                                job.state == "stopped").replace("--existing skip", "“skip”"))
        for line in reason_lines(jobs.read_outcomes(job.dir)):
            st.caption(line)
    _undo_button(job)


def _undo_button(job) -> None:
    journal = job.status.get("journal")
    pending = pending_undos()
    if journal and pending and str(pending[0].path) == journal:
        st.button(f"Undo this run ({len(pending[0].files)} captions)", key="captioner_undo",
                  on_click=undo_newest_edit, kwargs={"since": "the run"})
