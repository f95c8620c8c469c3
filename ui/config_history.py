"""Replacing the whole current config — loading a TOML, an upload, a kohya_ss import, a LoRA's
settings — keeps the config it replaced, so one click brings it back: a load is a click away from
wiping an afternoon of edits that were never saved to a file. The kept config is previous.toml in
the workspace, with what replaced it in previous.json, so it survives a refresh like the rest."""
from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import streamlit as st

from ui.shared_state import flash
from workbench import workspace
from workbench.config.schema import TrainConfig, load_toml, save_toml
from workbench.errors import UserError
from workbench.fileio import write_json_atomic


def _paths() -> tuple[Path, Path]:
    return workspace.home() / "previous.toml", workspace.home() / "previous.json"


def replace_config(cfg: TrainConfig, why: str) -> None:
    """Make `cfg` the current config; the one it replaces (if different) is kept, `why` names
    what replaced it ("Imported gui.json")."""
    old = workspace.load_current()
    if old is not None and old != cfg:
        config_path, note_path = _paths()
        save_toml(old, config_path)
        write_json_atomic(note_path, {"why": why, "time": time.time()})
    workspace.save_current(cfg)


def kept() -> tuple[str, float] | None:
    """(what replaced it, unix time) of the kept config, or None when there is none."""
    config_path, note_path = _paths()
    if not config_path.is_file() or not note_path.is_file():
        return None
    try:
        note = json.loads(note_path.read_text(encoding="utf-8"))
        return str(note["why"]), float(note["time"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def restore() -> None:
    """The kept config becomes the current one again; it is then no longer kept."""
    config_path, note_path = _paths()
    cfg, _ = load_toml(config_path)
    workspace.save_current(cfg)
    config_path.unlink()
    note_path.unlink(missing_ok=True)


def _restore_clicked() -> None:
    try:
        restore()
    except UserError as exc:
        flash("error", f"Could not restore the previous config: {exc}")
        return
    flash("success", "Restored the previous config")


def restore_button() -> None:
    """A button that brings back the replaced config, while there is one."""
    found = kept()
    if found is None:
        return
    why, when = found
    stamp = datetime.datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M")
    st.button(f"Restore the config from before “{why}”", key="config_restore", on_click=_restore_clicked,
              help=f"The whole config as it was before it was replaced ({stamp}); the current one is then dropped")
