"""The Dataset grid's loss-mask view: a toggle (in the URL) that swaps each thumbnail for one with
the part the loss ignores tinted red (workbench/dataset/masks.py draws it). Shown only when the config
has masks: masked_loss with conditioning_data_dir, or alpha_mask."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from workbench.config.schema import TrainConfig
from workbench.dataset.masks import conditioning_mask_path, mask_source, overlay_jpeg
from workbench.errors import UserError

SOURCES = {"conditioning": "the mask images in conditioning_data_dir", "alpha": "each image's alpha channel"}


def mask_toggle(cfg) -> bool:
    """The "Show loss masks" checkbox; False (and nothing drawn) when the run has no masks."""
    source = mask_source(cfg)
    if not source:
        return False
    on = st.toggle("Show loss masks", key="masks", bind="query-params",
                   help=f"From {SOURCES[source]}: white or opaque parts train, black or transparent ones do not.")
    if on:
        st.caption("Grey-red: what the loss ignores (masked_loss / alpha_mask); in colour: what trains.")
    return on


@st.cache_data(max_entries=512, show_spinner=False)
def _overlay(path: str, versions: tuple, masked_loss: bool, alpha_mask: bool, folder: str) -> bytes:
    """`versions`: the image's and its mask file's mtimes, so an edited mask is drawn again."""
    cfg = TrainConfig(masked_loss=masked_loss, alpha_mask=alpha_mask, conditioning_data_dir=folder)
    return overlay_jpeg(Path(path), cfg)


def _versions(path, cfg) -> tuple:
    mask = conditioning_mask_path(path, cfg.conditioning_data_dir) if mask_source(cfg) == "conditioning" else None
    return path.stat().st_mtime_ns, mask.stat().st_mtime_ns if mask else 0


def mask_image(path, cfg) -> None:
    """The masked thumbnail of one grid cell (a warning naming the file when it cannot be drawn)."""
    try:
        data = _overlay(str(path), _versions(path, cfg), cfg.masked_loss, cfg.alpha_mask, cfg.conditioning_data_dir)
    except (UserError, OSError) as exc:
        st.warning(f"{path.name}: no mask view ({exc})")
        return
    st.image(data, width="stretch")
