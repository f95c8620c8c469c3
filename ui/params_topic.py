"""One topic of the Parameters page: its sections side by side, three to a row, each a column of
related fields under the section's name, every field with its findings right under it."""
from __future__ import annotations

import streamlit as st

from ui.params_fields import field_widget, lr_warmup_widget, show_findings
from workbench.config.topics import sections_of

COLUMNS = 3     # sections per row; a topic with fewer leaves the rest empty, so widths stay the same


def topic_fields(cfg, topic: str, plan, findings: list) -> None:
    """Draw `topic`'s sections; `plan` (or None) gives lr_warmup_steps its total steps."""
    sections = sections_of(topic)
    for row in range(0, len(sections), COLUMNS):
        for column, (section, fields) in zip(st.columns(COLUMNS), sections[row:row + COLUMNS]):
            with column:
                st.markdown(f"**{section}**")
                for f in fields:
                    _field(cfg, f, plan, findings)


def _field(cfg, f, plan, findings: list) -> None:
    if f.name == "lr_warmup_steps":
        lr_warmup_widget(cfg, plan.total_steps if plan is not None else None)
    else:
        field_widget(f, cfg)
    show_findings([x for x in findings if x.field == f.name], f.name)
