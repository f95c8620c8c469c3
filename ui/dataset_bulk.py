"""Bulk caption edits: choose an operation, see exactly which captions change and how, apply,
and undo — the undo journal is on disk in the workspace, so it survives a refresh."""
from __future__ import annotations

import datetime

import streamlit as st

from ui.shared_data import forget_scan
from ui.shared_state import flash, run_action
from workbench.dataset.captions import BULK_KINDS, BulkOp, apply_changes, pending_undos, preview, undo_last
from workbench.errors import UserError
from workbench.views.dataset_tables import caption_of

PREVIEW_ROWS = 200


def _op_inputs() -> BulkOp:
    kind = st.selectbox("Operation", list(BULK_KINDS), format_func=lambda k: BULK_KINDS[k][0], key="bulk_kind")
    if kind == "dedupe":
        return BulkOp(kind)
    first, second = st.columns(2)
    text = first.text_input("Find" if kind == "replace" else "Tag", key="bulk_text")
    replacement = second.text_input("Replace with", key="bulk_replacement") if kind == "replace" else ""
    return BulkOp(kind, text, replacement)


def _apply(changes, description: str) -> None:
    if run_action(lambda: apply_changes(changes, description), f"{description}: {len(changes)} captions changed"):
        forget_scan()


def undo_newest_edit(since: str = "the edit") -> None:
    """Undo the newest bulk edit or caption run, and say what it restored and what it kept (captions
    edited since `since`). The Bulk edit tab and the Caption tab both undo through this."""
    try:
        result = undo_last()
    except UserError as exc:
        flash("error", str(exc))
        return
    forget_scan()
    flash("success", f"Undid “{result.description}”: {len(result.restored)} captions restored")
    if result.skipped:
        flash("warning", f"{len(result.skipped)} captions were edited since {since} and were kept: "
                         + ", ".join(p.name for p in result.skipped[:10]))


# what a bulk edit applies to. Regularisation captions are left out unless asked for: a trigger
# word prepended to them teaches the class itself the trigger, the mistake reg images exist to prevent
SCOPES = {
    "training images matching the filters": lambda all_images, filtered: [im for im in filtered if not im.is_reg],
    "all training images": lambda all_images, filtered: [im for im in all_images if not im.is_reg],
    "all images, regularisation too": lambda all_images, filtered: all_images,
}


def bulk_panel(all_images: list, filtered: list, caption_extension: str) -> None:
    op = _op_inputs()
    scope = st.radio("Apply to", list(SCOPES), horizontal=True, key="bulk_scope")
    images = SCOPES[scope](all_images, filtered)
    try:
        changes = preview(op, [caption_of(im.info, caption_extension) for im in images])
    except UserError as exc:       # the operation is not complete yet: say what it needs
        st.caption(str(exc))
        changes = None
    if changes is not None:
        _preview_table(changes, op, images)
    _undo_section()


def _preview_table(changes, op: BulkOp, images: list) -> None:
    uncaptioned = sum(1 for im in images if not im.info.has_caption)
    st.markdown(f"**Preview:** {len(changes)} of {len(images)} captions change"
                + (f" ({uncaptioned} images without a caption file are left alone)" if uncaptioned else "")
                + (f"; the first {PREVIEW_ROWS} are listed" if len(changes) > PREVIEW_ROWS else ""))
    if changes:
        st.dataframe({"folder": [c.path.parent.name for c in changes[:PREVIEW_ROWS]],
                      "file": [c.path.name for c in changes[:PREVIEW_ROWS]],
                      "before": [c.before for c in changes[:PREVIEW_ROWS]],
                      "after": [c.after for c in changes[:PREVIEW_ROWS]]}, hide_index=True)
    st.button(f"Apply to {len(changes)} captions", key="bulk_apply", type="primary", disabled=not changes,
              on_click=_apply, args=(changes, op.describe()))


def _undo_section() -> None:
    pending = pending_undos()
    if not pending:
        st.caption("No bulk edit to undo.")
        return
    last = pending[0]
    when = datetime.datetime.fromtimestamp(last.time).strftime("%Y-%m-%d %H:%M")
    st.button(f"Undo “{last.description}” ({len(last.files)} captions, {when})", key="bulk_undo",
              on_click=undo_newest_edit)
    if len(pending) > 1:
        st.caption(f"{len(pending) - 1} earlier bulk edit(s) can be undone after it, one at a time.")
