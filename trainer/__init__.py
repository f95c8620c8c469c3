"""The training subprocess: `python -m trainer RUN_DIR` (or under `accelerate launch`)."""
