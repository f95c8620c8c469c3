"""Captions as an editable table (st.data_editor), one page of the filtered images at a time.

Streamlit 1.67 traps: a keyed editor over paginated rows carries its edits across pages, and
feeding an editor's output back in as its input loses every second edit. So the key holds the
page and a digest of the rows shown, the input is always built from the scan, and on_change
writes the edited rows to their files and then drops the editor's state.
"""
from __future__ import annotations

import hashlib

import streamlit as st

from ui.dataset_grid import page_of
from ui.shared_data import forget_scan
from ui.shared_state import flash, show_flash
from workbench.dataset.captions import write_caption
from workbench.errors import UserError
from workbench.views.dataset_tables import caption_of

ROWS_PER_PAGE = 50
NOTICES = "captions_table"     # flash slot right above the table, where the edit was made


def save_edited_rows(key: str, rows: list[tuple]) -> None:
    """on_change: write each edited caption of this page, [(caption file, line shown)] by row."""
    edits = st.session_state.get(key, {}).get("edited_rows", {})
    saved, failed = [], []
    for row, change in edits.items():
        if "caption" not in change:
            continue
        caption_file, expected = rows[int(row)]
        try:
            write_caption(caption_file, change["caption"] or "", expected)
            saved.append(caption_file.name)
        except UserError as exc:      # the cell now shows the file again: keep what was typed in the notice
            failed.append(f"{exc}. What you typed: “{change['caption']}”")
    del st.session_state[key]
    forget_scan()
    if saved:
        flash("success", f"Saved {', '.join(saved)}")
    for message in failed:
        flash("error", message, slot=NOTICES)


def caption_table(images: list, caption_extension: str) -> None:
    page, shown = page_of(images, "rows_page", ROWS_PER_PAGE)
    rows = [caption_of(im.info, caption_extension) for im in shown]
    data = {"image": [im.info.path.name for im in shown], "folder": [im.subset.name for im in shown],
            "caption": [line or "" for _, line in rows], "has file": [line is not None for _, line in rows]}
    digest = hashlib.md5(repr(rows).encode()).hexdigest()[:12]
    key = f"captions_p{page}_{digest}"
    show_flash(NOTICES)
    st.data_editor(data, key=key, hide_index=True, disabled=["image", "folder", "has file"],
                   on_change=save_edited_rows, args=(key, rows),
                   column_config={"caption": st.column_config.TextColumn("caption", width="large")})
    st.caption("Edit a caption cell and press Enter: its file is written at once. A caption that changed on "
               "disk since this table was drawn is reported, not overwritten.")
