"""Widget state kept in step with the config on disk, and one-shot notices after callbacks.

The config on disk (current.toml) is the truth: a widget shows the disk value whenever that value
changed since the widget last showed it (a load, an import, another page's edit), and otherwise
keeps what the user typed — so a value that failed to save stays visible beside its error.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from workbench import workspace
from workbench.config import TrainConfig
from workbench.errors import UserError

FLASH_KEY = "workbench_flash"


def sync_widget(key: str, disk_value: Any) -> None:
    """Call before creating the widget `key` (created without value=)."""
    mark = f"{key}__disk"
    if key not in st.session_state or st.session_state.get(mark) != disk_value:
        st.session_state[key] = disk_value
        st.session_state[mark] = disk_value


def current_config() -> TrainConfig:
    """The config on disk, read inside a callback (which runs before the page reads it)."""
    return workspace.load_current() or TrainConfig()


def flash(level: str, message: str) -> None:
    """A notice for the next render: success and info as a toast, warning and error at the top of
    the page until the next rerun."""
    st.session_state.setdefault(FLASH_KEY, []).append((level, message))


def show_flash() -> None:
    """Call once, near the top: the container is always there, so notices don't shift the page's
    elements (a shift remounts widgets below it)."""
    box = st.container()
    for level, message in st.session_state.pop(FLASH_KEY, []):
        if level in ("success", "info"):
            st.toast(message, icon="✅" if level == "success" else "ℹ️")
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
