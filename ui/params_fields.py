"""One widget per config field, built from the field's metadata (type, label, help, choices, path
kind): the Parameters page draws every option of TrainConfig through `field_widget`, none by hand
except lr_warmup_steps, which is edited as "% of steps" or as steps.

A widget shows the value on disk; an edit is saved to current.toml at once (from its on_change
callback, so the rest of the page already sees it), after the same coercion a TOML load does. A
value that cannot be coerced, or that the trainer would refuse (workbench.config.validate.unrunnable), is
not saved; its error stays next to the field.
"""
from __future__ import annotations

from dataclasses import Field
from pathlib import Path
from typing import Any

import streamlit as st

from ui.shared_config import current_config, save_config
from ui.shared_folders import folder_browser
from ui.shared_state import sync_widget
from workbench.config.schema import FIELDS, field_type, from_dict
from workbench.config.topics import field_label, widget_label
from workbench.config.validate import unrunnable
from workbench.errors import UserError
from workbench.models.hub import is_repo_id
from workbench.planning.schedules import warmup_steps_for

ERRORS = "params_errors"     # field -> message of a value that could not be saved
PERCENT, STEPS = "% of steps", "steps"     # the two units lr_warmup_steps is edited in
FINDING_LEVELS = {"error": st.error, "warning": st.warning, "note": st.info}
# characters of label + key that fit on one line beside a checkbox in a third of a 1400 px page;
# Streamlit cuts a longer checkbox label short with "…" (an input's label wraps instead)
CHECKBOX_LINE = 36


def field_kind(f: Field) -> str:
    """bool, choice, int, float, list or text: the config's field type, choices first."""
    if f.metadata.get("choices"):
        return "choice"
    kind, _ = field_type(f.name)
    return "text" if kind == "str" else kind


def optional(f: Field) -> bool:
    return "None" in str(f.type)


def to_widget(f: Field, value: Any) -> Any:
    """A config value as its widget holds it: floats and lists as text (a float widget's step and
    display don't fit both 1e-4 and 0.5), the rest as they are."""
    kind = field_kind(f)
    if kind == "float":
        return "" if value is None else repr(value)
    if kind == "list":
        return " ".join(value)
    return value


def commit(name: str, raw: Any) -> None:
    """Save field `name` = `raw` (a widget value) to the config on disk, coerced like a TOML
    value; on a coercion error, or a value that cannot run, keep the message for the field and
    save nothing."""
    errors = st.session_state.setdefault(ERRORS, {})
    cfg = current_config()
    try:
        new, _ = from_dict({**cfg.to_dict(), name: raw})
    except UserError as exc:
        errors[name] = str(exc)
        return
    problem = unrunnable(new, name)
    if problem:
        errors[name] = problem
        return
    errors.pop(name, None)
    save_config(new)


def _on_change(name: str, key: str) -> None:
    commit(name, st.session_state[key])


def field_widget(f: Field, cfg) -> None:
    key = f"param_{f.name}"
    sync_widget(key, to_widget(f, getattr(cfg, f.name)))
    label = widget_label(f.name)        # the kohya_ss words, with the sd-scripts key beside them
    common = dict(key=key, help=f.metadata["help"], on_change=_on_change, args=(f.name, key))
    kind = field_kind(f)
    if kind == "bool":
        st.checkbox(checkbox_label(f.name), **common)
    elif kind == "choice":
        choices = list(f.metadata["choices"])
        value = st.session_state[key]
        st.selectbox(label, choices if value in choices else choices + [value], **common)
    elif kind == "int":
        st.number_input(label, step=1, placeholder="empty" if optional(f) else None, **common)
    else:
        st.text_input(label, placeholder="empty" if optional(f) else "", **common)
    _path_note(f, getattr(cfg, f.name))


def checkbox_label(name: str) -> str:
    """A checkbox's label: as widget_label, with the key on a line of its own (a Markdown hard
    break) where both would not fit on one, so the key is never cut off."""
    label = field_label(name)
    if label != name and len(label) + len(name) > CHECKBOX_LINE:
        return f"{label}  \n`{name}`"
    return widget_label(name)


# folders the run writes into: the trainer creates them, so a missing one is news, not a problem
CREATED_BY_THE_RUN = ("output_dir", "logging_dir")


def _path_note(f: Field, value: str) -> None:
    kind = f.metadata.get("path")
    if not kind or not value:
        return
    if not Path(value).expanduser().exists():
        if f.name == "pretrained_model_name_or_path" and is_repo_id(value):
            st.caption("a Hugging Face repo id: whether it is cached is said above the tabs")
        elif f.name in CREATED_BY_THE_RUN:
            st.caption(f"`{value}` does not exist yet: the run creates it")
        else:
            st.caption(f":orange[not found: `{value}`]")
    if kind == "dir":
        folder_browser(f.name, value if Path(value).expanduser().is_dir() else "")


def field_error(name: str) -> str | None:
    return st.session_state.get(ERRORS, {}).get(name)


def lr_warmup_widget(cfg, total_steps: int | None) -> None:
    """lr_warmup_steps as "% of steps" (saved as a ratio below 1, as sd-scripts reads it) or as
    steps. The unit follows the value on disk; switching it converts the value with the plan's
    total (0 when there is no plan yet)."""
    value = cfg.lr_warmup_steps
    as_ratio = isinstance(value, float) and 0 < value < 1
    mode_key = "param_lr_warmup_mode"
    if value and (mode_key not in st.session_state or (st.session_state[mode_key] == PERCENT) != as_ratio):
        st.session_state[mode_key] = PERCENT if as_ratio else STEPS
    mode = st.radio("LR warmup as", [PERCENT, STEPS], key=mode_key, horizontal=True,
                    on_change=_warmup_unit_changed, args=(mode_key, total_steps))
    key = f"param_lr_warmup_{'pct' if mode == PERCENT else 'steps'}"
    sync_widget(key, round(value * 100, 4) if as_ratio else 0.0 if mode == PERCENT else int(value))
    help = FIELDS["lr_warmup_steps"].metadata["help"]
    if mode == PERCENT:
        st.number_input("LR warmup (% of total steps) `lr_warmup_steps`", min_value=0.0, max_value=99.0, step=1.0,
                        key=key, help=help, on_change=_warmup_changed, args=(key, True))
    else:
        st.number_input("LR warmup (steps) `lr_warmup_steps`", min_value=0, step=1, key=key, help=help,
                        on_change=_warmup_changed, args=(key, False))


def _warmup_changed(key: str, percent: bool) -> None:
    raw = st.session_state[key]
    commit("lr_warmup_steps", float(raw) / 100 if percent else int(raw))


def _warmup_unit_changed(mode_key: str, total_steps: int | None) -> None:
    value = current_config().lr_warmup_steps
    if st.session_state[mode_key] == STEPS and isinstance(value, float) and 0 < value < 1:
        commit("lr_warmup_steps", warmup_steps_for(value, total_steps) if total_steps else 0)
    elif st.session_state[mode_key] == PERCENT and isinstance(value, int) and value > 0:
        commit("lr_warmup_steps", min(0.99, value / total_steps) if total_steps else 0.0)


def show_findings(findings: list, name: str | None = None) -> None:
    """Validation findings (and a value that could not be saved) right under their field."""
    unsaved = field_error(name) if name else None
    if unsaved:
        st.error(f"not saved: {unsaved}")
    for finding in findings:
        FINDING_LEVELS.get(finding.level, st.info)(finding.line())
