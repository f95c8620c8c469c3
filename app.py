"""LoRA Workbench — Streamlit entry file (placeholder until the pages land)."""
import streamlit as st

st.set_page_config(page_title="LoRA Workbench", layout="wide")
st.title("LoRA Workbench")
st.write("Dataset → Parameters → Training → Inspect: the pages are on their way.")
