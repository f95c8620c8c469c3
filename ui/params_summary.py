"""The top of the Parameters page: the model family read from the checkpoint (with a fix for
flags that disagree), total steps with how they come about, and the LR chart with its markers."""
from __future__ import annotations

import altair as alt
import streamlit as st

from ui.shared_charts import overlapping_curves
from ui.shared_config import current_config, save_config
from ui.shared_data import load_plan
from workbench.errors import UserError
from workbench.models.hub import is_repo_id
from workbench.models.modelinfo import contradiction, model_info
from workbench.runs.preflight import repo_model_info
from workbench.views.schedule_chart import chart_frames
from workbench.views.step_breakdown import breakdown

REPO_CHECK_TTL_S = 60     # a repo id is looked up again after this many seconds (a download may have ended)
# the UNet's curve, then the text encoder's (px; dash pattern in px on/off)
# marker kind -> (legend name, colour)
MARKERS = {"warmup": ("warmup ends", "#2ca02c"), "restart": ("restart", "#9467bd"),
           "stop_te": ("text encoder stops", "#d62728"), "save": ("save", "#7f7f7f")}


def _match_flags(family: str, v_prediction: bool | None) -> None:
    changes = {"v2": family == "sd2", "sdxl": family == "sdxl"}
    if v_prediction is not None:
        changes["v_parameterization"] = v_prediction
    save_config(current_config().replace(**changes))


def model_panel(cfg) -> None:
    if not cfg.pretrained_model_name_or_path:
        st.info("Set pretrained_model_name_or_path: the model family is read from the checkpoint.")
        return
    try:
        info = _model_info(cfg.pretrained_model_name_or_path)
    except UserError as exc:
        st.warning(str(exc))
        return
    if info is None:
        return
    vpred = {True: ", v-prediction", False: ", epsilon prediction", None: ""}[info.v_prediction]
    st.markdown(f"**Model:** {info.family_name} ({info.layout.replace('_', ' ')}{vpred})")
    problem = contradiction(info, cfg)
    if problem:
        st.warning(problem)
        st.button(f"Set the flags for {info.family_name}", key="params_match_flags",
                  on_click=_match_flags, args=(info.family, info.v_prediction))


def _model_info(name: str):
    """The local model's info; for a Hugging Face repo id also whether it is cached or what will
    download (said here), and None when its family is unknown until downloaded."""
    if not is_repo_id(name):
        return model_info(name)
    info, sentence = _repo_model_info(name)
    st.info(sentence)
    return info


@st.cache_data(ttl=REPO_CHECK_TTL_S, show_spinner="Looking the model up in the Hugging Face cache and Hub…")
def _repo_model_info(name: str):
    return repo_model_info(name)


def steps_panel(cfg):
    """Total steps and the breakdown; returns the plan, or None when there is none (said why)."""
    try:
        plan = load_plan(cfg)
    except UserError as exc:
        st.warning(f"Total steps unknown: {exc}")
        return None
    b = breakdown(plan, cfg)
    per_epoch, total, warmup = st.columns(3)
    total.metric("Total steps", b.total_steps)
    per_epoch.metric("Steps per epoch", b.steps_per_epoch)
    warmup.metric("Warmup steps", b.warmup_steps)
    with st.expander("How the total comes about"):
        st.markdown("\n".join(f"- {line}" for line in b.lines()))
    return plan


def lr_chart(cfg, plan) -> None:
    if plan.total_steps == 0:
        return
    curves, markers = chart_frames(cfg, plan.total_steps, plan.steps_per_epoch, plan.epochs)
    # with equal learning rates the two curves coincide: the UNet's (first in the data, so drawn
    # first) wide and pale, the text encoder's thin and dashed on top of it: both stay visible
    names = list(dict.fromkeys(curves.curve))
    lines = alt.Chart(curves).mark_line().encode(
        x=alt.X("step:Q", title="optimizer step"), y=alt.Y("lr:Q", title="learning rate", axis=alt.Axis(format="~e")),
        **overlapping_curves("curve", names, "curve"),
        tooltip=["curve", "step", alt.Tooltip("lr:Q", format=".3e")])
    kinds = [k for k in MARKERS if k in set(markers.kind)]
    markers["marker"] = [MARKERS[k][0] for k in markers.kind]
    rules = alt.Chart(markers).mark_rule(strokeDash=[4, 3]).encode(
        x="step:Q", tooltip=["label", "step"],
        color=alt.Color("marker:N", title="marker", scale=alt.Scale(domain=[MARKERS[k][0] for k in kinds],
                                                                   range=[MARKERS[k][1] for k in kinds])))
    chart = alt.layer(lines, rules).resolve_scale(color="independent").properties(height=280)
    st.altair_chart(chart, width="stretch")
