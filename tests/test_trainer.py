"""The trainer end to end on the demo's tiny real models (no mocks): the run-dir contract, the
files and their metadata, kohya key names, diffusers loading them, SDXL, LyCORIS, resume, SIGTERM
and the failures a user meets. Runs share one demo build; most train a handful of steps."""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kohya_naming import kohya_names
from tests.test_metadata_sd_scripts import DEMO_JOB, RUN_DEPENDENT, WORKBENCH_KEYS
from workbench.config.schema import TrainConfig, from_dict, load_toml
from workbench.lora.header import metadata_of, read_header, tensor_entries
from workbench.models.demo import build_demo
from workbench.planning.plan import make_plan
from workbench.planning.schedules import make_schedule
from workbench.runs import registry as runs

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    return build_demo(tmp_path_factory.getbasetemp() / "demo")


def demo_config(demo, out: Path, sdxl: bool = False, **changes) -> TrainConfig:
    cfg, _ = load_toml(demo.config_sdxl if sdxl else demo.config)
    return cfg.replace(output_dir=str(out), **changes)


def train_in_process(cfg: TrainConfig, run_dir: Path) -> tuple[int, dict, list[dict]]:
    """The real recipe, called in this process (no interpreter start-up per run)."""
    from trainer.recipe import run
    runs.create_run(cfg, run_dir)
    code = run(run_dir)
    return code, runs.read_status(run_dir), runs.read_metrics(run_dir)


def of_kind(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["event"] == kind]


def lora_module_names(path: Path) -> set[str]:
    _, header = read_header(path)
    return {key.split(".")[0] for key in tensor_entries(header)}


# ---------------------------------------------------------------- SD1 through `workbench train`

