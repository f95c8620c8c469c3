"""Dataset: choose the folders, see the subsets, look at and caption the images, edit captions in
bulk (with undo), see tag frequency, buckets and the preflight findings. Everything computed here
comes from workbench/; the scan is cached per version of the folders."""
from pathlib import Path

import streamlit as st

from ui.caption_job import job_strip
from ui.caption_panel import caption_panel
from ui.dataset_bulk import bulk_panel
from ui.dataset_charts import bucket_panel, tag_chart
from ui.dataset_findings import findings_panel
from ui.dataset_grid import image_filter, image_grid
from ui.dataset_masks import mask_toggle
from ui.dataset_problems import problems_panel
from ui.dataset_subsets import subsets_panel
from ui.dataset_table import caption_table
from ui.shared_data import load_dataset, load_layout
from ui.shared_folders import folder_field
from ui.shared_page import setup_page
from ui.shared_state import show_flash
from workbench.errors import UserError
from workbench.views.dataset_tables import filter_images

cfg = setup_page("Dataset")
st.title("Dataset")
show_flash()

train, reg = st.columns(2)
with train:
    folder_field(cfg, "train_data_dir", "Training folder (holds <repeats>_<class tokens> folders)")
with reg:
    folder_field(cfg, "reg_data_dir", "Regularisation folder (optional)")

try:
    dataset = load_dataset(cfg)
except UserError as exc:
    st.error(str(exc))
    # a folder that cannot be listed; preflight still names every bad file it finds
    if cfg.train_data_dir and Path(cfg.train_data_dir).expanduser().is_dir():
        st.subheader("Preflight")
        findings_panel(cfg)
    st.stop()

problems_panel(dataset.problems)
st.subheader("Subsets")
subsets_panel(dataset)

try:
    plan = load_layout(cfg, dataset)
except UserError as exc:
    st.error(str(exc))
    st.stop()

st.subheader("Images")
job_strip()
filtered = filter_images(plan, image_filter(plan))
masks_of = cfg if mask_toggle(cfg) else None
# the open tab is in the URL, and only it runs: a rerun on 5,000 images draws one view, not six
VIEWS = {
    "Images": lambda: image_grid(filtered, cfg.caption_extension, masks_of),
    "Captions table": lambda: caption_table(filtered, cfg.caption_extension),
    "Bulk edit": lambda: bulk_panel(plan.images, filtered, cfg.caption_extension),
    "Caption": lambda: caption_panel(cfg, dataset),
    "Tags": lambda: tag_chart(dataset),
    "Buckets": lambda: bucket_panel(plan),
    "Preflight": lambda: findings_panel(cfg),
}
for tab, draw in zip(st.tabs(list(VIEWS), key="view", bind="query-params"), VIEWS.values()):
    with tab:
        if tab.open:
            try:
                draw()
            except UserError as exc:
                st.error(str(exc))
