"""A Hugging Face repo id as the base model: resolved from a cache folder in the hub's own layout
(filled with the demo's tiny model, offline), or planned and downloaded from a local fake Hub over
real HTTP (tests/fake_hub.py) — never from the internet. The CLI and the trainer run in their own
processes with HF_HUB_CACHE / HF_ENDPOINT / HF_HUB_OFFLINE set, as a user's shell would."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_hub import FakeHub
from tests.hub_cache import fill_hub_cache
from workbench.models.demo import build_demo
from workbench.models.hub import choose_files, is_repo_id

ROOT = Path(__file__).resolve().parents[1]
REPO = "acme/tiny-sd1"

# runwayml/stable-diffusion-v1-5's files (its tree, 2024): what training needs is a fraction
SD15_FILES = [
    ".gitattributes", "README.md", "feature_extractor/preprocessor_config.json", "model_index.json",
    "safety_checker/config.json", "safety_checker/model.safetensors", "safety_checker/pytorch_model.bin",
    "scheduler/scheduler_config.json", "text_encoder/config.json", "text_encoder/model.fp16.safetensors",
    "text_encoder/model.safetensors", "text_encoder/pytorch_model.bin", "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
    "unet/config.json", "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.non_ema.bin", "unet/diffusion_pytorch_model.safetensors",
    "v1-5-pruned-emaonly.ckpt", "v1-5-pruned-emaonly.safetensors", "v1-5-pruned.ckpt", "vae/config.json",
    "vae/diffusion_pytorch_model.bin", "vae/diffusion_pytorch_model.safetensors"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo(tmp_path_factory.getbasetemp() / "demo")


def hub_env(cache: Path, endpoint: str | None = None, home: Path | None = None) -> dict:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HOME", None)
    if endpoint:
        env["HF_ENDPOINT"] = endpoint
        env.pop("HF_HUB_OFFLINE", None)
    else:
        env["HF_HUB_OFFLINE"] = "1"           # a cached id must not need the network
    if home:
        env["WORKBENCH_HOME"] = str(home)
    return env


def cli(env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def repo_config(tmp_path: Path, demo, model: str, **values) -> Path:
    from workbench.config.schema import load_toml, save_toml
    cfg, _ = load_toml(demo.config)
    path = tmp_path / "repo.toml"
    save_toml(cfg.replace(pretrained_model_name_or_path=model, output_dir=str(tmp_path / "out"), **values), path)
    return path


# ---------------------------------------------------------------- pure rules

def test_a_repo_id_is_owner_slash_name_and_not_a_local_path(tmp_path, monkeypatch):
    assert is_repo_id("stabilityai/stable-diffusion-xl-base-1.0")
    assert not is_repo_id("model.safetensors") and not is_repo_id("/models/sd15") and not is_repo_id("a/b/c")
    assert not is_repo_id("models/x.safetensors") and not is_repo_id("")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "sd15").mkdir(parents=True)
    assert not is_repo_id("models/sd15")        # a folder of that name here wins, as sd-scripts' exists() check


def test_only_the_files_training_needs_are_chosen():
    chosen = choose_files(SD15_FILES)
    assert sorted(chosen) == sorted([
        "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
        "text_encoder/model.safetensors", "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json", "tokenizer/vocab.json", "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.safetensors"])


def test_sharded_or_bin_only_weights_are_taken_whole():
    names = ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors.index.json",
             "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
             "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
             "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors", "vae/diffusion_pytorch_model.bin"]
    chosen = choose_files(names)
    assert [n for n in chosen if n.startswith("unet/diffusion")] == names[2:5]
    assert "vae/diffusion_pytorch_model.bin" in chosen


# ---------------------------------------------------------------- from the cache, offline

def test_check_says_a_cached_repo_id_is_cached_and_its_family_offline(tmp_path, demo):
    snapshot = fill_hub_cache(tmp_path / "hf", "acme/tiny-sdxl", demo.sdxl_model)
    config = repo_config(tmp_path, demo, "acme/tiny-sdxl", sdxl=True)
    done = cli(hub_env(tmp_path / "hf", home=tmp_path / "home"), "check", config, "--json")
    findings = json.loads(done.stdout)
    model = [f for f in findings if f["field"] == "pretrained_model_name_or_path"]
    assert [f["level"] for f in model] == ["note"], findings
    assert "SDXL" in model[0]["message"] and "in the Hugging Face cache" in model[0]["message"]
    assert str(snapshot) in model[0]["message"]


def test_a_cached_id_with_the_wrong_flags_is_refused_like_a_folder(tmp_path, demo):
    fill_hub_cache(tmp_path / "hf", "acme/tiny-sdxl", demo.sdxl_model)
    config = repo_config(tmp_path, demo, "acme/tiny-sdxl")            # sdxl = false
    done = cli(hub_env(tmp_path / "hf", home=tmp_path / "home"), "check", config)
    assert done.returncode == 1
    assert "is an SDXL model but the config says SD 1.x; set sdxl = true" in done.stdout


def test_a_partly_cached_id_offline_is_refused_in_one_line_naming_it(tmp_path, demo):
    fill_hub_cache(tmp_path / "hf", REPO, demo.sd1_model, skip=("unet/diffusion",))
    config = repo_config(tmp_path, demo, REPO)
    done = cli(hub_env(tmp_path / "hf", home=tmp_path / "home"), "check", config)
    assert done.returncode == 1
    line = next(line for line in done.stdout.splitlines() if REPO in line)
    assert line.startswith("error: pretrained_model_name_or_path") and "Hub cannot be reached" in line


# ---------------------------------------------------------------- from a (fake, local) Hub

@pytest.fixture
def remote(tmp_path, demo):
    """The demo SD1 model as a Hub repo, with what a real repo has beside it: a .bin copy of the
    UNet, an fp16 variant and a top-level single-file checkpoint (none of which training needs)."""
    folder = tmp_path / "remote"
    shutil.copytree(demo.sd1_model, folder)
    unet = folder / "unet" / "diffusion_pytorch_model.safetensors"
    shutil.copyfile(unet, folder / "unet" / "diffusion_pytorch_model.bin")
    shutil.copyfile(unet, folder / "unet" / "diffusion_pytorch_model.fp16.safetensors")
    shutil.copyfile(unet, folder / "v1-5-pruned.safetensors")
    with FakeHub({REPO: folder}) as hub:
        yield hub


def test_check_says_what_will_download_and_the_family(tmp_path, demo, remote):
    config = repo_config(tmp_path, demo, REPO)
    done = cli(hub_env(tmp_path / "hf", remote.url, tmp_path / "home"), "check", config, "--json")
    model = [f for f in json.loads(done.stdout) if f["field"] == "pretrained_model_name_or_path"]
    assert len(model) == 1 and model[0]["level"] == "note"
    need = sum((demo.sd1_model / p).stat().st_size for p in choose_files(
        [q.relative_to(demo.sd1_model).as_posix() for q in demo.sd1_model.rglob("*") if q.is_file()])
        if not p.endswith(".json"))
    assert "SD 1.x, will download" in model[0]["message"] and f"about {need / 1e6:.1f} MB" in model[0]["message"]
    # only the small JSON configs were fetched to tell the family; no weights
    assert remote.served and all(p.endswith(".json") for p in remote.served)


def test_an_unknown_id_is_refused_in_one_line_naming_it(tmp_path, demo, remote):
    config = repo_config(tmp_path, demo, "acme/no-such-model")
    env = hub_env(tmp_path / "hf", remote.url, tmp_path / "home")
    done = cli(env, "check", config)
    lines = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(lines) == 1 and "acme/no-such-model" in lines[0]
    assert "no such model on the Hugging Face Hub" in lines[0]
    trained = cli(env, "train", config, "--run-dir", tmp_path / "run")
    assert trained.returncode == 1 and "Traceback" not in trained.stderr
    assert "acme/no-such-model: no such model on the Hugging Face Hub" in trained.stderr


@pytest.mark.slow
def test_train_downloads_only_what_it_needs_once_with_progress_then_trains_offline(tmp_path, demo, remote):
    config = repo_config(tmp_path, demo, REPO, max_train_epochs=1, save_every_n_epochs=None,
                         sample_every_n_epochs=1)
    env = hub_env(tmp_path / "hf", remote.url, tmp_path / "home")
    done = cli(env, "train", config, "--run-dir", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    assert "downloading the base model [" in done.stderr
    served = sorted(p.removeprefix(f"{REPO}/") for p in remote.served)
    assert "unet/diffusion_pytorch_model.safetensors" in served
    assert not [p for p in served if p.endswith(".bin") or "fp16" in p or "/" not in p and p != "model_index.json"]
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    downloads = [e for e in events if e["event"] == "download"]
    assert downloads and downloads[-1]["done"] == downloads[-1]["total"] > 0
    log = (tmp_path / "run" / "trainer.log").read_text()
    snapshot = next((tmp_path / "hf" / "models--acme--tiny-sd1" / "snapshots").iterdir())
    assert f"model: {snapshot} (SD 1.x, diffusers)" in log       # the trainer loads the snapshot folder
    # trainer.log opens with the run, not library noise (bitsandbytes' kernel notice, diffusers'
    # FutureWarning about the samplers' steps_offset)
    assert [e for e in events if e["event"] == "sample"]          # the samplers ran
    assert "kernels-community" not in log and "FutureWarning" not in log
    # once: a second run finds it in the cache and needs no Hub at all
    remote.served.clear()
    again = cli(hub_env(tmp_path / "hf", home=tmp_path / "home"), "train",
                repo_config(tmp_path, demo, REPO, max_train_epochs=1, save_every_n_epochs=None,
                            sample_every_n_epochs=None, output_name="second"), "--run-dir", tmp_path / "run2")
    assert again.returncode == 0, again.stderr
    assert remote.served == [] and "downloading" not in again.stderr
