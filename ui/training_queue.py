"""The Training page's queue: runs waiting for the GPU, in the order they will start, with
buttons to move them or take them out (workbench.runs.queue; the queue lives on disk)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui.shared_state import run_action
from workbench.runs import queue as run_queue


def queue_panel() -> None:
    line = run_queue.queued()
    if not line:
        return
    st.subheader(f"Queue ({len(line)})")
    st.caption("Each starts when the run before it ends — the trainer starts the next one itself, so the queue "
               "moves on with the browser closed or the app stopped.")
    for i, run_dir in enumerate(line):
        name, up, down, remove = st.columns([6, 1, 1, 1])
        name.markdown(f"{i + 1}. `{run_dir.name}`")
        up.button("Earlier", key=f"queue-up-{run_dir.name}", help="start it before the run above",
                  disabled=i == 0, on_click=_move, args=(run_dir, -1))
        down.button("Later", key=f"queue-down-{run_dir.name}", help="start it after the run below",
                    disabled=i == len(line) - 1, on_click=_move, args=(run_dir, 1))
        remove.button("Remove", key=f"queue-remove-{run_dir.name}", help="take it out of the queue (its frozen "
                      "config is deleted; current.toml is untouched)", on_click=_remove, args=(run_dir,))


def _move(run_dir: Path, delta: int) -> None:
    run_action(lambda: run_queue.move(run_dir, delta))


def _remove(run_dir: Path) -> None:
    run_action(lambda: run_queue.remove(run_dir), f"Removed {run_dir.name} from the queue")