@pytest.fixture(scope="module")
def sd1_run(demo, tmp_path_factory):
    base = tmp_path_factory.mktemp("sd1")
    cfg = demo_config(demo, base / "out", max_train_epochs=2, sample_every_n_epochs=2)
    config_path = base / "config.toml"
    from workbench.config.schema import save_toml
    save_toml(cfg, config_path)
    env = {**os.environ, "WORKBENCH_HOME": str(base / "home")}
    command = [sys.executable, "-m", "workbench", "train", str(config_path), "--run-dir", str(base / "run")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return {"cfg": cfg, "run": base / "run", "done": done, "plan": make_plan(cfg),
            "events": runs.read_metrics(base / "run"), "status": runs.read_status(base / "run")}


def test_workbench_train_runs_the_plan_and_reports_it(sd1_run):
    done, plan, events, status = sd1_run["done"], sd1_run["plan"], sd1_run["events"], sd1_run["status"]
    assert done.returncode == 0, done.stderr + runs.log_tail(sd1_run["run"])
    assert "finished" in done.stderr and f"{plan.total_steps}/{plan.total_steps}" in done.stderr
    start, end = events[0], events[-1]
    assert start["event"] == "start" and start["total_steps"] == plan.total_steps
    assert (start["epochs"], start["batches_per_epoch"]) == (plan.epochs, plan.batches_per_epoch)
    steps = of_kind(events, "step")
    assert [e["step"] for e in steps] == list(range(1, plan.total_steps + 1))
    assert {e["epoch"] for e in steps} == {1, 2}
    for key in ("loss", "loss_avg", "lr_unet", "lr_te", "s_per_step", "time"):
        assert all(isinstance(e[key], float) for e in steps), key
    assert [e["epoch"] for e in of_kind(events, "epoch")] == [1, 2]
    # the LR of each step is the app's preview of the schedule, step for step
    schedule = make_schedule(sd1_run["cfg"], plan.total_steps)
    assert [e["lr_unet"] for e in steps] == pytest.approx(schedule.unet)
    assert [e["lr_te"] for e in steps] == pytest.approx(schedule.text_encoder)
    assert end == {**end, "event": "end", "status": "finished"} and "error" not in end
    assert status["state"] == "finished" and status["step"] == plan.total_steps
    assert status["pid"] and status["error"] is None and status["started_at"] <= status["updated_at"]


def test_saves_and_samples_have_the_exact_names(sd1_run):
    out, run_dir = Path(sd1_run["cfg"].output_dir), sd1_run["run"]
    saves = of_kind(sd1_run["events"], "save")
    assert [(Path(e["path"]).name, e["epoch"], e["step"]) for e in saves] == [
        ("demo-lora-000001.safetensors", 1, 18), ("demo-lora.safetensors", 2, 36)]
    assert sorted(p.name for p in out.iterdir()) == ["demo-lora-000001.safetensors", "demo-lora.safetensors"]
    assert sd1_run["status"]["outputs"] == [e["path"] for e in saves]
    samples = of_kind(sd1_run["events"], "sample")
    names = [Path(e["path"]).name for e in samples]      # sd-scripts': epoch, prompt, local time, --d seed
    assert [re.sub(r"_\d{14}_", "_<time>_", n) for n in names] == ["demo-lora_e000002_00_<time>_1.png",
                                                                    "demo-lora_e000002_01_<time>_2.png"]
    assert samples[0]["prompt"].startswith("wbdemo, circle") and samples[0]["step"] == 36
    from PIL import Image
    with Image.open(run_dir / "samples" / names[0]) as image:
        assert image.size == (128, 128)


def test_metadata_matches_the_plan_and_the_hash_verifies(sd1_run):
    cfg, plan = sd1_run["cfg"], sd1_run["plan"]
    path = Path(cfg.output_dir) / "demo-lora.safetensors"
    n, header = read_header(path)
    meta = metadata_of(header)
    assert hashlib.sha256(path.read_bytes()[8 + n:]).hexdigest() == meta["sshs_model_hash"]
    expected = {"ss_num_train_images": "36", "ss_num_reg_images": "6", "ss_num_batches_per_epoch": "18",
                "ss_num_epochs": "2", "ss_epoch": "2", "ss_steps": "36", "ss_max_train_steps": "36",
                "ss_seed": "42", "ss_network_dim": "4", "ss_network_alpha": "2.0", "ss_resolution": "(128, 128)",
                "ss_base_model_version": "sd_v1", "ss_network_module": "networks.lora",
                "ss_optimizer": "torch.optim.adamw.AdamW", "ss_mixed_precision": "no", "ss_v2": "False",
                "modelspec.architecture": "stable-diffusion-v1/lora", "modelspec.prediction_type": "epsilon"}
    assert {k: meta.get(k) for k in expected} == expected
    assert set(meta) == set(DEMO_JOB) | RUN_DEPENDENT | WORKBENCH_KEYS      # the written file: sd-scripts' keys
    buckets = json.loads(meta["ss_bucket_info"])["buckets"]
    assert sorted((tuple(b["resolution"]), b["count"]) for b in buckets.values()) == sorted(plan.buckets.items())
    assert json.loads(meta["ss_tag_frequency"])["2_wbdemo circle"]["wbdemo"] == 12
    assert json.loads(meta["ss_dataset_dirs"]) == {"1_wbdemo square": {"n_repeats": 1, "img_count": 12},
                                                   "2_wbdemo circle": {"n_repeats": 2, "img_count": 12}}
    assert from_dict(json.loads(meta["workbench_config"]))[0] == cfg
    epoch_meta = metadata_of(read_header(Path(cfg.output_dir) / "demo-lora-000001.safetensors")[1])
    assert (epoch_meta["ss_epoch"], epoch_meta["ss_steps"]) == ("1", "18")
    assert epoch_meta["ss_session_id"] == meta["ss_session_id"]


def test_saved_key_names_follow_kohyas_rule(sd1_run, demo):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel
    unet = UNet2DConditionModel.from_pretrained(demo.sd1_model, subfolder="unet")
    encoder = CLIPTextModel.from_pretrained(demo.sd1_model, subfolder="text_encoder")
    names = lora_module_names(Path(sd1_run["cfg"].output_dir) / "demo-lora.safetensors")
    assert names == kohya_names(unet, [encoder])
    assert any(n.startswith("lora_te_text_model_encoder_layers_0_") for n in names)


def unet_output(pipe, cross_width: int, **added):
    import torch
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 16, 16, generator=generator)
    hidden = torch.randn(1, 77, cross_width, generator=generator)
    with torch.no_grad():
        return pipe.unet(sample, torch.tensor([500]), encoder_hidden_states=hidden, **added).sample


