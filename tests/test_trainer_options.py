"""The later sd-scripts options trained end to end on the demo's tiny real models: loss types,
save_last_n_* (the files left), the noise options; their metadata as sd-scripts writes it, and
Inspect's "use these settings" reading them back from the ss_* keys alone."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.test_trainer import demo_config, of_kind, train_in_process
from workbench.lora.header import metadata_of, read_header
from workbench.lora.read_metadata import config_from_metadata
from workbench.lora.write_metadata import CONFIG_KEY
from workbench.models.demo import build_demo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo(tmp_path_factory.mktemp("demo"))


def short_run(demo, out: Path, **changes):
    base = {"max_train_epochs": None, "max_train_steps": 2, "sample_every_n_epochs": None,
            "save_every_n_epochs": None, "seed": 42}
    return demo_config(demo, out, **{**base, **changes})


def saved_metadata(out: Path) -> dict[str, str]:
    return metadata_of(read_header(out / "demo-lora.safetensors")[1])


def from_ss_keys(meta: dict[str, str]):
    """Inspect's "use these settings" as it works on a LoRA written by sd-scripts (no workbench_config)."""
    return config_from_metadata({k: v for k, v in meta.items() if k != CONFIG_KEY})


def test_loss_types_change_the_loss_and_are_recorded(demo, tmp_path):
    first = {}
    for loss_type in ("l2", "l1", "huber"):
        cfg = short_run(demo, tmp_path / loss_type, loss_type=loss_type, huber_schedule="exponential",
                        huber_c=0.2, huber_scale=2.0)
        code, status, events = train_in_process(cfg, tmp_path / f"run-{loss_type}")
        assert code == 0, status.get("error")
        first[loss_type] = of_kind(events, "step")[0]["loss"]
    # the same seed: the same noise, timesteps and prediction at step 1, only the loss function differs
    assert len({round(v, 6) for v in first.values()}) == 3
    meta = saved_metadata(tmp_path / "huber")
    assert (meta["ss_loss_type"], meta["ss_huber_schedule"], meta["ss_huber_c"], meta["ss_huber_scale"]) == \
        ("huber", "exponential", "0.2", "2.0")
    cfg, notes = from_ss_keys(meta)
    assert (cfg.loss_type, cfg.huber_schedule, cfg.huber_c, cfg.huber_scale) == ("huber", "exponential", 0.2, 2.0)
    assert not [n for n in notes if "huber" in n or "loss_type" in n]
    assert saved_metadata(tmp_path / "l2")["ss_huber_c"] == "0.2"       # written whatever the loss, as sd-scripts


def test_save_last_n_epochs_leaves_the_last_files_and_states(demo, tmp_path):
    out = tmp_path / "out"
    cfg = short_run(demo, out, max_train_steps=0, max_train_epochs=4, save_every_n_epochs=1, save_last_n_epochs=2,
                    save_state=True, save_last_n_epochs_state=1)
    code, status, events = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    # epochs 1, 2, 3 saved (4 is the final file); saving 3 deleted 3 − 1·2 = 1; states keep only the last one
    assert sorted(p.name for p in out.iterdir()) == [
        "demo-lora-000002.safetensors", "demo-lora-000003-state", "demo-lora-000003.safetensors",
        "demo-lora-state", "demo-lora.safetensors"]
    removed = [Path(e["path"]).name for e in of_kind(events, "remove")]
    assert removed == ["demo-lora-000001-state", "demo-lora-000001.safetensors", "demo-lora-000002-state"]
    assert sorted(Path(p).name for p in status["outputs"]) == [
        "demo-lora-000002.safetensors", "demo-lora-000003.safetensors", "demo-lora.safetensors"]


def test_save_last_n_steps_and_the_state_at_the_end_only(demo, tmp_path):
    out = tmp_path / "out"
    cfg = short_run(demo, out, max_train_steps=8, save_every_n_steps=2, save_last_n_steps=3,
                    save_state_on_train_end=True)
    code, status, _ = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    # saves at 2, 4, 6, 8: saving 6 deletes (6 − 3 − 1) rounded down to a multiple of 2 = 2, saving 8 deletes 4
    assert sorted(p.name for p in out.iterdir()) == [
        "demo-lora-state", "demo-lora-step00000006.safetensors", "demo-lora-step00000008.safetensors",
        "demo-lora.safetensors"]
    assert json.loads((out / "demo-lora-state" / "train_state.json").read_text())["step"] == 8


