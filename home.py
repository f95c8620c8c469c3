"""LoRA Workbench — the Home page: what the workbench is, where its workspace lives, the four
jobs with links. app.py lists it and the pages of app_pages/ (st.navigation)."""
import streamlit as st

from ui.shared_page import on_demo, setup_page
from workbench import workspace
from workbench.runs import registry as runs

cfg = setup_page("Home")
st.title("LoRA Workbench")
st.markdown(
    "Train Stable Diffusion LoRAs (SD 1.x, SD 2.x, SDXL) the way kohya-ss/sd-scripts does, and see "
    "every number before you spend GPU hours on it: buckets, step counts, the learning-rate curve, "
    "and the metadata of the LoRA that comes out.")

# Material icons: Streamlit ships their font; emoji need one the browser may lack (a box instead)
JOBS = (
    ("app_pages/1_Dataset.py", "Dataset", ":material/photo_library:",
     "look at your images, edit captions, see the buckets and preflight findings"),
    ("app_pages/2_Parameters.py", "Parameters", ":material/tune:",
     "every option with its help, total steps with the breakdown, the LR curve"),
    ("app_pages/3_Training.py", "Training", ":material/monitoring:",
     "start a run, watch loss and LR live, stop it, open past runs"),
    ("app_pages/4_Inspect.py", "Inspect", ":material/search:",
     "look inside a LoRA: metadata, structure, hash check, compare two"),
)
for page, label, icon, what in JOBS:
    left, right = st.columns([1, 3])
    left.page_link(page, label=label, icon=icon)
    right.markdown(what)

st.subheader("Workspace")
st.markdown(f"`{workspace.home()}` (set `WORKBENCH_HOME` to move it): the current config "
            f"(`current.toml`), the runs, the thumbnail cache.")
st.markdown(f"Current config: model `{cfg.pretrained_model_name_or_path or '(not set)'}`, "
            f"data `{cfg.train_data_dir or '(not set)'}`, output `{cfg.output_name}` · "
            f"{len(runs.list_runs())} run(s) so far.")
if on_demo(cfg):
    st.info("You are on the **demo**: tiny models with random weights and a generated dataset, so the whole "
            "path — dataset → parameters → training → inspect — runs on a CPU in a few minutes. Training is "
            "real, but the LoRA it makes draws noise. For real work, set your model and folders in Parameters.")
