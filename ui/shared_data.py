"""The dataset as both pages see it: one cached scan per version of the folders.

A scan of 5,000 images reads 5,000 headers and captions (a few tenths of a second): it must not
happen on every rerun. The cache key is the folders plus their mtimes (workbench.dataset.folders.
fingerprint), so an image or caption added, removed or rewritten anywhere is seen on the next
rerun; the page also drops the cache after its own writes, in case they land within one tick of
the file-system clock.
"""
from __future__ import annotations

import streamlit as st

from workbench.dataset.folders import fingerprint
from workbench.dataset.scan import Dataset, scan
from workbench.planning.plan import Plan, make_plan


@st.cache_data(max_entries=4, show_spinner="Scanning the dataset…")
def _scan(train_data_dir: str, reg_data_dir: str, caption_extension: str, version: tuple) -> Dataset:
    # lenient: a bad image or caption is marked on the page (Dataset.problems), never hides it
    return scan(train_data_dir, reg_data_dir or None, caption_extension, lenient=True)


def load_dataset(cfg) -> Dataset:
    """The scanned dataset of the config's folders; raises UserError naming what is wrong."""
    roots = [r for r in (cfg.train_data_dir, cfg.reg_data_dir) if r]
    return _scan(cfg.train_data_dir, cfg.reg_data_dir, cfg.caption_extension, fingerprint(roots))


def load_plan(cfg, dataset: Dataset | None = None) -> Plan:
    return make_plan(cfg, dataset=dataset if dataset is not None else load_dataset(cfg))


def load_layout(cfg, dataset: Dataset) -> Plan:
    """Buckets and repeats for the Dataset page. They do not depend on the run's length, so a config
    that sets neither max_train_epochs nor max_train_steps (Parameters and Preflight say so) still
    shows its images: its steps are counted as one epoch here, and only here."""
    if cfg.max_train_epochs is None and cfg.max_train_steps <= 0:
        cfg = cfg.replace(max_train_epochs=1)
    return make_plan(cfg, dataset=dataset)


def forget_scan() -> None:
    """Call after writing captions or renaming folders."""
    _scan.clear()
