"""Choosing the LoRA to inspect: a typed path, the LoRAs the workspace's runs saved, or an upload
(written into the workspace, so the choice is a path like the others). The chosen path lives in
the URL (?file=, ?compare=), so a refresh keeps it."""
from __future__ import annotations

import re
from pathlib import Path

import streamlit as st

from workbench import workspace
from workbench.fileio import write_bytes_atomic
from workbench.runs import registry as runs
from workbench.views.training import lora_files

NONE = "—"


def pick_lora(slot: str, label: str) -> Path | None:
    """The path chosen for `slot` (a query parameter name), from any of the three inputs."""
    current = st.query_params.get(slot, "")
    found = lora_files(runs.list_runs())
    options = [NONE] + found + ([current] if current and current not in found else [])
    runs_column, path_column, upload_column = st.columns([2, 2, 1])
    chosen = runs_column.selectbox(f"{label}: a LoRA saved by your runs", options,
                                   index=options.index(current) if current else 0)
    typed = path_column.text_input(f"{label}: or a path to a .safetensors file", value=current,
                                   placeholder="any size: read where it is (for a LoRA over the upload limit)")
    upload = upload_column.file_uploader(f"{label}: or upload one", type=["safetensors"], key=f"upload-{slot}",
                                         help=f"up to {upload_limit_mb()} MB (Streamlit's server.maxUploadSize); "
                                         "a larger file: type its path")
    # an upload is taken once; the uploader keeps showing it, which must not undo a later choice
    if upload is not None and st.session_state.get(f"taken-{slot}") != upload.file_id:
        st.session_state[f"taken-{slot}"] = upload.file_id
        _choose(slot, save_upload(upload.name, upload.getvalue()))
    for value in (typed.strip(), "" if chosen == NONE else chosen):
        if value != current:
            _choose(slot, value)
    return Path(current).expanduser() if current else None


def upload_limit_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


def _choose(slot: str, value: str) -> None:
    if value:
        st.query_params[slot] = value
    else:
        del st.query_params[slot]
    st.rerun()


def save_upload(name: str, data: bytes) -> str:
    """Write an uploaded file into the workspace's uploads/, never over another file: the same
    content reuses its file, a different file of the same name gets a numbered name."""
    stem = re.sub(r"[^\w.-]", "_", Path(name).stem) or "upload"
    folder = workspace.home() / "uploads"
    path, n = folder / f"{stem}.safetensors", 1
    while path.exists() and path.read_bytes() != data:
        n += 1
        path = folder / f"{stem}-{n}.safetensors"
    if not path.exists():
        write_bytes_atomic(path, data)
    return str(path)