def lora_layers(model) -> int:
    return sum(1 for m in model.modules() if hasattr(m, "lora_A") and len(m.lora_A) > 0)


def test_diffusers_loads_the_sd1_lora_and_it_changes_the_unet(sd1_run, demo):
    import torch
    from diffusers import StableDiffusionPipeline
    path = Path(sd1_run["cfg"].output_dir) / "demo-lora.safetensors"
    pipe = StableDiffusionPipeline.from_pretrained(demo.sd1_model, safety_checker=None)
    before = unet_output(pipe, 32)
    pipe.load_lora_weights(str(path))
    names = lora_module_names(path)
    assert lora_layers(pipe.unet) == sum(n.startswith("lora_unet_") for n in names)
    assert lora_layers(pipe.text_encoder) == sum(n.startswith("lora_te_") for n in names)
    assert not torch.allclose(before, unet_output(pipe, 32))


def test_tensorboard_gets_loss_and_lr_scalars(sd1_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    accumulator = EventAccumulator(str(sd1_run["run"] / "tb"))
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    # sd-scripts' tags for a LoRA that trains the text encoder with AdamW (generate_step_logs, epoch logging)
    assert set(tags) == {"loss/current", "loss/average", "loss/epoch_average", "lr/unet", "lr/textencoder",
                         "lr/group1"}
    assert len(accumulator.Scalars("loss/current")) == sd1_run["plan"].total_steps
    epochs = accumulator.Scalars("loss/epoch_average")
    assert [e.step for e in epochs] == list(range(1, sd1_run["plan"].epochs + 1))
    per_epoch = sd1_run["plan"].steps_per_epoch
    last_epoch = [e.value for e in accumulator.Scalars("loss/current")][-per_epoch:]
    assert abs(epochs[-1].value - sum(last_epoch) / per_epoch) < 1e-5
    assert [e.value for e in accumulator.Scalars("lr/group1")] == [e.value for e in accumulator.Scalars("lr/unet")]


# ---------------------------------------------------------------- SDXL, LyCORIS

def test_sdxl_trains_and_diffusers_loads_it(demo, tmp_path):
    import torch
    from diffusers import StableDiffusionXLPipeline
    cfg = demo_config(demo, tmp_path / "out", sdxl=True, max_train_epochs=None, max_train_steps=3,
                      sample_every_n_epochs=None, mixed_precision="bf16")
    code, status, events = train_in_process(cfg, tmp_path / "run")
    assert code == 0 and status["state"] == "finished", status.get("error")
    assert len(of_kind(events, "step")) == 3
    path = tmp_path / "out" / "demo-sdxl-lora.safetensors"
    meta = metadata_of(read_header(path)[1])
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    pipe = StableDiffusionXLPipeline.from_pretrained(demo.sdxl_model)
    assert lora_module_names(path) == kohya_names(pipe.unet, [pipe.text_encoder, pipe.text_encoder_2])
    time_ids = torch.tensor([[128, 128, 0, 0, 128, 128]])
    added = {"added_cond_kwargs": {"text_embeds": torch.ones(1, 32), "time_ids": time_ids}}
    before = unet_output(pipe, 64, **added)
    ours = StableDiffusionXLPipeline.from_pretrained(demo.sdxl_model)      # the file through the trainer's network
    from trainer.network_registry import create_network
    network = create_network(cfg.replace(network_weights=str(path), dim_from_weights=True), ours.unet,
                             [ours.text_encoder, ours.text_encoder_2])
    network.apply_to()
    pipe.load_lora_weights(str(path))
    names = lora_module_names(path)
    # diffusers maps sd-scripts' original SDXL block names onto its UNet: every module lands, and where ours does
    assert lora_layers(pipe.unet) == sum(n.startswith("lora_unet_input_blocks") or n.startswith("lora_unet_middle")
                                         or n.startswith("lora_unet_output_blocks") for n in names)
    assert lora_layers(pipe.text_encoder) > 0 and lora_layers(pipe.text_encoder_2) > 0
    after = unet_output(pipe, 64, **added)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, unet_output(ours, 64, **added), atol=1e-5)


