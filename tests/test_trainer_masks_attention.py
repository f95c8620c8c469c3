"""Issue 14's last sd-scripts options on the demo's tiny real models: masked_loss (alpha_mask and a
conditioning_data_dir of masks), face_crop_aug_range, weighted_captions and the attention flags;
each one's effect, and the metadata sd-scripts writes for it."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.test_trainer import demo_config, of_kind, train_in_process
from tests.test_trainer_options import from_ss_keys, saved_metadata
from workbench.models.demo import build_demo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def fresh_accelerate():
    from accelerate.state import AcceleratorState
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def short_run(demo, out: Path, **changes):
    base = {"max_train_epochs": None, "max_train_steps": 2, "sample_every_n_epochs": None,
            "save_every_n_epochs": None, "seed": 42, "reg_data_dir": ""}
    return demo_config(demo, out, **{**base, **changes})


def stepper_of(demo, **changes):
    from accelerate import Accelerator

    from trainer import models as model_loading
    from trainer.stepper import Stepper
    cfg = short_run(demo, Path("/unused"), network_train_unet_only=True, **changes)
    models = model_loading.load_models(cfg)
    models.prepare("cpu", torch.float32, False, False)
    torch.manual_seed(0)
    return Stepper(cfg, models, Accelerator(mixed_precision="no"), total_steps=10)


def loss_with(stepper, masks, latents, seed=3):
    from trainer.stepper import MicroBatch
    torch.manual_seed(seed)                 # the same noise and timesteps for every mask
    return stepper.loss(MicroBatch(latents, ["wbdemo, circle", "square"], None, torch.ones(2), masks))


# ---------------------------------------------------------------- masked loss

def test_the_mask_decides_which_pixels_the_loss_sees(demo, fresh_accelerate):
    stepper = stepper_of(demo, alpha_mask=True)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    left = torch.zeros(2, 64, 64)
    left[:, :, :32] = 1.0
    whole = loss_with(stepper, None, latents)
    halves = loss_with(stepper, left, latents) + loss_with(stepper, 1 - left, latents)
    assert float(halves) == pytest.approx(float(whole), rel=1e-5)           # the loss is the masked sum
    assert float(loss_with(stepper, left, latents)) != pytest.approx(float(whole) / 2, rel=1e-3)
    stepper.network.zero_grad()
    loss_with(stepper, torch.zeros(2, 64, 64), latents).backward()
    grads = [p.grad for p in stepper.trainable if p.grad is not None]
    assert grads and all(float(g.abs().max()) == 0.0 for g in grads)       # fully masked: no gradient at all


def transparent_copy(demo, root: Path) -> Path:
    """The demo's training folders with every image fully transparent."""
    shutil.copytree(demo.train_dir, root)
    for path in root.rglob("*.png"):
        with Image.open(path) as im:
            rgba = im.convert("RGBA")
        rgba.putalpha(0)
        rgba.save(path)
    return root


def test_alpha_mask_fully_transparent_images_teach_nothing(demo, tmp_path):
    data = transparent_copy(demo, tmp_path / "data")
    cfg = short_run(demo, tmp_path / "out", train_data_dir=str(data), alpha_mask=True)
    code, status, events = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    assert [e["loss"] for e in of_kind(events, "step")] == [0.0, 0.0]
    plain = short_run(demo, tmp_path / "out2", train_data_dir=str(data))          # alpha ignored: it learns
    code, status, events = train_in_process(plain, tmp_path / "run2")
    assert code == 0 and all(e["loss"] > 0 for e in of_kind(events, "step"))


