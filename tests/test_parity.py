"""Parity with kohya-ss/sd-scripts, one test per difference the audit found and fixed, plus the loss
written out a second time in sd-scripts' order. Expected values are what sd-scripts writes or
computes (train_network.py, library/train_util.py, sai_model_spec.py, custom_train_functions.py),
stated here by hand rather than derived from the workbench's code."""
from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import make_image
from trainer import models, optim, sampling, saving
from workbench.config.schema import TrainConfig
from workbench.lora import write_metadata as metadata
from workbench.planning.plan import make_plan
from workbench.runs import sample_prompts


@pytest.fixture
def small_run(tmp_path):
    for i, size in enumerate([(128, 128), (96, 160)]):
        make_image(tmp_path / "train" / "2_thing" / f"{i}.png", size)
    cfg = TrainConfig(pretrained_model_name_or_path="/models/base.safetensors", train_data_dir=str(tmp_path / "train"),
                      output_name="p", resolution="128,128", min_bucket_reso=64, max_bucket_reso=256,
                      max_train_epochs=1)
    return cfg, make_plan(cfg)


def facts(**changes) -> metadata.RunFacts:
    values = dict(seed=1, session_id=2, started_at=3.0, optimizer="torch.optim.adamw.AdamW", lr_scheduler="cosine",
                  network_dim=8, network_alpha=1.0)
    return metadata.RunFacts(**{**values, **changes})


def meta_of(cfg: TrainConfig, plan, **fact_changes) -> dict[str, str]:
    return metadata.training_metadata(cfg, plan, facts(**fact_changes))


# ---------------------------------------------------------------- ss_* keys

def test_v_prediction_adds_v_to_the_base_model_version_on_sd1_too():
    # model_util.get_model_version_str_for_sd1_sd2: "sd" + "_v1"/"_v2" + "_v" when v_parameterization
    assert metadata.base_model_version(TrainConfig(v_parameterization=True)) == "sd_v1_v"
    assert metadata.base_model_version(TrainConfig(v2=True, v_parameterization=True)) == "sd_v2_v"


def test_network_args_are_recorded_only_when_given(small_run):
    cfg, plan = small_run
    assert "ss_network_args" not in meta_of(cfg, plan)
    given = meta_of(cfg.replace(network_args=["conv_dim=4", "conv_alpha=2"]), plan)
    assert json.loads(given["ss_network_args"]) == {"conv_dim": "4", "conv_alpha": "2"}


def test_noise_offset_and_min_snr_gamma_that_are_off_read_as_the_exported_job_passes_them(small_run):
    # the export passes noise_offset = 0.0 and min_snr_gamma = 0.0; sd-scripts records them as given
    cfg, plan = small_run
    off = meta_of(cfg, plan)
    assert (off["ss_noise_offset"], off["ss_min_snr_gamma"]) == ("0.0", "0.0")
    on = meta_of(cfg.replace(noise_offset=0.05, min_snr_gamma=5.0), plan)
    assert (on["ss_noise_offset"], on["ss_min_snr_gamma"]) == ("0.05", "5.0")


def test_caption_dropouts_are_recorded_as_sd_scripts_writes_them(small_run):
    cfg, plan = small_run
    off = meta_of(cfg, plan)
    assert (off["ss_caption_dropout_rate"], off["ss_caption_dropout_every_n_epochs"],
            off["ss_caption_tag_dropout_rate"]) == ("0.0", "0", "0.0")
    on = meta_of(cfg.replace(caption_dropout_rate=0.05, caption_dropout_every_n_epochs=3, caption_tag_dropout_rate=0.1),
                 plan)
    assert (on["ss_caption_dropout_rate"], on["ss_caption_dropout_every_n_epochs"],
            on["ss_caption_tag_dropout_rate"]) == ("0.05", "3", "0.1")


def test_without_bucketing_the_bucket_keys_are_none(small_run):
    cfg, plan = small_run
    on = meta_of(cfg.replace(bucket_no_upscale=True), plan)
    assert (on["ss_min_bucket_reso"], on["ss_max_bucket_reso"], on["ss_bucket_no_upscale"]) == ("64", "256", "True")
    plain = cfg.replace(enable_bucket=False, bucket_no_upscale=True)
    off = meta_of(plain, make_plan(plain))
    assert (off["ss_min_bucket_reso"], off["ss_max_bucket_reso"], off["ss_bucket_no_upscale"]) == \
        ("None", "None", "False")
    assert off["ss_bucket_info"] == "null"


