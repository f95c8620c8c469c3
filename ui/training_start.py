"""The Training page's start panel: what the current config will run, why it cannot start, and
the Start button. Starting goes through workbench (validation, plan, runs.launch's lock)."""
from __future__ import annotations

import streamlit as st

from ui.shared_config import save_config
from ui.shared_data import load_plan
from ui.shared_state import flash
from workbench.config.schema import TrainConfig
from workbench.errors import UserError
from workbench.planning import fast_path
from workbench.planning.estimate import estimate, gpu_name
from workbench.runs import queue as run_queue
from workbench.runs import registry as runs
from workbench.runs.outputs import existing_outputs, free_output_name, lora_path
from workbench.runs.preflight import cuda_available
from workbench.runs.registry import start_blockers, where_to_fix


def start_panel(cfg: TrainConfig) -> None:
    st.subheader("Start a run")
    target = lora_path(cfg)
    st.markdown(f"{_steps_line(cfg)} · model `{cfg.pretrained_model_name_or_path or '(not set)'}` · "
                f"data `{cfg.train_data_dir or '(not set)'}` · writes `{target}`")
    st.page_link("app_pages/2_Parameters.py", label="Change the parameters", icon=":material/tune:")
    _offer_free_name(cfg)
    training = run_queue.busy()
    parallel = False
    if training:
        st.info(f"Run `{', '.join(p.name for p in training)}` is training: this run will wait in the queue and "
                "start when the GPU is free.")
        parallel = st.checkbox("Start now beside it instead (both share the GPU: each is slower, and memory may "
                               "run out)", key="start_parallel")
    label = "Queue this run" if training and not parallel else "Start training"
    if st.button(label, type="primary", key="start"):
        _start(cfg, parallel)


def _steps_line(cfg: TrainConfig) -> str:
    """The run's length, the number to check before pressing Start (the plan the trainer runs)."""
    try:
        plan = load_plan(cfg)
    except UserError:
        return "**steps unknown** (see Parameters)"
    choice = fast_path.decide(cfg, plan.total_steps, cuda_available())      # the line trainer.log will have
    return (f"**{plan.total_steps:,} steps** ({plan.epochs} epoch(s) of {plan.steps_per_epoch:,} steps, "
            f"batch size {plan.train_batch_size}) · {choice.line()} · {_estimate(cfg, plan.total_steps).line()}")


def _estimate(cfg: TrainConfig, total_steps: int):
    return estimate(cfg, total_steps, runs.list_runs(), _gpu_name())


@st.cache_resource
def _gpu_name() -> str | None:
    """nvidia-smi once per server: the GPU does not change while the app runs."""
    return gpu_name()


def _offer_free_name(cfg: TrainConfig) -> None:
    """Outputs are never overwritten: when this name's files exist, offer the next free name."""
    if not cfg.output_dir or not existing_outputs(cfg, cfg.max_train_epochs):
        return
    free = free_output_name(cfg, cfg.max_train_epochs)
    st.warning(f"`{cfg.output_name}` already has saved files in `{cfg.output_dir}`; they are never overwritten.")
    if st.button(f"Use output name “{free}”", key="free_output_name"):
        save_config(cfg.replace(output_name=free))
        st.rerun()


def _start(cfg: TrainConfig, parallel: bool) -> None:
    problems = start_blockers(cfg)
    if problems:
        st.error("Not started — fix these first:\n\n" + "\n".join(f"- **{where_to_fix(p)}**: {p}" for p in problems))
        return
    try:
        run_dir, started = run_queue.start_or_queue(cfg, parallel=parallel)
    except UserError as exc:
        st.error(f"Not started: {exc}")
        return
    if not started:
        flash("success", f"Queued {run_dir.name}")
    st.query_params["run"] = run_dir.name
    st.rerun()
