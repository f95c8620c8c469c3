"""Choosing a folder for a config field: a typed path checked on entry, and a server-side
browser (the app runs headless, often on a remote machine, so no tkinter dialog)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui.shared_config import current_config, save_config
from ui.shared_state import flash, sync_widget
from workbench.config.schema import field_help
from workbench.dataset.folders import list_folder, resolve_folder
from workbench.errors import UserError


def set_folder(name: str, path: str) -> None:
    """Save config field `name` = `path` (already checked)."""
    save_config(current_config().replace(**{name: path}))


def _typed(name: str, key: str) -> None:
    text = st.session_state[key].strip()
    try:
        path = str(resolve_folder(text, name)) if text else ""
    except UserError as exc:
        flash("error", str(exc))
        return
    set_folder(name, path)


def folder_field(cfg, name: str, label: str | None = None) -> None:
    """A text box for config field `name` (a folder), saved when the path is a folder (or
    cleared), with a browser below it."""
    key = f"folder_{name}"
    sync_widget(key, getattr(cfg, name))
    st.text_input(label or name, key=key, help=field_help(name), on_change=_typed, args=(name, key))
    folder_browser(name, getattr(cfg, name))


def _use(name: str, path: str) -> None:
    set_folder(name, path)
    flash("success", f"{name} = {path}")


def _open(state_key: str, path: Path) -> None:
    st.session_state[state_key] = str(path)


def folder_browser(name: str, start: str) -> None:
    """Browse the server's folders from `start` (or the home folder); "Use this folder" saves it."""
    state_key = f"browse_{name}"
    with st.expander(f"Browse for {name}"):
        here = st.session_state.get(state_key) or start or str(Path.home())
        try:
            listing = list_folder(here)
        except UserError as exc:
            st.warning(str(exc))
            listing = list_folder(Path.home())
        st.caption(f"`{listing.path}`")
        up, use = st.columns(2)
        up.button("⬆ Up", key=f"{state_key}_up", disabled=listing.parent is None,
                  on_click=_open, args=(state_key, listing.parent))
        use.button("Use this folder", key=f"{state_key}_use", type="primary",
                   on_click=_use, args=(name, str(listing.path)))
        if not listing.subfolders:
            st.caption("No subfolders here.")
            return
        labels = {_label(s): s.path for s in listing.subfolders}
        choice = st.selectbox("Subfolders", list(labels), key=f"{state_key}_pick_{listing.path}")
        st.button("Open", key=f"{state_key}_open", on_click=_open, args=(state_key, labels[choice]))


def _label(sub) -> str:
    if sub.repeats is None:
        return sub.name
    return f"{sub.name}  ({sub.images} images × {sub.repeats} repeats)"