def test_adafactor_relative_step_records_no_learning_rate(small_run):
    cfg, plan = small_run
    cfg = cfg.replace(optimizer_type="Adafactor", learning_rate=2e-4, unet_lr=3e-4, text_encoder_lr=5e-5)
    meta = meta_of(cfg, plan, lr_scheduler=optim.scheduler_name(cfg))
    assert meta["ss_lr_scheduler"] == "adafactor:0.0002"
    assert (meta["ss_learning_rate"], meta["ss_unet_lr"], meta["ss_text_encoder_lr"]) == ("None", "None", "5e-05")
    fixed = cfg.replace(optimizer_args=["relative_step=False"], lr_scheduler="constant_with_warmup")
    meta = meta_of(fixed, plan, lr_scheduler=optim.scheduler_name(fixed))
    assert (meta["ss_lr_scheduler"], meta["ss_learning_rate"], meta["ss_unet_lr"]) == \
        ("constant_with_warmup", "0.0002", "0.0003")


def test_options_the_workbench_does_not_offer_read_as_sd_scripts_writes_them_off(small_run):
    meta = meta_of(*small_run)
    assert {key: meta[key] for key in ("ss_max_token_length", "ss_color_aug", "ss_random_crop", "ss_full_fp16",
                                       "ss_caption_dropout_rate", "ss_caption_dropout_every_n_epochs",
                                       "ss_caption_tag_dropout_rate", "ss_face_crop_aug_range",
                                       "ss_multires_noise_iterations", "ss_multires_noise_discount",
                                       "ss_zero_terminal_snr", "ss_loss_type")} == {
        "ss_max_token_length": "None", "ss_color_aug": "False", "ss_random_crop": "False", "ss_full_fp16": "False",
        "ss_caption_dropout_rate": "0.0", "ss_caption_dropout_every_n_epochs": "0",
        "ss_caption_tag_dropout_rate": "0.0", "ss_face_crop_aug_range": "None",
        "ss_multires_noise_iterations": "0", "ss_multires_noise_discount": "0.3",
        "ss_zero_terminal_snr": "False", "ss_loss_type": "l2"}


@pytest.mark.parametrize("optimizer, args, expected", [
    ("SGDNesterov", [], "torch.optim.sgd.SGD(momentum=0.9)"),
    ("SGDNesterov", ["momentum=0.5"], "torch.optim.sgd.SGD(momentum=0.5)"),
    ("Adafactor", [], "transformers.optimization.Adafactor(relative_step=True)"),
    ("Adafactor", ["relative_step=False", "warmup_init=True"],
     "transformers.optimization.Adafactor(relative_step=True,warmup_init=True)"),
    ("Adafactor", ["relative_step=False"], "transformers.optimization.Adafactor(relative_step=False)"),
    ("AdamW", ["weight_decay=0.01", "betas=0.9,0.99"], "torch.optim.adamw.AdamW(weight_decay=0.01,betas=(0.9, 0.99))"),
])
def test_ss_optimizer_holds_the_arguments_sd_scripts_runs_with(optimizer, args, expected):
    cfg = TrainConfig(optimizer_type=optimizer, optimizer_args=args, learning_rate=1e-3)
    _, description = optim.build_optimizer(cfg, [{"params": [torch.nn.Parameter(torch.ones(3))], "lr": 1e-3}])
    assert description == expected


def test_warmup_init_turns_adafactor_relative_step_and_its_schedule_on():
    cfg = TrainConfig(optimizer_type="Adafactor", optimizer_args=["relative_step=False", "warmup_init=True"])
    assert optim.uses_adafactor_schedule(cfg)
    assert not optim.uses_adafactor_schedule(cfg.replace(optimizer_args=["relative_step=False"]))


def test_a_folder_base_model_is_hashed_as_sd_scripts_records_it(tmp_path):
    # train_util.model_hash / calculate_sha256 answer a directory with "IsADirectory"
    assert saving.base_model_hashes(tmp_path) == ("IsADirectory", "IsADirectory")


# ---------------------------------------------------------------- SDXL size conditioning

