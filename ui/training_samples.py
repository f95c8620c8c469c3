"""The Training page's sample gallery: the run's samples as a grid (rows = epoch or step, newest
first; columns = the prompts, their text as header; a gap where a sample is missing), and one
prompt of two runs side by side, rows aligned by epoch/step. The grid comes from
workbench.views.sample_grid; this module only draws it."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from workbench.dataset.thumbnails import ThumbnailError, thumbnail
from workbench.runs.registry import RunInfo
from workbench.views.sample_grid import SampleGrid, has_samples, run_grid, side_by_side

ROWS_SHOWN = 4          # newest rows drawn at once; a slider reaches the older ones
WHEN_WIDTH = 1          # relative width of the row-label column (each prompt's column is 3)
PROMPT_WIDTH = 3
MIN_SLOTS = 4           # a sample takes at most a quarter of the width, however few the prompts


def sample_gallery(run_dir: Path, sample_events: list[dict]) -> None:
    grid = run_grid(run_dir, sample_events)
    if not grid.rows and not grid.others:
        return
    st.markdown(f"**Samples** — {len(grid.rows)} row(s) × {len(grid.prompts)} prompt(s), newest first")
    rows = grid.newest_first()
    if len(rows) > ROWS_SHOWN:
        labels = [when.label() for when, _ in rows[:len(rows) - ROWS_SHOWN + 1]]
        first = st.select_slider("Newest row shown", labels, value=labels[0], key=f"sample-rows-{run_dir.name}",
                                 help=f"{ROWS_SHOWN} rows at a time; slide right for earlier samples")
        start = labels.index(first)
        rows = rows[start:start + ROWS_SHOWN]
    _header(grid.prompts, "sample-grid-header")
    for when, cells in rows:
        _row(when.label(), cells, f"sample-row-{when.kind}-{when.number}")
    if grid.others:
        with st.expander(f"{len(grid.others)} other image(s) in samples/"):
            st.caption(", ".join(p.name for p in grid.others))


def _columns(count: int):
    """The row label's column, then `count` columns for samples (of MIN_SLOTS or more slots)."""
    return st.columns([WHEN_WIDTH] + [PROMPT_WIDTH] * max(count, MIN_SLOTS))[:1 + count]


def _header(titles: list[str], key: str) -> None:
    with st.container(key=key):
        first, *columns = _columns(len(titles))
        first.caption("when")
        for column, title in zip(columns, titles):
            column.caption(title)


def _row(label: str, cells: list[Path | None], key: str) -> None:
    with st.container(key=key):
        first, *columns = _columns(len(cells))
        first.markdown(f"**{label}**")
        for column, path in zip(columns, cells):
            _cell(column, path)


def _cell(column, path: Path | None) -> None:
    if path is None:
        column.caption("— no sample")
        return
    try:     # a cached thumbnail: the live view refreshes every few seconds, never decode the original
        column.image(str(thumbnail(path, square=True)), width="stretch")
    except ThumbnailError as exc:      # a sample still being written, or damaged
        column.caption(str(exc))


def compare_panel(selected: RunInfo | None, infos: list[RunInfo]) -> None:
    """One prompt's samples of the run shown and of a second run from the history, side by side."""
    if selected is None:
        return
    grid = run_grid(selected.dir)
    others = [info for info in infos if info.name != selected.name and has_samples(info.dir)]
    if not grid.rows or not others:
        return
    st.subheader("Compare samples")
    left, right = st.columns(2)
    other = left.selectbox(f"Run {selected.name} beside", [i.name for i in others], key="compare-run",
                           help="a run of the history with samples")
    index = right.selectbox("Prompt", range(len(grid.prompts)), format_func=lambda i: grid.prompts[i],
                            key="compare-prompt")
    _comparison(grid, run_grid(next(i for i in others if i.name == other).dir), index, selected.name, other)


def _comparison(grid: SampleGrid, other_grid: SampleGrid, index: int, name: str, other: str) -> None:
    compared = side_by_side(grid, other_grid, index)
    if compared.other_index is None:
        st.caption(f"Run {other} has no prompt “{compared.prompt}” (nor a prompt {index}).")
    elif not compared.same_text:
        st.caption(f"Run {other} has no prompt “{compared.prompt}”: its prompt {compared.other_index} "
                   f"“{other_grid.prompts[compared.other_index]}” is shown.")
    _header([name, other], "compare-header")
    for when, mine, theirs in compared.rows[::-1]:          # newest first, as the grid above
        _row(when.label(), [mine, theirs], f"compare-row-{when.kind}-{when.number}")
