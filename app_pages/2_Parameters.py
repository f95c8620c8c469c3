"""Parameters: every option of the config, by topic like the kohya_ss LoRA tab, related fields
side by side in sections, each under its kohya_ss label with its sd-scripts key, its help and its
validation findings beside it; the model family from the checkpoint; total steps live
with their breakdown; the LR schedule chart; config files in and out. Every edit is saved to the
workspace's current.toml at once, so a refresh keeps it."""
import streamlit as st

from ui.params_fields import show_findings
from ui.params_io import import_report, kohya_panel, toml_panel
from ui.params_model_pick import model_pick_panel
from ui.params_summary import lr_chart, model_panel, steps_panel
from ui.params_topic import topic_fields
from ui.shared_page import setup_page
from ui.shared_state import show_flash
from workbench.config.schema import FIELDS, GROUPS
from workbench.config.topics import where
from workbench.config.validate import validate

cfg = setup_page("Parameters")
st.title("Parameters")
show_flash()

# one container above the tabs: whatever it holds (a chart, or a warning instead), the tabs stay at
# the same place in the page, so the browser never remounts them and the open tab stays open
with st.container():
    model_panel(cfg)
    model_pick_panel(cfg)
    plan = steps_panel(cfg)
    if plan is not None:
        lr_chart(cfg, plan)
    findings = validate(cfg)
    for finding in findings:
        if finding.field not in FIELDS:
            show_findings([finding])
    # each finding sits beside its field, in its tab: say which tabs have one
    flagged = [f for f in findings if f.field in FIELDS and f.level in ("error", "warning")]
    if flagged:
        st.caption("To look at: " + ", ".join(f"{where(f.field)} `{f.field}` ({f.level})" for f in flagged))

# the open tab is in the URL (?group=): a refresh or a link opens the same topic. Only the open
# tab is drawn: its widgets are made fresh when it opens (widgets of a hidden tab shown by the
# rerun that opens it can come up blank in the browser), and a rerun draws only its fields
for tab, topic in zip(st.tabs(list(GROUPS), key="group", bind="query-params"), GROUPS):
    if not tab.open:
        continue
    with tab:
        topic_fields(cfg, topic, plan, findings)

st.subheader("Config files")
toml, kohya = st.columns(2)
with toml:
    toml_panel(cfg)
with kohya:
    kohya_panel(cfg)
import_report()
