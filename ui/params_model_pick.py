"""Pick the base model from a list instead of typing a path: recent models, the Hugging Face
cache, and the A1111 / ComfyUI folders the user added once (workbench.models.sources)."""
from __future__ import annotations

import streamlit as st

from ui.shared_config import current_config, save_config
from ui.shared_state import flash, run_action
from workbench.models.sources import add_model_folder, quick_pick


def _use(value: str) -> None:
    save_config(current_config().replace(pretrained_model_name_or_path=value))
    flash("success", f"Base model: {value}")


def _add_folder() -> None:
    folder = st.session_state.get("model_folder_new", "").strip()
    if folder and run_action(lambda: add_model_folder(folder), "Looking in {result} from now on"):
        st.session_state["model_folder_new"] = ""


def model_pick_panel(cfg) -> None:
    with st.expander("Pick a model: recent, Hugging Face cache, A1111 / ComfyUI folders"):
        choices = quick_pick()
        if choices:
            labels = {c.label: c.value for c in choices}
            chosen = st.selectbox("Model", list(labels), key="model_pick", index=None,
                                  placeholder=f"{len(choices)} model(s) found")
            st.button("Use this model", key="model_pick_use", disabled=chosen is None,
                      on_click=_use, args=(labels.get(chosen, ""),))
        else:
            st.caption("No models found yet: add your A1111 or ComfyUI folder below, or type a path or a "
                       "Hugging Face repo id (owner/name) in pretrained_model_name_or_path.")
        st.text_input("Add a folder to look in (an A1111 or ComfyUI install, or a folder of checkpoints)",
                      key="model_folder_new", on_change=_add_folder)
