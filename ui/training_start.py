"""The Training page's start panel: what the current config will run, why it cannot start, and
the Start button. Starting goes through workbench (validation, plan, runs.launch's lock)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from workbench.config import TrainConfig
from workbench.errors import UserError
from workbench.training_view import start_blockers, start_run


def start_panel(cfg: TrainConfig) -> None:
    st.subheader("Start a run")
    target = Path(cfg.output_dir or ".") / f"{cfg.output_name}.{cfg.save_model_as}"
    st.markdown(f"Model `{cfg.pretrained_model_name_or_path or '(not set)'}` · data `{cfg.train_data_dir or '(not set)'}`"
                f" · writes `{target}`")
    st.page_link("pages/2_Parameters.py", label="Change the parameters", icon="⚙️")
    if st.button("Start training", type="primary", key="start"):
        _start(cfg)


def _start(cfg: TrainConfig) -> None:
    problems = start_blockers(cfg)
    if problems:
        st.error("Not started — fix these in Parameters first:\n\n" + "\n".join(f"- {p}" for p in problems))
        return
    try:
        run_dir = start_run(cfg)
    except UserError as exc:
        st.error(f"Not started: {exc}")
        return
    st.query_params["run"] = run_dir.name
    st.rerun()
