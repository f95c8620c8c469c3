"""Widget state kept in step with the config on disk, and one-shot notices after callbacks.

The config on disk (current.toml) is the truth: a widget shows the disk value whenever that value
changed since the widget last showed it (a load, an import, another page's edit), and otherwise
keeps what the user typed — so a value that failed to save stays visible beside its error.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from workbench.errors import UserError

FLASH_KEY = "workbench_flash"      # slot -> [(level, message)] for the next render
SHOWN_KEY = "workbench_flash_shown"  # the same, taken by this render
# Material icons: Streamlit ships their font, where emoji need one the browser may not have
TOAST_ICONS = {"success": ":material/check_circle:", "info": ":material/info:"}


def sync_widget(key: str, disk_value: Any) -> None:
    """Call before creating the widget `key` (created without value=)."""
    mark = f"{key}__disk"
    if key not in st.session_state or st.session_state.get(mark) != disk_value:
        st.session_state[key] = disk_value
        st.session_state[mark] = disk_value


def flash(level: str, message: str, slot: str = "page") -> None:
    """A notice for the next render: success and info as a toast, warning and error in the
    `slot`'s box ("page": the top of the page; another slot: where the page draws that box, e.g.
    right under the caption that could not be saved) until the next rerun."""
    st.session_state.setdefault(FLASH_KEY, {}).setdefault(slot, []).append((level, message))


def show_flash(slot: str = "page") -> None:
    """Call once per slot where its notices belong: "page" first, near the top (it takes this
    render's notices, so one left unshown in a slot the page no longer draws is dropped, not shown
    later somewhere else). The box is always there, so notices don't shift the page's elements (a
    shift remounts widgets below it)."""
    if slot == "page":
        st.session_state[SHOWN_KEY] = st.session_state.pop(FLASH_KEY, {})
    box = st.container()
    for level, message in st.session_state.get(SHOWN_KEY, {}).pop(slot, []):
        if level in ("success", "info"):
            st.toast(message, icon=TOAST_ICONS[level])
        else:
            getattr(box, level)(message)


def run_action(action, success: str | None = None) -> bool:
    """Run a callback's action; a UserError becomes an error notice (never a traceback)."""
    try:
        result = action()
    except UserError as exc:
        flash("error", str(exc))
        return False
    if success:
        flash("success", success.format(result=result))
    return True