def test_noise_options_train_and_are_recorded(demo, tmp_path):
    cfg = short_run(demo, tmp_path / "out", v_parameterization=True, zero_terminal_snr=True, noise_offset=0.1,
                    noise_offset_random_strength=True, adaptive_noise_scale=0.01, ip_noise_gamma=0.1,
                    ip_noise_gamma_random_strength=True)
    code, status, _ = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    meta = saved_metadata(tmp_path / "out")
    assert {k: meta[k] for k in ("ss_zero_terminal_snr", "ss_adaptive_noise_scale", "ss_noise_offset_random_strength",
                                 "ss_ip_noise_gamma_random_strength")} == {
        "ss_zero_terminal_snr": "True", "ss_adaptive_noise_scale": "0.01", "ss_noise_offset_random_strength": "True",
        "ss_ip_noise_gamma_random_strength": "True"}
    back, _ = from_ss_keys(meta)
    assert (back.zero_terminal_snr, back.adaptive_noise_scale, back.noise_offset_random_strength,
            back.ip_noise_gamma_random_strength) == (True, 0.01, True, True)
    plain = saved_metadata_of_default(demo, tmp_path)
    assert (plain["ss_adaptive_noise_scale"], plain["ss_zero_terminal_snr"]) == ("None", "False")


def saved_metadata_of_default(demo, tmp_path) -> dict[str, str]:
    from workbench.lora.write_metadata import RunFacts, training_metadata
    from workbench.planning.plan import make_plan
    cfg = short_run(demo, tmp_path / "plain")
    facts = RunFacts(seed=1, session_id=1, started_at=0.0, optimizer="AdamW", lr_scheduler="cosine",
                     network_dim=cfg.network_dim, network_alpha=cfg.network_alpha)
    return training_metadata(cfg, make_plan(cfg), facts)


