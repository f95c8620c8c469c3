"""What every page does first: page config, the workspace (the demo on first start), the current
config from disk. A browser refresh is a new session, so nothing here lives only in session_state."""
from __future__ import annotations

import subprocess
import sys
import threading

import streamlit as st

from workbench import workspace
from workbench.config.schema import TrainConfig, load_toml, new_config
from workbench.errors import UserError

# one demo build at a time in this server: a refresh or a second tab during the first start used
# to start a second build, and the two collided ("Directory not empty") in both tabs
_DEMO_BUILD = threading.Lock()


def ensure_workspace() -> None:
    """First start: build the demo and make demo.toml the current config (see build_demo_once)."""
    if workspace.current_config_path().is_file():
        return
    with st.spinner("First start: building the demo workspace (tiny models with random weights)…"):
        problem = build_demo_once()
    if problem:
        st.error(f"Could not build the demo: {problem} — reload the page to try again")
        st.stop()


def build_demo_once() -> str | None:
    """Build the demo (tiny random-weight models, dataset, configs) in a subprocess — it needs
    torch, which the app process never imports — unless another session has built it meanwhile;
    then make demo.toml the current config. Returns the build's error line, or None."""
    with _DEMO_BUILD:
        if workspace.current_config_path().is_file():
            return None
        demo = workspace.demo_dir()
        done = subprocess.run([sys.executable, "-m", "workbench", "demo", str(demo)], capture_output=True, text=True)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            return lines[-1] if lines else f"exit status {done.returncode}"
        cfg, _ = load_toml(demo / "demo.toml")
        workspace.save_current(cfg)
    return None


def setup_page(title: str) -> TrainConfig:
    """Call first in every page: returns the current config (from disk)."""
    st.set_page_config(page_title=f"{title} · LoRA Workbench", layout="wide")
    ensure_workspace()
    try:
        cfg = workspace.load_current()
    except UserError as exc:
        st.error(str(exc))
        st.stop()
    if cfg is not None and on_demo(cfg):
        st.sidebar.info("Demo workspace: the demo models have random weights — training runs for real, "
                        "but the LoRA it makes draws noise. Point Parameters at your own model and folders.")
    return cfg or new_config()


def on_demo(cfg: TrainConfig) -> bool:
    """Whether the config trains the demo's random-weight model."""
    return str(workspace.demo_dir()) in cfg.pretrained_model_name_or_path
