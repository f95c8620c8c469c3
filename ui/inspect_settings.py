""""Use these settings": the LoRA's training config (workbench.inspect.config_from_metadata)
becomes the current config, and the Parameters page opens on it."""
from __future__ import annotations

import streamlit as st

from ui.common import save_config
from workbench.config import TrainConfig
from workbench.inspect import Inspection, config_from_metadata

# a LoRA made elsewhere keeps no usable paths: these stay as the current config has them
PATH_FIELDS = ("pretrained_model_name_or_path", "train_data_dir", "reg_data_dir", "output_dir")


def use_settings_section(i: Inspection, current: TrainConfig) -> None:
    cfg, notes = config_from_metadata(i.metadata)
    kept = {name: getattr(current, name) for name in PATH_FIELDS if not getattr(cfg, name)}
    if notes:
        with st.expander(f"{len(notes)} setting(s) cannot be carried over"):
            st.markdown("\n".join(f"- {note}" for note in notes))
    if kept:
        st.caption("Kept from your current config: " + ", ".join(kept))
    if st.button("Use these settings", key="use-settings", help="Replace the current config with the one this "
                 "LoRA was trained with, and open Parameters"):
        save_config(cfg.replace(**kept))
        st.switch_page("pages/2_Parameters.py")
