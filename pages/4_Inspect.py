"""Inspect: look inside a LoRA .safetensors — metadata decoded, structure, hash check — compare
two, and load the settings one was trained with into Parameters. Reads headers only (the hash
streams the file); a bad file shows the same one-line sentence as `workbench inspect`."""
import streamlit as st

from ui.common import setup_page
from ui.inspect_compare import comparison_section
from ui.inspect_pick import pick_lora
from ui.inspect_settings import use_settings_section
from ui.inspect_structure import structure_section
from ui.inspect_view import (dataset_section, decoded, hash_section, raw_metadata, summary, tags_section,
                             training_section)
from workbench.errors import UserError
from workbench.inspect import compare, describe

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
training, data, tags, structure, everything, other = st.tabs(
    ["Training parameters", "Dataset & buckets", "Tags", "Structure", "All metadata", "Compare"])
with training:
    decoded("Training parameters", lambda: training_section(lora))
with data:
    decoded("Dataset folders and buckets", lambda: dataset_section(lora))
with tags:
    decoded("Tag frequency", lambda: tags_section(lora))
with structure:
    structure_section(lora)
with everything:
    raw_metadata(lora)
with other:
    second_path = pick_lora("compare", "Compare with")
    second = inspected(second_path) if second_path else None
    if second is not None:
        comparison_section(compare(lora, second))