@pytest.mark.parametrize("algo", ["locon", "loha", "lokr"])
def test_lycoris_algorithms_train_and_save(demo, tmp_path, algo):
    cfg = demo_config(demo, tmp_path / "out", network_module="lycoris.kohya", network_args=[f"algo={algo}"],
                      max_train_epochs=None, max_train_steps=2, sample_every_n_epochs=None)
    code, status, events = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    path = tmp_path / "out" / "demo-lora.safetensors"
    meta = metadata_of(read_header(path)[1])
    assert meta["ss_network_module"] == "lycoris.kohya" and json.loads(meta["ss_network_args"]) == {"algo": algo}
    names = lora_module_names(path)
    assert any(n.startswith("lora_unet_") for n in names)
    assert any(n.startswith("lora_te_text_model_encoder_layers_") for n in names)


# ---------------------------------------------------------------- resume, stop

def test_resume_continues_step_count_lr_and_data_order(demo, tmp_path):
    cfg = demo_config(demo, tmp_path / "first", max_train_epochs=2, save_state=True, sample_every_n_epochs=None)
    code, _, first = train_in_process(cfg, tmp_path / "run1")
    assert code == 0
    state = tmp_path / "first" / "demo-lora-000001-state"
    assert state.is_dir() and (tmp_path / "first" / "demo-lora-state").is_dir()
    resumed_cfg = cfg.replace(output_dir=str(tmp_path / "second"), resume=str(state), save_state=False)
    code, status, second = train_in_process(resumed_cfg, tmp_path / "run2")
    assert code == 0, status.get("error")
    before, after = of_kind(first, "step")[18:], of_kind(second, "step")
    assert [e["step"] for e in after] == list(range(19, 37)) and status["step"] == 36
    assert [e["lr_unet"] for e in after] == pytest.approx([e["lr_unet"] for e in before])
    # same batches in the same order with the same noise: the same losses
    assert [e["loss"] for e in after] == pytest.approx([e["loss"] for e in before], rel=1e-4)


def test_sigterm_finishes_the_step_saves_a_stopped_file_and_ends_stopped(demo, tmp_path):
    cfg = demo_config(demo, tmp_path / "out", max_train_epochs=100, sample_every_n_epochs=None)
    run_dir = runs.create_run(cfg, tmp_path / "run")
    proc = runs.launch(run_dir, foreground=True)
    deadline = time.monotonic() + 300
    while len(of_kind(runs.read_metrics(run_dir), "step")) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, runs.log_tail(run_dir)
        time.sleep(0.2)
    assert runs.stop(run_dir)
    assert proc.wait(timeout=120) == 0
    events, status = runs.read_metrics(run_dir), runs.read_status(run_dir)
    last_step = of_kind(events, "step")[-1]["step"]
    stopped = tmp_path / "out" / f"demo-lora-stopped-step{last_step}.safetensors"
    assert stopped.is_file() and status["outputs"] == [str(stopped)]
    assert events[-1] == {**events[-1], "event": "end", "status": "stopped"} and status["state"] == "stopped"
    assert metadata_of(read_header(stopped)[1])["ss_steps"] == str(last_step)


# ---------------------------------------------------------------- failures

def broken_dataset(demo, tmp_path) -> str:
    import shutil
    train = tmp_path / "train"
    shutil.copytree(demo.train_dir, train)
    (train / "1_wbdemo square" / "broken.png").write_bytes(b"this is not a PNG")
    return str(train)


def damaged_model(demo, tmp_path, how: str) -> str:
    """A copy of the demo SD1 folder whose VAE weights are gone or are not safetensors."""
    import shutil
    model = tmp_path / "model"
    shutil.copytree(demo.sd1_model, model)
    weights = model / "vae" / "diffusion_pytorch_model.safetensors"
    weights.unlink() if how == "missing" else weights.write_bytes(b"not safetensors at all")
    return str(model)


