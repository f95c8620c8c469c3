"""Streamlit helpers shared by app.py and pages/ (this package may import streamlit; workbench/ may not)."""
