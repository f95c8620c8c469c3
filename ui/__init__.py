"""Streamlit helpers shared by app.py and app_pages/ (this package may import streamlit; workbench/ may not)."""