FAILURES = {
    "incomplete model folder": (lambda demo, tmp: {"pretrained_model_name_or_path": damaged_model(demo, tmp, "missing")},
                                "incomplete diffusers folder, missing vae/ weights"),
    "corrupt model weights": (lambda demo, tmp: {"pretrained_model_name_or_path": damaged_model(demo, tmp, "corrupt")},
                              "model: cannot load this diffusers model ("),
    "missing model": (lambda demo, tmp: {"pretrained_model_name_or_path": str(tmp / "no-such-model")},
                      "no-such-model: model not found"),
    "wrong family": (lambda demo, tmp: {"pretrained_model_name_or_path": str(demo.sdxl_model)},
                     "is an SDXL model but the config says SD 1.x; set sdxl = true"),
    "unreadable image": (lambda demo, tmp: {"train_data_dir": broken_dataset(demo, tmp)},
                         "broken.png: not a readable image"),
    "nan loss": (lambda demo, tmp: {"learning_rate": 1e30, "max_grad_norm": 0.0},
                 "training diverged; lower learning_rate"),
}


@pytest.mark.parametrize("case", FAILURES)
def test_failures_end_the_run_with_a_clear_error(demo, tmp_path, case):
    changes, message = FAILURES[case]
    cfg = demo_config(demo, tmp_path / "out", max_train_epochs=None, max_train_steps=4, sample_every_n_epochs=None,
                      **changes(demo, tmp_path))
    code, status, events = train_in_process(cfg, tmp_path / "run")
    assert code == 1 and status["state"] == "failed"
    assert message in status["error"] and "\n" not in status["error"]
    assert events[-1] == {**events[-1], "event": "end", "status": "failed", "error": status["error"]}
    assert not (tmp_path / "out" / "demo-lora.safetensors").exists()


def test_existing_output_is_refused_at_start_and_left_alone(demo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "demo-lora.safetensors").write_bytes(b"precious")
    code, status, _ = train_in_process(demo_config(demo, out), tmp_path / "run")
    assert code == 1 and f"{out / 'demo-lora.safetensors'} already exists" in status["error"]
    assert (out / "demo-lora.safetensors").read_bytes() == b"precious"


