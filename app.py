"""LoRA Workbench — `streamlit run app.py`. The pages are listed here (st.navigation) so the
sidebar's first entry reads "Home", not the file name "app"; each keeps its file and its URL
(/Dataset, /Parameters, /Training, /Inspect). The page files live in app_pages/, not pages/:
Streamlit treats a pages/ folder as a page list of its own, and a fresh server opened straight
at /Training ran that page from it without this file (the sidebar then read "app")."""
import streamlit as st

PAGES = (      # file, title in the sidebar, URL path ("" for the default page at /)
    ("home.py", "Home", ""),
    ("app_pages/1_Dataset.py", "Dataset", "Dataset"),
    ("app_pages/2_Parameters.py", "Parameters", "Parameters"),
    ("app_pages/3_Training.py", "Training", "Training"),
    ("app_pages/4_Inspect.py", "Inspect", "Inspect"),
)

st.navigation([st.Page(path, title=title, url_path=url or None, default=not url)
               for path, title, url in PAGES]).run()
