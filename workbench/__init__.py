"""LoRA Workbench: dataset, plan, schedule, config and inspection library.

Pure Python at import time: torch, diffusers, transformers and streamlit are imported inside the
functions that need them, so the CLI and the app start fast.
"""
__version__ = "0.1.0"
