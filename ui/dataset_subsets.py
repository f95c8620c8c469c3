"""The subsets table, folders that are not subsets, and changing a subset's repeats by renaming
its folder — only after the user confirms the exact rename."""
from __future__ import annotations

import streamlit as st

from ui.shared_data import forget_scan
from ui.shared_state import flash
from workbench.dataset.folders import rename_for_repeats, repeats_folder_name
from workbench.errors import UserError
from workbench.views.dataset_tables import subset_rows

PENDING = "dataset_rename_pending"      # (folder, repeats) waiting for confirmation


def subsets_panel(dataset) -> None:
    st.dataframe(subset_rows(dataset), hide_index=True)
    for folder, why in dataset.skipped:
        st.warning(f"`{folder}`: {why}")
    if dataset.subsets:
        repeats_editor(dataset)


def _ask(folder: str, key: str) -> None:
    st.session_state[PENDING] = (folder, int(st.session_state[key]))


def _confirm(folder: str, repeats: int) -> None:
    st.session_state.pop(PENDING, None)
    try:
        target = rename_for_repeats(folder, repeats)
    except UserError as exc:
        flash("error", str(exc))
        return
    st.session_state["repeats_subset"] = target.name       # the renamed subset stays selected
    flash("success", f"Renamed to {target.name}")
    forget_scan()


def repeats_editor(dataset) -> None:
    with st.expander("Change repeats (renames the folder)"):
        by_name = {s.name: s for s in dataset.subsets}
        name = st.selectbox("Subset", list(by_name), key="repeats_subset")
        subset = by_name[name]
        key = f"repeats_new_{name}"
        st.number_input("New repeats", min_value=1, step=1, value=subset.repeats, key=key)
        st.button("Rename…", key="repeats_ask", on_click=_ask, args=(str(subset.dir), key))
        pending = st.session_state.get(PENDING)
        if pending and pending[0] == str(subset.dir):
            _confirmation(subset, pending[1])


def _confirmation(subset, repeats: int) -> None:
    try:
        new_name = repeats_folder_name(subset.dir, repeats)
    except UserError as exc:
        st.error(str(exc))
        return
    if new_name == subset.name:
        st.info(f"{subset.name} already has {repeats} repeats.")
        return
    st.warning(f"Rename `{subset.name}` to `{new_name}`? Its images and captions move with it, untouched.")
    yes, no = st.columns(2)
    yes.button("Rename", key="repeats_confirm", type="primary", on_click=_confirm, args=(str(subset.dir), repeats))
    no.button("Cancel", key="repeats_cancel", on_click=lambda: st.session_state.pop(PENDING, None))
