"""The demo job's metadata, key for key, as kohya-ss/sd-scripts' train_network.py writes it for the job
`workbench export` makes of the same config. Every expected value below is read off sd-scripts' source
by hand (train_network.py's `metadata = {...}` and its dreambooth branch, save_model's ss_steps /
ss_epoch / ss_training_finished_at, networks/lora.py's sshs_* hashes, library/sai_model_spec.py's
build_metadata with train_util.get_sai_model_spec) with the arguments the export passes and
sd-scripts' argparse defaults for the rest — not from the workbench's own output."""
from __future__ import annotations

import json

import pytest

from workbench import __version__
from workbench.config.schema import load_toml
from workbench.lora import write_metadata as metadata
from workbench.models.demo import build_demo
from workbench.planning.plan import make_plan

# the run, not the job: times, the session, the base model's and the file's hashes, sd-scripts' commit
RUN_DEPENDENT = {"ss_session_id", "ss_training_started_at", "ss_training_finished_at", "ss_sd_model_hash",
                 "ss_new_sd_model_hash", "ss_sd_scripts_commit_hash", "modelspec.date", "sshs_model_hash",
                 "sshs_legacy_hash"}
# keys of the workbench's own, beside sd-scripts' (the frozen config for "use these settings")
WORKBENCH_KEYS = {"workbench_config"}

# demo.toml: 128 px, buckets 64-256 step 64, batch 4, 3 epochs, AdamW lr 1e-3, cosine, warmup 0.1, dim 4 /
# alpha 2, seed 42, precision no, cached latents; dataset 12 × 1_wbdemo square, 12 × 2_wbdemo circle,
# reg 6 × 1_shape. Everything else at the workbench default, which the export writes as it is (0.0 stays
# 0.0) except clip_skip 1, max_token_length 75 and empty values, which it leaves to sd-scripts' None.
DEMO_JOB = {
    "ss_output_name": "demo-lora", "ss_learning_rate": "0.001", "ss_text_encoder_lr": "None", "ss_unet_lr": "None",
    "ss_num_train_images": "36", "ss_num_validation_images": "0", "ss_num_reg_images": "6",
    "ss_num_batches_per_epoch": "18", "ss_num_epochs": "3", "ss_gradient_checkpointing": "False",
    "ss_gradient_accumulation_steps": "1", "ss_max_train_steps": "54", "ss_lr_warmup_steps": "0.1",
    "ss_lr_scheduler": "cosine", "ss_network_module": "networks.lora", "ss_network_dim": "4",
    "ss_network_alpha": "2.0", "ss_network_dropout": "0.0", "ss_mixed_precision": "no", "ss_full_fp16": "False",
    "ss_v2": "False", "ss_base_model_version": "sd_v1", "ss_clip_skip": "None", "ss_max_token_length": "None",
    "ss_cache_latents": "True", "ss_seed": "42", "ss_lowram": "False", "ss_noise_offset": "0.0",
    "ss_multires_noise_iterations": "0", "ss_multires_noise_discount": "0.3", "ss_adaptive_noise_scale": "None",
    "ss_zero_terminal_snr": "False",
    "ss_training_comment": "LoRA Workbench demo: the base model has RANDOM weights; training runs for real but "
                           "the LoRA it makes draws noise",
    "ss_optimizer": "torch.optim.adamw.AdamW", "ss_max_grad_norm": "1.0", "ss_caption_dropout_rate": "0.0",
    "ss_caption_dropout_every_n_epochs": "0", "ss_caption_tag_dropout_rate": "0.0",
    "ss_face_crop_aug_range": "None", "ss_prior_loss_weight": "1.0", "ss_min_snr_gamma": "0.0",
    "ss_scale_weight_norms": "0.0", "ss_ip_noise_gamma": "0.0", "ss_debiased_estimation": "False",
    "ss_noise_offset_random_strength": "False", "ss_ip_noise_gamma_random_strength": "False",
    "ss_loss_type": "l2", "ss_huber_schedule": "snr", "ss_huber_scale": "1.0", "ss_huber_c": "0.1",
    "ss_fp8_base": "False", "ss_fp8_base_unet": "False", "ss_validation_seed": "None",
    "ss_validation_split": "0.0", "ss_max_validation_steps": "None", "ss_validate_every_n_epochs": "None",
    "ss_validate_every_n_steps": "None", "ss_resize_interpolation": "None",
    # the dreambooth (folder) branch
    "ss_batch_size_per_device": "4", "ss_total_batch_size": "4", "ss_resolution": "(128, 128)",
    "ss_color_aug": "False", "ss_flip_aug": "False", "ss_random_crop": "False", "ss_shuffle_caption": "False",
    "ss_enable_bucket": "True", "ss_bucket_no_upscale": "False", "ss_min_bucket_reso": "64",
    "ss_max_bucket_reso": "256", "ss_keep_tokens": "0",
    "ss_dataset_dirs": {"1_wbdemo square": {"n_repeats": 1, "img_count": 12},
                        "2_wbdemo circle": {"n_repeats": 2, "img_count": 12}},
    "ss_reg_dataset_dirs": {"1_shape": {"n_repeats": 1, "img_count": 6}},
    "ss_tag_frequency": None,        # JSON: checked by its folders below
    "ss_bucket_info": None,          # JSON: checked below (numbered 0..3 over the buckets that hold images)
    "ss_sd_model_name": "tiny-sd1",
    # save_model, for the last file of a finished run
    "ss_steps": "54", "ss_epoch": "3",
    # sai_model_spec: a LoRA on SD1; min/max_timestep are exported (0, 1000), clip_skip is not (no encoder_layer)
    "modelspec.sai_model_spec": "1.0.1", "modelspec.architecture": "stable-diffusion-v1/lora",
    "modelspec.implementation": "diffusers", "modelspec.title": "demo-lora", "modelspec.resolution": "128x128",
    "modelspec.prediction_type": "epsilon", "modelspec.timestep_range": "0,1000",
    "modelspec.implementation_version": f"lora-workbench/{__version__}",
}