def test_workbench_train_prints_the_error_and_exits_non_zero(demo, tmp_path):
    from workbench.config.schema import save_toml
    cfg = demo_config(demo, tmp_path / "out", pretrained_model_name_or_path=str(tmp_path / "gone"))
    save_toml(cfg, tmp_path / "config.toml")
    done = subprocess.run([sys.executable, "-m", "workbench", "train", str(tmp_path / "config.toml"),
                           "--run-dir", str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    line, = done.stderr.strip().splitlines()
    assert line.startswith("workbench train: error: not started: ") and "Traceback" not in done.stderr
    assert f"{tmp_path / 'gone'}: model not found; give a diffusers folder or a .safetensors checkpoint" in line
    assert not (tmp_path / "run").exists()


def test_workbench_train_refused_for_existing_outputs_creates_nothing(demo, tmp_path):
    from workbench.config.schema import save_toml
    out = tmp_path / "out"
    out.mkdir()
    (out / "demo-lora.safetensors").write_bytes(b"precious")
    save_toml(demo_config(demo, out), tmp_path / "config.toml")
    home = tmp_path / "home"
    done = subprocess.run([sys.executable, "-m", "workbench", "train", str(tmp_path / "config.toml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "WORKBENCH_HOME": str(home)})
    assert done.returncode == 1 and "would overwrite 1 existing file(s)" in done.stderr
    assert not (home / "runs").exists() or list((home / "runs").iterdir()) == []     # no "failed" run in the history
    assert (out / "demo-lora.safetensors").read_bytes() == b"precious"


# ---------------------------------------------------------------- loop options

def delta_norms(path: Path) -> dict[str, float]:
    """{module: ‖up · down · alpha / rank‖} of a saved .ckpt (tensors only, no metadata)."""
    import torch
    tensors = torch.load(path, weights_only=True)
    norms = {}
    for key, down in tensors.items():
        if key.endswith(".lora_down.weight"):
            name = key.removesuffix(".lora_down.weight")
            up, alpha = tensors[f"{name}.lora_up.weight"].float(), float(tensors[f"{name}.alpha"])
            norms[name] = float((up.flatten(1) @ down.float().flatten(1)).norm() * alpha / down.shape[0])
    return norms


def test_loop_options_accumulate_stop_the_text_encoder_and_cap_norms(demo, tmp_path):
    cfg = demo_config(demo, tmp_path / "out", max_train_epochs=1, gradient_accumulation_steps=4,
                      stop_text_encoder_training=50, scale_weight_norms=0.01, save_model_as="ckpt",
                      mixed_precision="bf16", gradient_checkpointing=True, min_snr_gamma=5.0, noise_offset=0.05,
                      clip_skip=2, shuffle_caption=True, keep_tokens=1, v_parameterization=True,
                      lr_scheduler="constant", sample_every_n_epochs=None)
    plan = make_plan(cfg)
    assert plan.total_steps == 5                    # 18 batches / 4, the short last group still steps
    code, status, events = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    steps = of_kind(events, "step")
    assert [e["step"] for e in steps] == [1, 2, 3, 4, 5]
    assert [e["lr_te"] > 0 for e in steps] == [True, True, True, False, False]      # ceil(5 × 50 %) = 3 steps
    assert all(e["lr_unet"] == cfg.learning_rate for e in steps)
    norms = delta_norms(tmp_path / "out" / "demo-lora.ckpt")
    assert max(norms.values()) <= 0.01 * 1.01
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    board = EventAccumulator(str(tmp_path / "run" / "tb"))
    board.Reload()
    max_key_norms = [e.value for e in board.Scalars("max_norm/max_key_norm")]    # sd-scripts' scale_weight_norms tags
    assert len(max_key_norms) == 5 and max(max_key_norms) <= 0.01 * 1.01
    assert {"max_norm/keys_scaled", "norm/avg_key_norm"} <= set(board.Tags()["scalars"])
    # every module learned (under checkpointing too) but the last text-encoder layer's: clip_skip 2
    # reads the layer before it, so no gradient reaches them
    last_layer = {k for k in norms if k.startswith("lora_te_text_model_encoder_layers_1_")}
    assert {k for k, v in norms.items() if v == 0} == last_layer


def test_latents_cached_on_disk_are_reused_and_uncached_flipped_batches_train(demo, tmp_path):
    import shutil

    import numpy as np
    train = tmp_path / "train"
    shutil.copytree(demo.train_dir, train)
    cfg = demo_config(demo, tmp_path / "out1", train_data_dir=str(train), cache_latents_to_disk=True,
                      max_train_epochs=None, max_train_steps=2, sample_every_n_epochs=None)
    assert train_in_process(cfg, tmp_path / "run1")[0] == 0
    caches = sorted(train.rglob("*.npz"))
    assert len(caches) == len(list(train.rglob("*.png")))
    stamps = [p.stat().st_mtime_ns for p in caches]
    assert train_in_process(cfg.replace(output_dir=str(tmp_path / "out2")), tmp_path / "run2")[0] == 0
    assert [p.stat().st_mtime_ns for p in caches] == stamps          # read back, not written again
    uncached = cfg.replace(output_dir=str(tmp_path / "out3"), cache_latents=False, cache_latents_to_disk=False,
                           flip_aug=True)
    code, status, events = train_in_process(uncached, tmp_path / "run3")
    assert code == 0 and len(of_kind(events, "step")) == 2, status.get("error")
    flipped = cfg.replace(output_dir=str(tmp_path / "out4"), flip_aug=True)    # the caches lack mirrored latents
    code, status, events = train_in_process(flipped, tmp_path / "run4")
    assert code == 0 and len(of_kind(events, "step")) == 2, status.get("error")
    assert all("latents_flipped" in np.load(p) for p in caches)             # rewritten with them


def test_ctrl_c_on_workbench_train_stops_the_trainer_which_saves_first(demo, tmp_path):
    import signal

    from workbench.config.schema import save_toml
    save_toml(demo_config(demo, tmp_path / "out", max_train_epochs=100, sample_every_n_epochs=None),
              tmp_path / "config.toml")
    run_dir = tmp_path / "run"
    cli = subprocess.Popen([sys.executable, "-m", "workbench", "train", str(tmp_path / "config.toml"), "--run-dir",
                            str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(of_kind(runs.read_metrics(run_dir), "step")) < 2:
        assert cli.poll() is None and time.monotonic() < deadline, runs.log_tail(run_dir)
        time.sleep(0.2)
    cli.send_signal(signal.SIGINT)                      # what Ctrl-C in the terminal sends
    _, err = cli.communicate(timeout=120)
    assert cli.returncode == 130
    assert "stopping: the trainer finishes its step and saves" in err and err.rstrip().endswith("stopped")
    status = runs.read_status(run_dir)
    assert status["state"] == "stopped" and Path(status["outputs"][0]).name.startswith("demo-lora-stopped-step")


def test_text_encoder_lr_zero_trains_the_unet_alone(demo, tmp_path):
    cfg = demo_config(demo, tmp_path / "out", text_encoder_lr=0.0, max_train_epochs=None, max_train_steps=2,
                      sample_every_n_epochs=None)
    code, status, events = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    assert [e["lr_te"] for e in of_kind(events, "step")] == [0.0, 0.0]
    names = lora_module_names(tmp_path / "out" / "demo-lora.safetensors")
    assert names and all(n.startswith("lora_unet_") for n in names)


def test_network_weights_continue_a_lora_with_its_rank(demo, tmp_path):
    first = demo_config(demo, tmp_path / "first", max_train_epochs=None, max_train_steps=2, sample_every_n_epochs=None)
    assert train_in_process(first, tmp_path / "run1")[0] == 0
    previous = tmp_path / "first" / "demo-lora.safetensors"
    again = first.replace(output_dir=str(tmp_path / "second"), network_weights=str(previous), dim_from_weights=True,
                          network_dim=32, network_alpha=32.0)
    code, status, _ = train_in_process(again, tmp_path / "run2")
    assert code == 0, status.get("error")
    meta = metadata_of(read_header(tmp_path / "second" / "demo-lora.safetensors")[1])
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("4", "2.0")      # the file's, not the config's
    assert lora_module_names(tmp_path / "second" / "demo-lora.safetensors") == lora_module_names(previous)


def test_torch_compile_trains_the_same_steps_as_eager_and_saves_the_same_keys(demo, tmp_path, capsys):
    import torch
    from torch._dynamo.utils import counters
    eager = demo_config(demo, tmp_path / "eager", max_train_epochs=None, max_train_steps=2, sample_every_n_epochs=None,
                        seed=3)
    assert train_in_process(eager, tmp_path / "run1")[0] == 0
    assert "fast path: eager (no compile) — " in capsys.readouterr().out     # 2 steps: never worth compiling
    torch._dynamo.reset()
    counters.clear()
    # the "eager" backend: dynamo really captures the UNet with the LoRA hooked in, without inductor's minutes
    compiled = eager.replace(output_dir=str(tmp_path / "compiled"), torch_compile=True, dynamo_backend="eager")
    code, status, events = train_in_process(compiled, tmp_path / "run2")
    assert code == 0, status.get("error")
    assert counters["stats"]["unique_graphs"] >= 1
    log = capsys.readouterr().out
    assert "fast path: torch.compile on — torch_compile = true" in log
    assert "torch.compile (eager), regional: 7 BasicTransformerBlock, 8 ResnetBlock2D compiled once" in log
    losses = [[e["loss"] for e in of_kind(run, "step")] for run in (runs.read_metrics(tmp_path / "run1"), events)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    files = [read_header(tmp_path / d / "demo-lora.safetensors")[1] for d in ("eager", "compiled")]
    assert set(tensor_entries(files[0])) == set(tensor_entries(files[1]))     # no "_orig_mod" in any name


def test_save_and_sample_every_n_steps(demo, tmp_path):
    cfg = demo_config(demo, tmp_path / "out", max_train_epochs=None, max_train_steps=4, save_every_n_epochs=None,
                      save_every_n_steps=2, sample_every_n_epochs=None, sample_every_n_steps=3)
    code, status, events = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    saves = [(Path(e["path"]).name, e["step"]) for e in of_kind(events, "save")]
    assert saves == [("demo-lora-step00000002.safetensors", 2), ("demo-lora-step00000004.safetensors", 4),
                     ("demo-lora.safetensors", 4)]
    meta = metadata_of(read_header(tmp_path / "out" / "demo-lora-step00000002.safetensors")[1])
    assert (meta["ss_steps"], meta["ss_epoch"]) == ("2", "0")          # sd-scripts: the epochs done so far
    samples = [re.sub(r"_\d{14}_", "_<time>_", Path(e["path"]).name) for e in of_kind(events, "sample")]
    assert samples == ["demo-lora_000003_00_<time>_1.png", "demo-lora_000003_01_<time>_2.png"]
    assert [e["step"] for e in of_kind(events, "sample")] == [3, 3]
    again = train_in_process(cfg, tmp_path / "run2")                   # the step files are never overwritten
    assert again[0] != 0 and "demo-lora-step00000002.safetensors already exists" in again[1]["error"]


@pytest.mark.parametrize("sdxl", [False, True])
def test_max_token_length_225_trains_sd1_and_sdxl(demo, tmp_path, sdxl):
    cfg = demo_config(demo, tmp_path / "out", sdxl=sdxl, max_train_epochs=None, max_train_steps=2,
                      sample_every_n_epochs=None, max_token_length=225, train_batch_size=2,
                      mixed_precision="bf16" if sdxl else "no", sample_every_n_steps=2)
    code, status, events = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    assert len(of_kind(events, "sample")) == 2          # the prompts conditioned as the captions (with --n too)
    [path] = [Path(e["path"]) for e in of_kind(events, "save")]
    assert metadata_of(read_header(path)[1])["ss_max_token_length"] == "225"


def test_noise_and_loss_weight_options_train_and_are_recorded(demo, tmp_path):
    cfg = demo_config(demo, tmp_path / "out", max_train_epochs=None, max_train_steps=2, sample_every_n_epochs=None,
                      multires_noise_iterations=6, multires_noise_discount=0.3, ip_noise_gamma=0.1, min_timestep=100,
                      max_timestep=900, debiased_estimation_loss=True, v_pred_like_loss=0.1, noise_offset=0.05)
    code, status, events = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    assert all(math.isfinite(e["loss"]) for e in of_kind(events, "step"))
    meta = metadata_of(read_header(tmp_path / "out" / "demo-lora.safetensors")[1])
    assert (meta["ss_multires_noise_iterations"], meta["ss_multires_noise_discount"], meta["ss_ip_noise_gamma"],
            meta["ss_debiased_estimation"], meta["ss_noise_offset"]) == ("6", "0.3", "0.1", "True", "0.05")


@pytest.mark.parametrize("sdxl", [False, True])
def test_cached_text_encoder_outputs_train_the_same_losses_without_running_the_encoders(demo, tmp_path, monkeypatch,
                                                                                        capsys, sdxl):
    from trainer import models
    calls = []
    real_encode = models.Models.encode

    def counting_encode(self, captions, *args, **kwargs):
        calls.append(len(captions))
        return real_encode(self, captions, *args, **kwargs)
    monkeypatch.setattr(models.Models, "encode", counting_encode)
    base = dict(max_train_epochs=None, max_train_steps=6, network_train_unet_only=True, caption_dropout_every_n_epochs=2,
                save_every_n_epochs=None, sample_every_n_epochs=None)
    losses = {}
    for cached in (False, True):
        calls.clear()
        cfg = demo_config(demo, tmp_path / f"out-{cached}", sdxl=sdxl, cache_text_encoder_outputs=cached, **base)
        code, status, events = train_in_process(cfg, tmp_path / f"run-{cached}")
        assert code == 0, status.get("error")
        losses[cached] = [e["loss"] for e in of_kind(events, "step")]
        if cached:
            captions = make_plan(cfg).used_images
            assert sum(calls) == len({im.info.caption for im in captions}) + 1     # each caption once, and ""
            assert "caption(s) encoded once" in capsys.readouterr().out          # the trainer's log line
        else:
            assert len(calls) == 6                                                   # one encode per step
    assert losses[True] == pytest.approx(losses[False], rel=1e-5, abs=1e-7)
