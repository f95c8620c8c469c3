"""Parameters: every option of the config, grouped like the kohya_ss LoRA tab, each with its help
and its validation findings beside it; the model family from the checkpoint; total steps live
with their breakdown; the LR schedule chart; config files in and out. Every edit is saved to the
workspace's current.toml at once, so a refresh keeps it."""
import streamlit as st

from ui.common import setup_page
from ui.params_fields import field_widget, lr_warmup_widget, show_findings
from ui.params_io import kohya_panel, toml_panel
from ui.params_state import show_flash
from ui.params_summary import lr_chart, model_panel, steps_panel
from workbench.config import FIELDS, GROUPS, fields_in_group
from workbench.validate import validate

COLUMNS = 3

cfg = setup_page("Parameters")
st.title("Parameters")
show_flash()

model_panel(cfg)
plan = steps_panel(cfg)
if plan is not None:
    lr_chart(cfg, plan)

findings = validate(cfg)
for finding in findings:
    if finding.field not in FIELDS:
        show_findings([finding])

for tab, group in zip(st.tabs(list(GROUPS)), GROUPS):
    with tab:
        columns = st.columns(COLUMNS)
        for i, f in enumerate(fields_in_group(group)):
            with columns[i % COLUMNS]:
                if f.name == "lr_warmup_steps":
                    lr_warmup_widget(cfg, plan.total_steps if plan is not None else None)
                else:
                    field_widget(f, cfg)
                show_findings([x for x in findings if x.field == f.name], f.name)

st.subheader("Config files")
toml, kohya = st.columns(2)
with toml:
    toml_panel(cfg)
with kohya:
    kohya_panel(cfg)