@pytest.fixture(scope="module")
def demo_job(tmp_path_factory):
    demo = build_demo(tmp_path_factory.mktemp("demo"))
    cfg, _ = load_toml(demo.config)
    return cfg, make_plan(cfg)


def demo_metadata(cfg, plan) -> dict[str, str]:
    """What the trainer writes for the demo's last file (the run's facts as the trainer fills them)."""
    facts = metadata.RunFacts(seed=42, session_id=1, started_at=1.0, optimizer="torch.optim.adamw.AdamW",
                              lr_scheduler="cosine", network_dim=4, network_alpha=2.0, sd_model_hash="IsADirectory",
                              new_sd_model_hash="IsADirectory")
    return metadata.for_save(metadata.training_metadata(cfg, plan, facts), cfg, epoch=3, step=54, finished_at=2.0)


def test_the_demo_job_has_exactly_sd_scripts_keys(demo_job):
    meta = demo_metadata(*demo_job)
    expected = set(DEMO_JOB) | RUN_DEPENDENT | WORKBENCH_KEYS
    expected -= {"sshs_model_hash", "sshs_legacy_hash"}       # added by the writer, checked in test_trainer
    assert set(meta) - expected == set(), "keys sd-scripts does not write"
    assert expected - set(meta) == set(), "keys sd-scripts writes that are missing"


def test_the_demo_job_has_sd_scripts_values(demo_job):
    meta = demo_metadata(*demo_job)
    for key, want in DEMO_JOB.items():
        if isinstance(want, dict):
            assert json.loads(meta[key]) == want, key
        elif want is not None:
            assert meta[key] == want, key
    assert set(json.loads(meta["ss_tag_frequency"])) == {"1_wbdemo square", "2_wbdemo circle", "1_shape"}


def test_bucket_info_numbers_only_the_buckets_that_hold_images(demo_job):
    info = json.loads(demo_metadata(*demo_job)["ss_bucket_info"])
    assert info["buckets"] == {"0": {"resolution": [64, 192], "count": 24}, "1": {"resolution": [128, 128], "count": 24},
                               "2": {"resolution": [192, 64], "count": 12}, "3": {"resolution": [256, 64], "count": 12}}
    assert 0 <= info["mean_img_ar_error"] < 1


def test_values_the_user_sets_are_recorded_as_given(demo_job):
    cfg, plan = demo_job
    meta = demo_metadata(cfg.replace(clip_skip=2, max_token_length=225, noise_offset=0.05, min_timestep=100,
                                     multires_noise_iterations=6), plan)
    assert (meta["ss_clip_skip"], meta["modelspec.encoder_layer"], meta["ss_max_token_length"]) == ("2", "2", "225")
    assert (meta["ss_noise_offset"], meta["ss_multires_noise_iterations"]) == ("0.05", "6")
    assert meta["modelspec.timestep_range"] == "100,1000"


def test_sdxl_records_encoder_layer_only_when_clip_skip_is_given(demo_job):
    cfg, plan = demo_job
    sdxl = demo_metadata(cfg.replace(sdxl=True), plan)
    assert "modelspec.encoder_layer" not in sdxl and sdxl["modelspec.implementation"].startswith("https://")
    assert demo_metadata(cfg.replace(sdxl=True, clip_skip=2), plan)["modelspec.encoder_layer"] == "2"
