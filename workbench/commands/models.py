"""`workbench models [--add-folder DIR] [--json]`."""
from __future__ import annotations

from workbench.commands._common import print_json
from workbench.models.sources import add_model_folder, quick_pick

DESCRIPTION = """base models to pick from, each with its family: the models recent runs used, the
diffusers repos in the Hugging Face cache (HF_HUB_CACHE / HF_HOME), and the checkpoints in the
A1111 (models/Stable-diffusion) and ComfyUI (models/checkpoints) folders added once with
--add-folder (remembered under WORKBENCH_HOME). Put a value into pretrained_model_name_or_path."""


def add_arguments(parser) -> None:
    parser.add_argument("--add-folder", metavar="DIR", help="remember an A1111/ComfyUI install or a folder of "
                        "checkpoints to look in")
    parser.add_argument("--json", action="store_true", help="print [{value, family, source}]")


def run(args) -> int:
    if args.add_folder:
        print(f"looking in {add_model_folder(args.add_folder)} from now on")
    choices = quick_pick()
    if args.json:
        print_json([{"value": c.value, "family": c.family, "source": c.source} for c in choices])
    elif not choices:
        print("No models found: add a folder with --add-folder, or put a diffusers repo in the Hugging Face cache")
    else:
        print("\n".join(c.label for c in choices))
    return 0
