"""Preflight findings (workbench.runs.preflight) with the files each one names.

Preflight decodes every image in full, so it runs when asked, in a background thread
(workbench.runs.preflight.BackgroundCheck) with a progress bar, never on every rerun. The check object is
a server-side resource keyed on the config and the dataset's version, so a refresh while it runs
finds it still running, and asking again after it finished shows the findings at once."""
from __future__ import annotations

import streamlit as st

from workbench.dataset.folders import fingerprint
from workbench.runs.preflight import BackgroundCheck

LEVELS = {"error": st.error, "warning": st.warning, "note": st.info}
REQUESTED = "dataset_preflight_requested"
MAX_FILES_SHOWN = 200
FILES_IN_SIGHT = 3       # a finding naming this many lines or fewer shows them without an expander


@st.cache_resource(max_entries=4, show_spinner=False)
def _background_check(cfg, version: tuple) -> BackgroundCheck:
    return BackgroundCheck(cfg)


def _request() -> None:
    st.session_state[REQUESTED] = True


def _again() -> None:
    _background_check.clear()


def findings_panel(cfg) -> None:
    if not st.session_state.get(REQUESTED):
        st.caption("Preflight decodes every image in full and checks captions, duplicates, the model and "
                   "the output before a run.")
        st.button("Run preflight checks", key="preflight_run", on_click=_request)
        return
    roots = [r for r in (cfg.train_data_dir, cfg.reg_data_dir) if r]
    check = _background_check(cfg, fingerprint(roots))
    if not check.finished:
        st.fragment(_progress, run_every=1.0)(check)
        return
    show_findings(check)
    st.button("Check again", key="preflight_again", on_click=_again)


def _progress(check: BackgroundCheck) -> None:
    """The live part: a progress bar until the check ends, then the whole page draws the result."""
    if check.finished:
        st.rerun()
    done, total = check.progress.done, check.progress.total
    st.progress(done / total if total else 0.0, text=f"Preflight: {done} of {total or '?'} images decoded")


def show_findings(check: BackgroundCheck) -> None:
    if check.error:
        st.error(check.error)
        return
    if not check.findings:
        st.success("Preflight found nothing to fix.")
        return
    groups = grouped(check.findings)
    counts = {level: sum(1 for _, same in groups if same[0].level == level) for level in LEVELS}
    st.markdown("**Preflight:** " + ", ".join(f"{n} {level}(s)" for level, n in counts.items() if n))
    for line, same in groups:
        level = same[0].level
        LEVELS.get(level, st.info)(line if len(same) == 1 else f"{line} — {len(same)} times")
        files = [f.files for f in same if f.files]
        if files:
            _files_expander(files)


def grouped(findings: list) -> list[tuple[str, list]]:
    """Findings with the same sentence together, in order (twelve "2 files are the same image"
    read as one finding with twelve pairs, not twelve identical warnings)."""
    groups: dict[str, list] = {}
    for finding in findings:
        groups.setdefault(finding.line(), []).append(finding)
    return list(groups.items())


def _files_expander(file_groups: list[tuple[str, ...]]) -> None:
    """The files a finding names (a blank line between occurrences when it occurs more than
    once): a few in plain sight, more in an expander."""
    lines = "\n\n".join("\n".join(files) for files in file_groups).splitlines()
    if len(lines) <= FILES_IN_SIGHT:
        st.code("\n".join(lines), language=None)
        return
    with st.expander(f"{sum(len(files) for files in file_groups)} file(s)"):
        st.code("\n".join(lines[:MAX_FILES_SHOWN]), language=None)
        if len(lines) > MAX_FILES_SHOWN:
            st.caption(f"… and {len(lines) - MAX_FILES_SHOWN} more lines")
