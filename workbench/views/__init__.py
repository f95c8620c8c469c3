"""Presenters: what a page shows, computed from workbench's data as plain tables and series (training
view, sample grid, dataset tables, LR chart data, step breakdown), so the pages only draw them.
Nothing here imports streamlit."""
