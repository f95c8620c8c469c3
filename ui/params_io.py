"""Configs in and out: save/load a TOML by path, download/upload it, import a kohya_ss GUI JSON or
sd-scripts TOML (workbench.config.kohya, with its per-key report) and export the sd-scripts command.
Loading replaces the current config on disk; saving never overwrites a file unless asked to."""
from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from ui.config_history import replace_config, restore_button
from ui.shared_config import current_config
from ui.shared_state import flash, run_action
from workbench import workspace
from workbench.config.kohya import export_sd_scripts, import_file
from workbench.config.schema import load_toml, save_toml, to_toml
from workbench.errors import UserError


def _save_to(key: str, overwrite_key: str) -> None:
    path = Path(st.session_state[key]).expanduser()

    def save():
        if path.exists() and not st.session_state[overwrite_key]:
            raise UserError(f"{path}: already exists; tick “overwrite” to replace it")
        return save_toml(current_config(), path)
    run_action(save, "Saved the config to {result}")


def _use_loaded(path: Path, shown_name: str) -> None:
    cfg, unknown = load_toml(path)
    replace_config(cfg, f"Loaded {Path(shown_name).name}")
    flash("success", f"Loaded {shown_name}")
    if unknown:
        flash("warning", f"{shown_name}: unknown keys ignored: {', '.join(unknown)}")


def _load_from(key: str) -> None:
    path = Path(st.session_state[key]).expanduser()
    run_action(lambda: _use_loaded(path, str(path)))


def _with_upload(key: str, use) -> None:
    """on_change of an uploader: hand the file to `use(path, name)` under its own name (so
    errors name it), from a temporary folder removed afterwards."""
    upload = st.session_state.get(key)
    if upload is None:
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(upload.name).name
        path.write_bytes(upload.getvalue())
        run_action(lambda: _named_as_uploaded(use, path, upload.name))


def _named_as_uploaded(use, path: Path, name: str) -> None:
    """`use(path, name)`; an error names the file as the user knows it, not the temporary copy."""
    try:
        use(path, name)
    except UserError as exc:
        raise UserError(str(exc).replace(str(path), name)) from None


def toml_panel(cfg) -> None:
    default = str(workspace.home() / "configs" / f"{cfg.output_name or 'config'}.toml")
    path = st.text_input("TOML path", value=default, key="io_path")
    save, overwrite, load = st.columns([1, 1, 1])
    overwrite.checkbox("overwrite", key="io_overwrite")
    save.button("Save to path", key="io_save", on_click=_save_to, args=("io_path", "io_overwrite"))
    load.button("Load from path", key="io_load", on_click=_load_from, args=("io_path",),
                disabled=not Path(path).expanduser().is_file())
    st.download_button("Download config.toml", to_toml(cfg), file_name=f"{cfg.output_name or 'config'}.toml",
                       mime="application/toml", key="io_download")
    st.file_uploader("Load an uploaded TOML", type=["toml"], key="io_upload", on_change=_with_upload,
                     args=("io_upload", _use_loaded))
    restore_button()


REPORT = "params_kohya_report"    # (file name, source, report lines) of the last import, shown until the next


def _use_imported(path: Path, shown_name: str) -> None:
    imported = import_file(path)
    replace_config(imported.config, f"Imported {shown_name}")
    st.session_state[REPORT] = (shown_name, imported.source, imported.report)
    flash("success", f"Imported {shown_name} ({imported.source})")


def kohya_panel(cfg) -> None:
    st.file_uploader("Import a kohya_ss GUI .json or an sd-scripts .toml", type=["json", "toml"],
                     key="io_kohya_upload", on_change=_with_upload, args=("io_kohya_upload", _use_imported))
    export = export_sd_scripts(cfg)
    toml_name = export.file_name
    st.markdown("**Run the same job with sd-scripts:** save this TOML beside sd-scripts, then run")
    st.code(export.command(toml_name), language="bash", wrap_lines=True)
    st.download_button(f"Download {toml_name}", export.toml(), file_name=toml_name, mime="application/toml",
                       key="io_export_download")
    for note in export.notes:
        st.caption(note)


def import_report() -> None:
    """The per-key report of the last kohya_ss import (full width: the detail column is the point)."""
    if REPORT not in st.session_state:
        return
    name, source, report = st.session_state[REPORT]
    shown = [r for r in report if r.status != "unset"]
    unset = [r.key for r in report if r.status == "unset"]
    with st.expander(f"Import report: {name} ({source}, {len(shown)} keys)", expanded=True):
        st.dataframe({"status": [r.status for r in shown], "key": [r.key for r in shown],
                      "detail": [r.detail for r in shown]}, hide_index=True,
                     column_config={"detail": st.column_config.TextColumn("detail", width="large")})
        if unset:
            st.caption(f"Empty or off in the file, nothing lost: {', '.join(unset)}")
