"""Training: start a run of the current config, watch it live, stop it, open past runs.
Everything shown is rebuilt from the run dirs on disk (workbench.runs.registry), never kept only in the
session, so a refresh, a closed browser or a restarted app shows the same runs."""
import streamlit as st

from ui.shared_page import setup_page
from ui.shared_state import show_flash
from ui.training_history import delete_panel, run_picker, selected_run, tensorboard_panel
from ui.training_live import live_view
from ui.training_queue import queue_panel
from ui.training_samples import compare_panel
from ui.training_start import start_panel
from workbench.runs import queue as run_queue
from workbench.runs import registry as runs

cfg = setup_page("Training")
st.title("Training")
show_flash()
run_queue.advance()        # a trainer killed with SIGKILL could not start the next queued run: the page does
infos = runs.list_runs()
start_panel(cfg)
queue_panel()
st.divider()
selected = selected_run(infos)
live_view(selected, infos)
compare_panel(selected, infos)     # under the run history the live view ends with
run_picker(infos, selected)
delete_panel(selected)
tensorboard_panel()
