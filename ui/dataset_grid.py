"""The image grid: filters and page in the URL (a refresh keeps them), cached thumbnails, and a
caption box under each image that writes its file when edited — unless the file changed on disk
since the page showed it, in which case the conflict is shown and nothing is written."""
from __future__ import annotations

import hashlib
import math

import streamlit as st

from ui.dataset_masks import mask_image
from ui.shared_data import forget_scan
from ui.shared_state import flash, show_flash
from workbench.dataset.captions import CaptionConflict, write_caption
from workbench.dataset.thumbnails import thumbnails
from workbench.errors import UserError
from workbench.views.dataset_tables import ImageFilter, caption_of, size_label

PAGE_SIZE = 24          # images per grid page
CAPTION_BOX_PX = 110    # about four lines of a caption
COLUMNS = 4             # wide enough for a caption's first tags to be readable in its box
ANY = "any"


def image_filter(plan) -> ImageFilter:
    """The filter widgets; their values live in the URL's query string."""
    uncaptioned, bucket, tag, text = st.columns([1, 1, 1, 2])
    buckets = [ANY] + [size_label(b) for b in plan.buckets]
    return ImageFilter(
        uncaptioned=uncaptioned.checkbox("Uncaptioned only", key="uncaptioned", bind="query-params"),
        bucket=_any_is_empty(bucket.selectbox("Bucket", buckets, key="bucket", bind="query-params")),
        tag=tag.text_input("Has tag", key="tag", bind="query-params"),
        text=text.text_input("Caption or file name contains", key="q", bind="query-params"))


def _any_is_empty(value: str | None) -> str:
    return "" if value in (None, ANY) else value


def page_of(items: list, key: str, page_size: int) -> tuple[int, list]:
    """(page number, the items on it) with a pagination widget bound to the URL."""
    pages = max(1, math.ceil(len(items) / page_size))
    page = st.pagination(pages, key=key, bind="query-params") if pages > 1 else 1
    return page, items[(page - 1) * page_size: page * page_size]


def caption_key(path, shown: str | None) -> str:
    """A widget key that changes when the caption on disk changes, so the box shows the new text."""
    return "cap_" + hashlib.md5(f"{path}\0{shown}".encode()).hexdigest()


def _save(caption_file, expected: str | None, key: str) -> None:
    """on_change of a caption box. A refused write (the file changed on disk meanwhile) is said
    under the box, with the text typed, since the box then shows the file's text again; the scan
    is dropped either way, so the page shows what is on disk now."""
    typed = st.session_state[key]
    try:
        write_caption(caption_file, typed, expected)
    except CaptionConflict:
        flash("error", f"Not saved: {caption_file.name} changed on disk since the page showed it; the box "
                       f"now shows the file. What you typed: “{typed}”", slot=str(caption_file))
    except UserError as exc:
        flash("error", f"Not saved: {exc}", slot=str(caption_file))
    else:
        flash("success", f"Saved {caption_file.name}")
    forget_scan()


def image_grid(images: list, caption_extension: str, masks_of=None) -> None:
    """masks_of: the config whose loss masks replace the thumbnails (ui/dataset_masks.py), or None."""
    st.caption(f"{len(images)} images match")
    _, shown = page_of(images, "grid_page", PAGE_SIZE)
    # square thumbnails: tall and wide images give cells of one height, so the caption boxes line up
    thumbs = thumbnails([im.info.path for im in shown], square=True)
    for start in range(0, len(shown), COLUMNS):
        for column, im, thumb in zip(st.columns(COLUMNS), shown[start:], thumbs[start:start + COLUMNS]):
            with column:
                _cell(im, thumb, caption_extension, masks_of)


def _cell(im, thumb, caption_extension: str, masks_of=None) -> None:
    if masks_of is not None:
        mask_image(im.info.path, masks_of)
    elif isinstance(thumb, Exception):
        st.warning(str(thumb))
    else:
        st.image(str(thumb), width="stretch")      # every square as wide as its column: even rows
    caption_file, shown = caption_of(im.info, caption_extension)
    key = caption_key(caption_file, shown)
    # a box of several lines: a long caption wraps and is read whole (it is still saved as one line)
    st.text_area(im.info.path.name, value=shown or "", key=key, on_change=_save, args=(caption_file, shown, key),
                 height=CAPTION_BOX_PX,
                  placeholder=f"no caption: trains on “{im.subset.class_tokens}”",
                  help=f"{im.subset.name}: {size_label(im.info.size)} → bucket {size_label(im.bucket)}, "
                       f"{im.repeats} repeat(s)")
    show_flash(str(caption_file))
