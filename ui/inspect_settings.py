""""Use these settings": the LoRA's training config (workbench.lora.inspect.config_from_metadata)
becomes the current config, and the Parameters page opens on it. The config it replaces is kept
(ui.config_history), and a file that stores no training settings offers nothing to use."""
from __future__ import annotations

import streamlit as st

from ui.config_history import replace_config
from ui.shared_state import flash
from workbench.config.schema import TrainConfig
from workbench.lora.inspect import Inspection, config_from_metadata

# a LoRA made elsewhere keeps no usable paths: these stay as the current config has them
PATH_FIELDS = ("pretrained_model_name_or_path", "train_data_dir", "reg_data_dir", "output_dir")


def has_training_settings(metadata: dict) -> bool:
    """Whether the file records how it was trained (the workbench's config or sd-scripts' ss_*
    keys); without them "use these settings" would only reset the config to the defaults."""
    return "workbench_config" in metadata or any(k.startswith("ss_") for k in metadata)


def use_settings_section(i: Inspection, current: TrainConfig) -> None:
    if not has_training_settings(i.metadata):
        st.caption("This file stores no training settings (no ss_* metadata), so there are none to load "
                   "into Parameters.")
        return
    cfg, notes = config_from_metadata(i.metadata)
    kept = {name: getattr(current, name) for name in PATH_FIELDS if not getattr(cfg, name)}
    if notes:
        with st.expander(f"{len(notes)} setting(s) cannot be carried over"):
            st.markdown("\n".join(f"- {note}" for note in notes))
    if kept:
        st.caption("Kept from your current config: " + ", ".join(kept))
    if st.button("Use these settings", key="use-settings", help="Replace the current config with the one this "
                 "LoRA was trained with, and open Parameters (the current one can be restored there)"):
        replace_config(cfg.replace(**kept), f"Used the settings of {i.path.name}")
        flash("success", f"Loaded the training settings of {i.path.name}")
        st.switch_page("app_pages/2_Parameters.py")