def test_loraplus_groups_train_at_ratio_times_the_base_and_are_logged(demo, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    cfg = short_run(demo, tmp_path / "out", max_train_steps=3, learning_rate=1e-3, text_encoder_lr=5e-4,
                    network_args=["loraplus_lr_ratio=4", "loraplus_text_encoder_lr_ratio=2"])
    code, status, _ = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    board = EventAccumulator(str(tmp_path / "run" / "tb"))
    board.Reload()
    lr = {tag: [s.value for s in board.Scalars(tag)]
          for tag in ("lr/unet", "lr/unet plus", "lr/textencoder", "lr/textencoder plus")}
    assert lr["lr/unet"][0] == pytest.approx(1e-3) and len(lr["lr/unet plus"]) == 3
    assert lr["lr/unet plus"] == pytest.approx([4 * v for v in lr["lr/unet"]])
    assert lr["lr/textencoder plus"] == pytest.approx([2 * v for v in lr["lr/textencoder"]])
    meta = saved_metadata(tmp_path / "out")
    assert json.loads(meta["ss_network_args"]) == {"loraplus_lr_ratio": "4", "loraplus_text_encoder_lr_ratio": "2"}
    assert from_ss_keys(meta)[0].loraplus_ratios() == {"unet": 4.0, "text_encoder": 2.0}


def test_validation_loss_is_logged_per_step_and_epoch_and_recorded(demo, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from workbench.planning.plan import make_plan
    cfg = short_run(demo, tmp_path / "out", max_train_steps=0, max_train_epochs=2, validation_split=0.2,
                    validation_seed=5, validate_every_n_steps=4, max_validation_steps=2)
    plan = make_plan(cfg)
    assert plan.num_validation_images > 0 and plan.validation_batches == 2
    code, status, events = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    assert len(of_kind(events, "step")) == plan.total_steps
    checks = of_kind(events, "validation")
    per_step = [e for e in checks if e["per"] == "step"]
    assert [e["step"] for e in per_step] == list(range(4, plan.total_steps + 1, 4))
    assert [e["epoch"] for e in checks if e["per"] == "epoch"] == [1, 2]
    losses = [e["loss"] for e in checks]
    assert all(v > 0 for v in losses) and len(set(losses)) > 1             # the LoRA changes between them
    epoch_one = next(e for e in of_kind(events, "epoch") if e["epoch"] == 1)
    first_epoch_check = next(e for e in checks if e["per"] == "epoch")
    assert first_epoch_check["loss"] != epoch_one["loss_avg"]
    assert first_epoch_check["divergence"] == pytest.approx(first_epoch_check["loss"] - epoch_one["loss_avg"])
    board = EventAccumulator(str(tmp_path / "run" / "tb"))
    board.Reload()
    assert [s.step for s in board.Scalars("loss/validation/epoch_average")] == [1, 2]
    assert [s.step for s in board.Scalars("loss/validation/step_average")] == [e["step"] for e in per_step]
    assert "loss/validation/step_divergence" in board.Tags()["scalars"]
    meta = saved_metadata(tmp_path / "out")
    assert {k: meta[k] for k in ("ss_validation_split", "ss_validation_seed", "ss_num_validation_images",
                                 "ss_validate_every_n_steps", "ss_max_validation_steps",
                                 "ss_validate_every_n_epochs")} == {
        "ss_validation_split": "0.2", "ss_validation_seed": "5", "ss_num_validation_images":
        str(plan.num_validation_images), "ss_validate_every_n_steps": "4", "ss_max_validation_steps": "2",
        "ss_validate_every_n_epochs": "None"}
    assert meta["ss_num_train_images"] == str(plan.num_train_images)
    back, _ = from_ss_keys(meta)
    assert (back.validation_split, back.validation_seed, back.validate_every_n_steps) == (0.2, 5, 4)


def test_validation_leaves_the_training_exactly_as_without_it(demo, tmp_path):
    """The same held-out images, with and without validating every step: the same training losses."""
    base = short_run(demo, tmp_path / "a", max_train_steps=3, validation_split=0.2, validation_seed=5,
                     validate_every_n_epochs=99)
    quiet = train_in_process(base, tmp_path / "run-a")[2]
    busy_cfg = base.replace(output_dir=str(tmp_path / "b"), validate_every_n_steps=1)
    busy = train_in_process(busy_cfg, tmp_path / "run-b")[2]
    assert len(of_kind(busy, "validation")) == 3 and not of_kind(quiet, "validation")
    assert [e["loss"] for e in of_kind(busy, "step")] == [e["loss"] for e in of_kind(quiet, "step")]


def test_augmentations_and_caption_options_train_uncached_and_are_recorded(demo, tmp_path):
    cfg = short_run(demo, tmp_path / "out", cache_latents=False, color_aug=True, random_crop=True,
                    caption_prefix="photo of", token_warmup_step=0.5, token_warmup_min=1, shuffle_caption=True)
    code, status, _ = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    meta = saved_metadata(tmp_path / "out")
    assert (meta["ss_color_aug"], meta["ss_random_crop"], meta["ss_cache_latents"]) == ("True", "True", "False")
    back, _ = from_ss_keys(meta)
    assert (back.color_aug, back.random_crop) == (True, True)
    refused = train_in_process(cfg.replace(output_dir=str(tmp_path / "cached"), cache_latents=True), tmp_path / "r2")
    assert refused[0] != 0 and "color_aug" in refused[1]["error"] and "cache_latents" in refused[1]["error"]


def test_block_ranks_and_block_lrs_train_and_show_in_inspect(demo, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from workbench.lora.blocks import block_index
    from workbench.lora.inspect import describe
    from workbench.lora.structure import modules_by_block
    plain = short_run(demo, tmp_path / "plain", max_train_steps=1)
    assert train_in_process(plain, tmp_path / "run-plain")[0] == 0
    present = sorted({block_index(m.name, False) for m in describe(tmp_path / "plain" / "demo-lora.safetensors")
                      .structure.modules if m.name.startswith("lora_unet_")})
    dims = ",".join("2" if i == present[0] else "4" for i in range(25))
    weights = ",".join("0.5" if i == present[0] else "1" for i in range(12))
    cfg = short_run(demo, tmp_path / "out", network_dim=4, learning_rate=1e-3,
                    network_args=[f"block_dims={dims}", f"down_lr_weight={weights}"])
    code, status, events = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    inspection = describe(tmp_path / "out" / "demo-lora.safetensors")
    ranks = {b.label: b.rank_distribution() for b in modules_by_block(inspection.structure.modules)}
    first = next(label for label, _ in ranks.items() if label.startswith("unet "))
    assert set(ranks[first]) == {2} and any(set(r) == {4} for label, r in ranks.items() if label.startswith("unet "))
    board = EventAccumulator(str(tmp_path / "run" / "tb"))
    board.Reload()
    tags = board.Tags()["scalars"]
    assert f"lr/unet_block{present[0]}" in tags and f"lr/unet_block{present[-1]}" in tags
    half = board.Scalars(f"lr/unet_block{present[0]}")[0].value
    assert half == pytest.approx(0.5 * board.Scalars(f"lr/unet_block{present[-1]}")[0].value)
    assert of_kind(events, "step")[0]["lr_unet"] == pytest.approx(1e-3)        # the unweighted UNet LR


def test_a_separate_vae_file_or_folder_is_used_and_recorded(demo, tmp_path, capsys):
    import torch
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    from tests.test_trainer_single_file import original_vae
    from trainer.models import load_models
    own = AutoencoderKL.from_pretrained(demo.sd1_model, subfolder="vae")
    changed = {k: v * 1.5 for k, v in own.state_dict().items()}           # another VAE of the same shape
    ldm = {k.removeprefix("first_stage_model."): v.contiguous()
           for k, v in original_vae(changed, dict(own.config)).items()}
    save_file(ldm, str(tmp_path / "other-vae.safetensors"))
    cfg = short_run(demo, tmp_path / "out", vae=str(tmp_path / "other-vae.safetensors"), max_train_steps=1,
                    mixed_precision="bf16", no_half_vae=False)
    loaded = load_models(cfg).vae.state_dict()
    assert all(torch.allclose(loaded[k], changed[k]) for k in changed)
    code, status, _ = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    assert f"VAE {tmp_path / 'other-vae.safetensors'} in bfloat16" in capsys.readouterr().out       # no_half_vae off
    meta = saved_metadata(tmp_path / "out")
    assert meta["ss_vae_name"] == "other-vae.safetensors"
    assert meta["ss_new_vae_hash"] == hashlib.sha256((tmp_path / "other-vae.safetensors").read_bytes()).hexdigest()
    assert len(meta["ss_vae_hash"]) == 8
    AutoencoderKL.from_config(own.config).save_pretrained(tmp_path / "vae-folder")   # a diffusers folder too
    from_folder = load_models(cfg.replace(vae=str(tmp_path / "vae-folder"))).vae.state_dict()
    assert all(torch.equal(from_folder[k], v) for k, v in AutoencoderKL.from_pretrained(tmp_path / "vae-folder")
               .state_dict().items()) and not torch.equal(from_folder["decoder.conv_out.weight"],
                                                         own.state_dict()["decoder.conv_out.weight"])
    from trainer.vae_file import load_vae
    from workbench.errors import UserError
    (tmp_path / "not-a-vae.safetensors").write_bytes(b"nonsense")
    with pytest.raises(UserError, match="cannot be read as a VAE"):
        load_vae(str(tmp_path / "not-a-vae.safetensors"), own)


@pytest.mark.parametrize("flag", ["fp8_base", "fp8_base_unet"])
def test_fp8_base_stores_the_base_weights_in_fp8_and_trains(demo, tmp_path, flag):
    import torch

    from trainer.recipe import Recipe
    from workbench.runs import registry as runs
    cfg = short_run(demo, tmp_path / "out", mixed_precision="bf16", full_bf16=True, sample_every_n_steps=2,
                    **{flag: True})                  # samples render from the fp8 model too
    runs.create_run(cfg, tmp_path / "run")
    recipe = Recipe(tmp_path / "run")
    try:
        recipe.setup()
        unet_linear = next(m for m in recipe.models.unet.modules() if isinstance(m, torch.nn.Linear))
        te_linear = next(m for m in recipe.models.text_encoders[0].modules() if isinstance(m, torch.nn.Linear))
        assert unet_linear.weight.dtype == torch.float8_e4m3fn
        assert te_linear.weight.dtype == (torch.bfloat16 if flag == "fp8_base_unet" else torch.float8_e4m3fn)
        assert {p.dtype for p in recipe.network.parameters()} == {torch.bfloat16}          # full_bf16
        assert recipe.train() == "finished"
        recipe.finish("finished")
        assert of_kind(runs.read_metrics(tmp_path / "run"), "sample")
    finally:
        recipe.cleanup()
    meta = saved_metadata(tmp_path / "out")
    assert (meta["ss_fp8_base"], meta["ss_fp8_base_unet"]) == (str(flag == "fp8_base"), str(flag == "fp8_base_unet"))
    assert meta["ss_full_fp16"] == "False"


def test_wandb_offline_gets_the_scalars_and_never_the_api_key(demo, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    secret = "0123456789abcdef0123456789abcdef-not-a-real-key"
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", secret)
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = short_run(demo, tmp_path / "out", log_with="all", log_tracker_name="workbench-test",
                    wandb_run_name="tiny", log_prefix="sks-")
    code, status, _ = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    offline = list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 1 and offline[0].stat().st_size > 0
    history = offline[0].read_bytes()
    assert b"loss/current" in history and b"global_step" in history and b"tiny" in history
    tb = list((tmp_path / "run" / "tb").glob("sks-*"))                      # log_prefix: <prefix><date-time>
    assert len(tb) == 1 and list(tb[0].glob("events.out.tfevents.*"))
    for path in [*(tmp_path / "run").rglob("*"), *(tmp_path / "out").rglob("*")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_validation_with_cached_text_encoder_outputs(demo, tmp_path):
    """The held-out images' captions are in the text cache too (with caption_prefix, as training's)."""
    cfg = short_run(demo, tmp_path / "out", network_train_unet_only=True, cache_text_encoder_outputs=True,
                    validation_split=0.2, validation_seed=1, validate_every_n_steps=2, caption_prefix="photo of")
    code, status, events = train_in_process(cfg, tmp_path / "run")
    assert code == 0, status.get("error")
    assert len(of_kind(events, "validation")) == 2          # after step 2, and after the (stopped) epoch
