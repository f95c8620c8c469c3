"""LoRA Workbench — `streamlit run app.py`. The pages are listed here (st.navigation) so the
sidebar's first entry reads "Home", not the file name "app"; each keeps its file and its URL
(/Dataset, /Parameters, /Training, /Inspect)."""
import streamlit as st

PAGES = (      # file, title in the sidebar, URL path ("" for the default page at /)
    ("home.py", "Home", ""),
    ("pages/1_Dataset.py", "Dataset", "Dataset"),
    ("pages/2_Parameters.py", "Parameters", "Parameters"),
    ("pages/3_Training.py", "Training", "Training"),
    ("pages/4_Inspect.py", "Inspect", "Inspect"),
)

st.navigation([st.Page(path, title=title, url_path=url or None, default=not url)
               for path, title, url in PAGES]).run()
