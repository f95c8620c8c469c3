"""Quick pick of base models: the Hugging Face cache (hub layout, filled with the demo model),
A1111 / ComfyUI folders pointed at once (real .safetensors headers), recent models; each with
its family. Nothing is downloaded."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import diffusers_stub, write_checkpoint
from tests.hub_cache import fill_hub_cache
from workbench.models import sources as model_sources

ROOT = Path(__file__).resolve().parents[1]
SD1_KEYS = {"model.diffusion_model.input_blocks.0.0.weight": (4, 4), "cond_stage_model.transformer.x": (2,)}
SDXL_KEYS = {"model.diffusion_model.input_blocks.0.0.weight": (4, 4), "conditioner.embedders.1.model.x": (2,)}


@pytest.fixture
def installs(tmp_path):
    a1111 = tmp_path / "stable-diffusion-webui"
    write_checkpoint(a1111 / "models" / "Stable-diffusion" / "sd15.safetensors", SD1_KEYS)
    write_checkpoint(a1111 / "models" / "Stable-diffusion" / "XL" / "sdxl.safetensors", SDXL_KEYS)
    (a1111 / "models" / "Lora").mkdir(parents=True)
    write_checkpoint(a1111 / "models" / "Lora" / "not-a-base.safetensors", SD1_KEYS)   # not under Stable-diffusion
    comfy = tmp_path / "ComfyUI"
    write_checkpoint(comfy / "models" / "checkpoints" / "broken.safetensors", {"x": (1,)})
    return a1111, comfy


def test_a1111_and_comfyui_folders_list_their_checkpoints_with_family(installs):
    a1111, comfy = installs
    model_sources.add_model_folder(str(a1111))
    model_sources.add_model_folder(str(comfy))
    found = {Path(c.value).name: c for c in model_sources.quick_pick()}
    assert set(found) == {"sd15.safetensors", "sdxl.safetensors", "broken.safetensors"}
    assert found["sd15.safetensors"].family == "SD 1.x" and found["sdxl.safetensors"].family == "SDXL"
    assert found["broken.safetensors"].family.startswith("unusable: not a Stable Diffusion checkpoint")
    assert found["sd15.safetensors"].source == str(a1111)


def test_folders_are_remembered_in_the_workspace_and_a_bad_one_refused(installs, workspace):
    model_sources.add_model_folder(str(installs[0]))
    assert model_sources.model_folders() == [str(installs[0])]
    assert (workspace / "model_folders.json").is_file()
    with pytest.raises(model_sources.UserError, match="not a folder"):
        model_sources.add_model_folder(str(installs[0] / "nope"))


def test_recent_models_come_first_newest_first_and_once(tmp_path):
    model = diffusers_stub(tmp_path / "my-model")
    for name in (str(model), "acme/not-cached", str(model)):
        model_sources.remember_recent(name)
    assert model_sources.recent_models() == [str(model), "acme/not-cached"]
    picks = model_sources.quick_pick()
    assert [(c.value, c.source) for c in picks][:2] == [(str(model), "recent"), ("acme/not-cached", "recent")]
    assert picks[0].family == "SD 1.x"
    assert picks[1].family == "not in the Hugging Face cache: downloaded when a run starts"


def test_the_hugging_face_cache_lists_whole_diffusers_repos(tmp_path, workspace):
    from workbench.models.demo import build_demo
    demo = build_demo(tmp_path / "demo")
    cache = tmp_path / "hf"
    fill_hub_cache(cache, "acme/tiny-sdxl", demo.sdxl_model)
    fill_hub_cache(cache, "acme/half", demo.sd1_model, skip=("unet/diffusion",))     # not usable: left out
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "WORKBENCH_HOME": str(workspace)}
    done = subprocess.run([sys.executable, "-m", "workbench", "models"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["acme/tiny-sdxl — SDXL (Hugging Face cache)"]