@pytest.mark.parametrize("size, bucket, flipped, expected", [
    # taller than its bucket: sd-scripts gives a LEFT offset of the fit-inside box (10), not the
    # 16 rows the cover-crop cut from the top
    ((1000, 1500), (832, 1216), False, [1500, 1000, 0, 10, 1216, 832]),
    ((1000, 1500), (832, 1216), True, [1500, 1000, 0, 11, 1216, 832]),
    # wider than its bucket: a TOP offset of 6, where the cover-crop cut 10 columns
    ((1920, 1080), (1344, 768), False, [1080, 1920, 6, 0, 768, 1344]),
    ((1024, 1024), (1024, 1024), False, [1024, 1024, 0, 0, 1024, 1024]),
])
def test_sdxl_time_ids_are_sd_scripts_original_crop_target(size, bucket, flipped, expected):
    assert models.sdxl_time_ids(size, bucket, flipped) == expected


# ---------------------------------------------------------------- schedules and sampling

def test_training_noise_schedule_is_sd_scripts_ddpm():
    from diffusers import DDPMScheduler
    for v in (False, True):
        theirs = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                               num_train_timesteps=1000, clip_sample=False,
                               prediction_type="v_prediction" if v else "epsilon")
        assert dict(models.noise_scheduler(v).config) == dict(theirs.config)


def test_samplers_are_built_on_class_defaults_with_clip_sample_on():
    ddim = sampling.make_scheduler("ddim", models.noise_scheduler(True))
    config = ddim.config
    assert (config.clip_sample, config.steps_offset, config.set_alpha_to_one, config.prediction_type) == \
        (True, 0, True, "v_prediction")
    assert (config.beta_start, config.beta_end, config.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    euler = sampling.make_scheduler("euler_a", models.noise_scheduler(False)).config
    assert (euler.prediction_type, euler.timestep_spacing, euler.steps_offset) == ("epsilon", "linspace", 0)


def test_prompt_options_in_any_case_and_steps_within_1_to_1000():
    sample = sample_prompts.parse_prompt_line("a cat --W 320 --H 256 --S 5000 --L 4 --N ugly --D 3")
    assert (sample.width, sample.height, sample.steps, sample.scale, sample.negative, sample.seed) == \
        (320, 256, 1000, 4.0, "ugly", 3)
    assert sample_prompts.parse_prompt_line("a cat --s 0").steps == 1


# ---------------------------------------------------------------- the loss

@pytest.fixture(scope="module")
def sd1_models(tmp_path_factory):
    from workbench.models.demo import build_demo
    demo = build_demo(tmp_path_factory.getbasetemp() / "demo")
    return models.load_models(TrainConfig(pretrained_model_name_or_path=str(demo.sd1_model)))


def sd_scripts_loss(unet, cond, latents, weights, v: bool, offset: float, gamma: float) -> torch.Tensor:
    """process_batch + get_noise_noisy_latents_and_timesteps + apply_snr_weight, in their order of
    random draws: noise, the per-channel offset, the timesteps."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alpha_bar = torch.cumprod(1 - betas, 0).float()
    noise = torch.randn_like(latents)
    noise = noise + offset * torch.randn((latents.shape[0], latents.shape[1], 1, 1))
    t = torch.randint(0, 1000, (latents.shape[0],))
    a, s = alpha_bar[t].sqrt().view(-1, 1, 1, 1), (1 - alpha_bar[t]).sqrt().view(-1, 1, 1, 1)
    pred = unet(a * latents + s * noise, t, encoder_hidden_states=cond).sample
    target = a * noise - s * latents if v else noise
    loss = ((pred - target) ** 2).mean(dim=(1, 2, 3)) * weights
    snr = alpha_bar[t] / (1 - alpha_bar[t])
    return (loss * torch.clamp(snr, max=gamma) / (snr + 1 if v else snr)).mean()


@pytest.mark.slow
@pytest.mark.parametrize("v", [False, True])
def test_the_loss_is_sd_scripts_loss(sd1_models, v):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from trainer.stepper import MicroBatch, Stepper
    cfg = TrainConfig(optimizer_type="AdamW", mixed_precision="no", noise_offset=0.1, min_snr_gamma=5.0,
                      v_parameterization=v, prior_loss_weight=0.5)
    try:
        stepper = Stepper(cfg, sd1_models, Accelerator(mixed_precision="no"), total_steps=1)
        latents, weights = torch.randn(2, 4, 8, 8), torch.tensor([1.0, cfg.prior_loss_weight])
        captions = ["wbdemo, red circle", "shape"]
        with torch.no_grad():
            torch.manual_seed(7)
            ours = stepper.loss(MicroBatch(latents, captions, None, weights))
            cond = sd1_models.encode(captions, cfg.clip_skip, "cpu").hidden
            torch.manual_seed(7)
            theirs = sd_scripts_loss(sd1_models.unet, cond, latents, weights, v, 0.1, 5.0)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
