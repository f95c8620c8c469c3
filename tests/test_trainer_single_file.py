"""Single-file checkpoints (the original Stable Diffusion layout A1111 and ComfyUI use) load offline
through diffusers' from_single_file with a local config folder, and train. The checkpoint is the
demo's tiny SD1 model written out in the original layout by the converter below (the inverse of
what diffusers does when it loads one)."""
from __future__ import annotations

import hashlib
import re
import shutil

import pytest
import torch

from tests.kohya_naming import RESNET_NAMES, unet_prefixes
from workbench.config.schema import load_toml
from workbench.lora.header import metadata_of, read_header
from workbench.models.demo import build_demo
from workbench.runs import registry as runs

pytestmark = pytest.mark.slow
VAE_ATTENTION_NAMES = (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."),
                       ("to_out.0.", "proj_out."))


def original_unet(state: dict, config: dict) -> dict:
    prefixes = unet_prefixes(config)
    out = {}
    for key, value in state.items():
        new = key
        if "resnets" in key:
            for ours, theirs in RESNET_NAMES:
                new = new.replace(ours, theirs)
        prefix = next(p for p in prefixes if new.startswith(p[0]))
        out["model.diffusion_model." + prefix[1] + new[len(prefix[0]):]] = value
    return out


def original_vae(state: dict, config: dict) -> dict:
    levels = len(config["block_out_channels"])
    out = {}
    for key, value in state.items():
        new = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", new)
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.(resnets|upsamplers\.0)\.",       # up levels count down
                     lambda m: f"decoder.up.{levels - 1 - int(m[1])}.{'block' if m[2] == 'resnets' else 'upsample'}.",
                     new)
        new = re.sub(r"mid_block\.resnets\.(\d+)\.", lambda m: f"mid.block_{int(m[1]) + 1}.", new)
        if "mid_block.attentions.0." in new:
            new = new.replace("mid_block.attentions.0.", "mid.attn_1.")
            for ours, theirs in VAE_ATTENTION_NAMES:
                new = new.replace(ours, theirs)
            if value.dim() == 2:
                value = value[:, :, None, None]         # the original attention uses 1x1 convolutions
        out["first_stage_model." + new] = value
    return out


def original_text_encoder(state: dict) -> dict:
    return {"cond_stage_model.transformer." + (k if k.startswith("text_model.") else f"text_model.{k}"): v
            for k, v in state.items()}


@pytest.fixture(scope="module")
def single_file(tmp_path_factory):
    """(checkpoint, config folder holding only the tiny model's JSON configs, the demo)."""
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file
    base = tmp_path_factory.mktemp("single")
    demo = build_demo(tmp_path_factory.getbasetemp() / "demo")
    pipe = StableDiffusionPipeline.from_pretrained(demo.sd1_model)
    tensors = {**original_unet(pipe.unet.state_dict(), dict(pipe.unet.config)),
               **original_vae(pipe.vae.state_dict(), dict(pipe.vae.config)),
               **original_text_encoder(pipe.text_encoder.state_dict())}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(base / "tiny-sd1.safetensors"))
    configs = base / "configs" / "sd15"
    for json_file in demo.sd1_model.rglob("*.json"):
        if json_file.parent.name != "tokenizer":
            target = configs / json_file.relative_to(demo.sd1_model)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(json_file, target)
    return base / "tiny-sd1.safetensors", base / "configs", demo


def test_a_single_file_checkpoint_loads_offline_and_trains(single_file, tmp_path, monkeypatch):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTokenizer

    from trainer import models
    from trainer.recipe import run
    checkpoint, configs, demo = single_file
    monkeypatch.setattr(models, "CONFIG_DIR", configs)
    demo_tokenizer = CLIPTokenizer.from_pretrained(demo.sd1_model / "tokenizer")     # no CLIP vocabulary offline
    monkeypatch.setattr(models, "clip_tokenizer", lambda pad_token: demo_tokenizer)
    loaded = models.load_models(load_toml(demo.config)[0].replace(pretrained_model_name_or_path=str(checkpoint)))
    reference = UNet2DConditionModel.from_pretrained(demo.sd1_model, subfolder="unet").state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in loaded.unet.state_dict().items())
    assert loaded.info.layout == "single_file" and loaded.info.family == "sd1"

    cfg, _ = load_toml(demo.config)
    cfg = cfg.replace(pretrained_model_name_or_path=str(checkpoint), output_dir=str(tmp_path / "out"),
                      max_train_epochs=None, max_train_steps=2, sample_every_n_epochs=None)
    runs.create_run(cfg, tmp_path / "run")
    assert run(tmp_path / "run") == 0, runs.read_status(tmp_path / "run").get("error")
    meta = metadata_of(read_header(tmp_path / "out" / "demo-lora.safetensors")[1])
    data = checkpoint.read_bytes()
    assert meta["ss_sd_model_name"] == "tiny-sd1.safetensors"
    assert meta["ss_new_sd_model_hash"] == hashlib.sha256(data).hexdigest()
    assert meta["ss_sd_model_hash"] == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]
