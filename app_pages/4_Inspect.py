"""Inspect: look inside a LoRA .safetensors — metadata decoded, structure, hash check — compare
two, and load the settings one was trained with into Parameters. Reads headers only (the hash
streams the file); a bad file shows the same one-line sentence as `workbench inspect`."""
import streamlit as st

from ui.inspect_compare import comparison_section
from ui.inspect_pick import pick_lora
from ui.inspect_settings import use_settings_section
from ui.inspect_structure import structure_section
from ui.inspect_view import (
    dataset_section,
    decoded,
    hash_section,
    raw_metadata,
    summary,
    tags_section,
    training_section,
)
from ui.shared_page import setup_page
from workbench.errors import UserError
from workbench.lora.inspect import compare, describe

cfg = setup_page("Inspect")
st.title("Inspect")


def inspected(path):
    try:
        return describe(path)
    except UserError as exc:
        st.error(str(exc))
        return None


path = pick_lora("file", "LoRA")
lora = inspected(path) if path else None
if lora is None:
    if not path:
        st.info("Choose a LoRA above: one your runs saved, a path, or an upload.")
    st.stop()

summary(lora)
hash_section(lora)
use_settings_section(lora, cfg)


def compare_view() -> None:
    second_path = pick_lora("compare", "Compare with")
    second = inspected(second_path) if second_path else None
    if second is not None:
        comparison_section(compare(lora, second))


SECTIONS = {
    "Training parameters": lambda: decoded("Training parameters", lambda: training_section(lora)),
    "Dataset & buckets": lambda: decoded("Dataset folders and buckets", lambda: dataset_section(lora)),
    "Tags": lambda: decoded("Tag frequency", lambda: tags_section(lora)),
    "Structure": lambda: structure_section(lora),
    "All metadata": lambda: raw_metadata(lora),
    "Compare": compare_view,
}
# the open tab is in the URL (?section=), so choosing a file to compare (a rerun) keeps Compare
# open; only the open tab is drawn, its widgets fresh when it opens
for tab, draw in zip(st.tabs(list(SECTIONS), key="section", bind="query-params"), SECTIONS.values()):
    if tab.open:
        with tab:
            draw()
