"""The offline demo: what `workbench demo DIR` builds, that diffusers and transformers load it as
the real thing, that its configs are valid and plan several buckets, and that building again
keeps what exists."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workbench.config.validate import errors, validate
from workbench.models.demo import RANDOM_WEIGHTS_NOTE, TRIGGER, build_demo
from workbench.models.modelinfo import model_info
from workbench.planning.plan import make_plan

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A fresh build (not the session's shared one): this file checks what a first build makes."""
    return build_demo(tmp_path_factory.mktemp("fresh") / "demo")


def test_a_first_build_makes_every_part(demo):
    assert demo.built == ["README.txt", "models/tiny-sd1", "models/tiny-sdxl", "dataset", "prompts.txt",
                          "demo.toml", "demo-sdxl.toml"]
    assert "RANDOM weights" in (demo.root / "README.txt").read_text()
    assert (demo.sd1_model / "WORKBENCH_DEMO.txt").read_text().strip() == RANDOM_WEIGHTS_NOTE + "."
    assert not [p for p in demo.root.rglob("*") if ".tmp-" in p.name]


def test_building_again_keeps_what_exists_and_rebuilds_only_what_is_missing(demo):
    model_file = next((demo.sd1_model / "unet").glob("*.safetensors"))
    stamp = model_file.stat().st_mtime_ns
    assert build_demo(demo.root).built == []
    demo.prompts.unlink()
    demo.config.unlink()
    assert build_demo(demo.root).built == ["prompts.txt", "demo.toml"]
    assert model_file.stat().st_mtime_ns == stamp


def test_the_cli_says_the_weights_are_random(demo):
    done = subprocess.run([sys.executable, "-m", "workbench", "demo", str(demo.root)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "already complete" in done.stdout
    assert RANDOM_WEIGHTS_NOTE in done.stdout and str(demo.config) in done.stdout


def test_the_tokenizer_is_a_byte_level_bpe_clip_loads(demo):
    from transformers import CLIPTokenizer
    folder = demo.sd1_model / "tokenizer"
    assert {"vocab.json", "merges.txt"} <= {p.name for p in folder.iterdir()}
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    ids = tokenizer(f"{TRIGGER}, circle").input_ids
    assert tokenizer.convert_ids_to_tokens(ids) == ["<|startoftext|>", f"{TRIGGER}</w>", ",</w>", "circle</w>",
                                                    "<|endoftext|>"]
    assert tokenizer.unk_token_id not in tokenizer("naïve 日本").input_ids[1:-1]     # any byte has a token
    assert tokenizer.model_max_length == 77


def test_diffusers_loads_both_models_with_real_shapes(demo):
    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    sd1 = StableDiffusionPipeline.from_pretrained(demo.sd1_model)
    with torch.no_grad():
        latents = sd1.vae.encode(torch.zeros(1, 3, 96, 128)).latent_dist.mean
    assert tuple(latents.shape) == (1, 4, 12, 16)                  # 1/8 of the image, as in SD
    assert list(sd1.unet.config.block_out_channels) == [32, 64] and sd1.unet.config.cross_attention_dim == 32
    image = sd1(f"{TRIGGER}, circle", num_inference_steps=2, height=64, width=64, output_type="np").images[0]
    assert image.shape == (64, 64, 3)
    xl = StableDiffusionXLPipeline.from_pretrained(demo.sdxl_model)
    assert xl.unet.config.addition_embed_type == "text_time"
    assert type(xl.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    assert xl.vae.config.scaling_factor == 0.13025
    assert (model_info(demo.sd1_model).family, model_info(demo.sdxl_model).family) == ("sd1", "sdxl")


def test_the_configs_are_valid_and_plan_several_buckets(demo):
    from workbench.config.schema import load_toml
    for path, sdxl in ((demo.config, False), (demo.config_sdxl, True)):
        cfg, unknown = load_toml(path)
        assert unknown == [] and cfg.sdxl is sdxl
        assert errors(validate(cfg, require_paths=True)) == []
        assert RANDOM_WEIGHTS_NOTE == cfg.training_comment
        plan = make_plan(cfg)
        assert len(plan.buckets) >= 3 and plan.num_reg_images > 0
        assert 20 <= plan.total_steps <= 80
    images = list(demo.train_dir.rglob("*.png"))
    assert len(images) + len(list(demo.reg_dir.rglob("*.png"))) >= 24
    captions = [p.with_suffix(".txt").read_text() for p in images]
    assert all(c.startswith(f"{TRIGGER}, ") for c in captions)


def test_the_demo_passes_its_own_preflight_without_errors_or_duplicates(demo):
    """A newcomer's first `workbench check` on the demo must not flag the demo itself."""
    from workbench.config.schema import load_toml
    from workbench.runs.preflight import run_checks
    cfg, _ = load_toml(demo.config)
    findings = run_checks(cfg, cuda=False)
    assert [f.line() for f in findings if f.level == "error"] == []
    assert not [f for f in findings if "same image" in f.message]
