"""Files of the dataset that cannot be used as they are — an unreadable image, a caption that is
not UTF-8 — marked at the top of the Dataset page, which still shows everything else. A caption
is fixed here (saved as UTF-8); an image is the user's to fix or remove (nothing deletes one)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from ui.shared_data import forget_scan
from ui.shared_state import flash, show_flash
from workbench.dataset.captions import CaptionConflict, replace_undecodable
from workbench.dataset.scan import lossy_caption
from workbench.errors import UserError


def problems_panel(problems: list[tuple[Path, str]]) -> None:
    if not problems:
        return
    st.warning(f"{len(problems)} file(s) need fixing before training — everything else is shown below. "
               "Unreadable images are left out of the counts until fixed or removed.")
    for path, message in problems:
        if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
            st.error(message)
        else:
            _caption_fix(path, message)


def _caption_fix(path: Path, message: str) -> None:
    st.error(message)
    data = path.read_bytes()
    key = "fix_" + hashlib.md5(str(path).encode() + data).hexdigest()
    st.text_area(f"Caption of {path.stem} (bytes that are not UTF-8 shown as �)", value=lossy_caption(path),
                 key=key, height=68)
    st.button(f"Save {path.name} as UTF-8", key=f"{key}_save", on_click=_save, args=(path, data, key))
    show_flash(str(path))


def _save(path: Path, expected: bytes, key: str) -> None:
    try:
        replace_undecodable(path, st.session_state[key], expected)
    except (CaptionConflict, UserError) as exc:
        flash("error", f"Not saved: {exc}", slot=str(path))
    else:
        flash("success", f"Saved {path.name} as UTF-8")
    forget_scan()