def test_conditioning_masks_and_what_sd_scripts_records(demo, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    for path in demo.train_dir.rglob("*.png"):
        with Image.open(path) as im:
            Image.new("RGB", im.size, (0, 0, 0)).save(masks / path.name)     # black: nothing is learned
    cfg = short_run(demo, tmp_path / "out", masked_loss=True, conditioning_data_dir=str(masks))
    code, status, events = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    assert [e["loss"] for e in of_kind(events, "step")] == [0.0, 0.0]
    meta = saved_metadata(tmp_path / "out")
    # sd-scripts records none of masked_loss / alpha_mask / conditioning_data_dir; workbench_config keeps them
    assert not [k for k in meta if "mask" in k or "conditioning" in k]
    assert from_ss_keys(meta)[0].masked_loss is False
    from workbench.lora.read_metadata import config_from_metadata
    back, _ = config_from_metadata(meta)
    assert back.masked_loss and back.conditioning_data_dir == str(masks)


def test_a_missing_mask_is_refused_before_the_start(demo, tmp_path):
    from workbench.runs.preflight import Progress, dataset_findings
    masks = tmp_path / "masks"
    masks.mkdir()
    cfg = short_run(demo, tmp_path / "out", masked_loss=True, conditioning_data_dir=str(masks))
    errors = [f for f in dataset_findings(cfg, Progress()) if f.level == "error"]
    assert [f.field for f in errors] == ["conditioning_data_dir"] and len(errors[0].files) == 24
    from workbench.runs.registry import start_blockers
    blockers = start_blockers(cfg)                       # the Training page, `workbench train` and the trainer
    assert len(blockers) == 1 and blockers[0].startswith("conditioning_data_dir: 24 training image(s) have no mask")


# ---------------------------------------------------------------- face crop

def test_face_crop_trains_without_buckets_and_is_recorded(demo, tmp_path):
    data = tmp_path / "data" / "1_wbdemo face"
    data.mkdir(parents=True)
    for i, path in enumerate(sorted((demo.train_dir / "2_wbdemo circle").glob("*.png"))[:4]):
        with Image.open(path) as im:
            w, h = im.size
        shutil.copy(path, data / f"{path.stem}_{w // 2}_{h // 2}_{w // 4}_{h // 4}.png")   # a "face" mid-image
        shutil.copy(path.with_suffix(".txt"), data / f"{path.stem}_{w // 2}_{h // 2}_{w // 4}_{h // 4}.txt")
    cfg = short_run(demo, tmp_path / "out", train_data_dir=str(data.parent), enable_bucket=False,
                    cache_latents=False, face_crop_aug_range="1.5,3.0")
    code, status, _ = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    meta = saved_metadata(tmp_path / "out")
    assert meta["ss_face_crop_aug_range"] == "(1.5, 3.0)"                 # sd-scripts' parsed tuple
    assert from_ss_keys(meta)[0].face_crop_aug_range == "1.5,3.0"
    from workbench.lora.read_metadata import training_parameters
    images = dict(dict(training_parameters(meta))["Images"])
    assert images["face_crop_aug_range"] == "(1.5, 3.0)"                  # Inspect shows it with the other image keys
    assert saved_metadata_default(demo, tmp_path)["ss_face_crop_aug_range"] == "None"


def saved_metadata_default(demo, tmp_path):
    from tests.test_trainer_options import saved_metadata_of_default
    return saved_metadata_of_default(demo, tmp_path)


# ---------------------------------------------------------------- weighted captions

def test_weighted_captions_scale_the_word_rows_only(demo, fresh_accelerate):
    stepper = stepper_of(demo, weighted_captions=True)
    models = stepper.models
    with torch.no_grad():
        weighted = models.encode(["(wbdemo:1.5), circle"], 1, "cpu").hidden
        plain = models.encode(["wbdemo, circle"], 1, "cpu").hidden
        models.weighted = False
        off = models.encode(["wbdemo, circle"], 1, "cpu").hidden
    assert torch.equal(plain, off)               # no brackets: the same ids and rows as without the option
    word = len(models.tokenizers[0]("wbdemo").input_ids) - 2          # its tokens, after BOS
    assert torch.allclose(weighted[0, 1:1 + word], 1.5 * plain[0, 1:1 + word])
    assert torch.equal(weighted[0, 1 + word:], plain[0, 1 + word:]) and torch.equal(weighted[0, 0], plain[0, 0])


def test_weighted_captions_train_with_the_text_cache(demo, tmp_path):
    cfg = short_run(demo, tmp_path / "out", weighted_captions=True, caption_prefix="(wbdemo:1.3)",
                    cache_text_encoder_outputs=True, network_train_unet_only=True)
    code, status, _ = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    meta = saved_metadata(tmp_path / "out")
    assert not [k for k in meta if "weight" in k and "caption" in k]        # sd-scripts records none


# ---------------------------------------------------------------- attention

def test_attention_choice_same_loss(demo):
    from accelerate.state import AcceleratorState
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    losses = {}
    for flags, processor in (({}, "AttnProcessor2_0"), ({"sdpa": False}, "AttnProcessor"),
                             ({"mem_eff_attn": True}, "SlicedAttnProcessor")):
        stepper = stepper_of(demo, **flags)
        AcceleratorState._reset_state(reset_partial_state=True)
        assert {type(p).__name__ for p in stepper.unet.attn_processors.values()} == {processor}
        with torch.no_grad():
            losses[processor] = float(loss_with(stepper, None, latents))
    first = losses["AttnProcessor2_0"]
    assert all(v == pytest.approx(first, rel=1e-4) for v in losses.values())      # the same math, any kernel


def test_xformers_missing_is_one_line(demo, tmp_path, monkeypatch):
    import importlib.util

    from tests.conftest import run_cli
    from workbench.config.schema import save_toml
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xformers" else real(name, *a))
    from workbench.config.validate import validate
    cfg = short_run(demo, tmp_path / "out", xformers=True)
    found = [f for f in validate(cfg) if f.field == "xformers"]
    assert found[0].level == "error" and "pip install xformers" in found[0].message
    if real("xformers") is None:                 # the CLI, on a machine without it
        done = run_cli("check", save_toml(cfg, tmp_path / "c.toml"))
        assert done.returncode == 1 and "xformers: the xformers package is not installed" in done.stdout


def test_weighted_captions_on_sdxl_long_captions(demo):
    """SDXL, 150 tokens (two windows): both encoders' rows scaled, the pooled output untouched."""
    from trainer import models as model_loading
    from workbench.config.schema import TrainConfig
    models = model_loading.load_models(TrainConfig(pretrained_model_name_or_path=str(demo.sdxl_model), sdxl=True))
    models.weighted = True
    with torch.no_grad():
        weighted = models.encode(["(wbdemo:2), circle"], 1, "cpu", 150)
        plain = models.encode(["wbdemo, circle"], 1, "cpu", 150)
    assert weighted.hidden.shape == (1, 152, plain.hidden.shape[2])
    assert torch.allclose(weighted.hidden[0, 1], 2 * plain.hidden[0, 1])
    assert torch.equal(weighted.hidden[0, 3:], plain.hidden[0, 3:]) and torch.equal(weighted.pooled, plain.pooled)

