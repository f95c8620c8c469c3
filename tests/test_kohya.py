"""kohya_ss GUI JSON / sd-scripts TOML import and the sd-scripts export, on files shaped like the
ones kohya_ss really saves (its presets/lora/*.json and the keys of lora_gui.save_configuration)."""
from __future__ import annotations

import importlib.util
import json

import pytest
import tomllib

from tests.conftest import run_cli, write_config
from workbench.config.kohya import export_sd_scripts, import_file, import_sd_scripts, split_args
from workbench.config.schema import ConfigError, TrainConfig, load_toml, new_config

# kohya_ss v23-style LoRA config: numbers as strings and "", secrets filled in
STANDARD_SD15 = {
    "LoRA_type": "Standard", "adaptive_noise_scale": 0, "additional_parameters": "", "block_alphas": "",
    "block_dims": "", "block_lr_zero_threshold": "", "bucket_no_upscale": True, "bucket_reso_steps": 64,
    "cache_latents": True, "cache_latents_to_disk": False, "caption_dropout_every_n_epochs": 0.0,
    "caption_dropout_rate": 0, "caption_extension": ".txt", "clip_skip": "2", "color_aug": False, "conv_alpha": 1,
    "conv_dim": 1, "down_lr_weight": "", "enable_bucket": True, "epoch": 10, "factor": -1, "flip_aug": False,
    "full_fp16": False, "gradient_accumulation_steps": "1", "gradient_checkpointing": True, "keep_tokens": "1",
    "learning_rate": "0.0001", "logging_dir": "/data/log", "lora_network_weights": "", "lr_scheduler": "cosine",
    "lr_scheduler_num_cycles": "", "lr_scheduler_power": "", "lr_warmup": "10", "max_bucket_reso": 2048,
    "max_data_loader_n_workers": "0", "max_resolution": "512,512", "max_token_length": "75",
    "max_train_epochs": "", "max_train_steps": "", "mem_eff_attn": False, "mid_lr_weight": "", "min_bucket_reso": 256,
    "min_snr_gamma": 5, "mixed_precision": "bf16", "model_list": "custom", "module_dropout": 0,
    "multires_noise_discount": 0, "multires_noise_iterations": 0, "network_alpha": 16, "network_dim": 32,
    "network_dropout": 0, "no_token_padding": False, "noise_offset": "0.05", "noise_offset_type": "Original",
    "num_cpu_threads_per_process": 2, "optimizer": "AdamW8bit",
    "optimizer_args": "weight_decay=0.01 betas=(0.9, 0.99)", "output_dir": "/data/out", "output_name": "sks_dog",
    "persistent_data_loader_workers": False, "pretrained_model_name_or_path": "/models/v1-5-pruned.safetensors",
    "prior_loss_weight": 1.0, "random_crop": False, "rank_dropout": 0.1, "reg_data_dir": "",
    "resume": "", "sample_every_n_epochs": 0, "sample_every_n_steps": 0, "sample_prompts": "",
    "sample_sampler": "euler_a", "save_every_n_epochs": "2", "save_model_as": "safetensors", "save_precision": "fp16",
    "save_state": False, "scale_v_pred_loss_like_noise_pred": False, "scale_weight_norms": 0, "sdxl": False,
    "seed": "1234", "shuffle_caption": True, "stop_text_encoder_training": 0, "text_encoder_lr": "5e-05",
    "train_batch_size": 2, "train_data_dir": "/data/img", "training_comment": "trigger: sks dog",
    "unet_lr": "0.0001", "up_lr_weight": "", "use_wandb": False, "v2": False, "v_parameterization": False,
    "vae_batch_size": 0, "wandb_api_key": "0123456789abcdef-secret", "huggingface_token": "hf_secretTOKEN",
    "weighted_captions": False, "xformers": "xformers"}

# presets/lora/loha-sd15.json, as kohya_ss ships it (bucket_reso_steps 1, a folder-name caption trick)
LOHA_PRESET = {
    "LoRA_type": "LyCORIS/LoHa", "bucket_no_upscale": True, "bucket_reso_steps": 1, "cache_latents": True,
    "caption_extension": ".none-use-foldername", "clip_skip": "1", "conv_alpha": 4, "conv_dim": 8, "epoch": 2,
    "factor": -1, "gradient_accumulation_steps": 4, "learning_rate": 0.0001, "lr_scheduler": "cosine",
    "lr_scheduler_num_cycles": "", "lr_scheduler_power": "", "lr_warmup": 0, "max_resolution": "512,512",
    "max_train_epochs": "", "min_snr_gamma": 10, "mixed_precision": "bf16", "module_dropout": 0,
    "multires_noise_discount": 0.2, "multires_noise_iterations": 8, "network_alpha": 16, "network_dim": 32,
    "noise_offset": 0, "noise_offset_type": "Multires", "optimizer": "AdamW", "optimizer_args": "",
    "rank_dropout": 0, "save_every_n_epochs": 1, "save_precision": "fp16", "scale_weight_norms": 1, "seed": "",
    "stop_text_encoder_training": 0, "text_encoder_lr": 0.0001, "train_batch_size": 1, "unet_lr": 0.0001,
    "use_cp": True, "xformers": True}

# kohya_ss v24 SDXL: Max train steps left at its 1,600 default, text encoder LR 0, empty caption extension
SDXL_V24 = {
    "LoRA_type": "LyCORIS/LoKr", "LyCORIS_preset": "attn-mlp", "factor": 8, "decompose_both": False, "conv_dim": 0,
    "conv_alpha": 0, "epoch": 10, "max_train_epochs": 0, "max_train_steps": 1600, "lr_warmup": 10,
    "lr_warmup_steps": 0, "text_encoder_lr": 0, "unet_lr": 0.0001, "learning_rate": 0.0001,
    "caption_extension": "", "max_resolution": "1024,1024", "bucket_reso_steps": 32, "sdxl": True,
    "optimizer": "adafactor", "optimizer_args": 'scale_parameter=False "relative_step=False" warmup_init=False',
    "lr_scheduler": "constant_with_warmup", "seed": 0, "sdxl_no_half_vae": True, "huggingface_repo_id": "me/lora",
    "log_with": "wandb", "wandb_run_name": "run1", "network_dim": 16, "network_alpha": 8}

# an old kohya_ss config: use_8bit_adam instead of optimizer, lora_network_weights, LoRA_type "LoCon"
LEGACY = {"use_8bit_adam": True, "lora_network_weights": "/old/prev.safetensors", "LoRA_type": "LoCon",
          "conv_dim": 4, "conv_alpha": 2, "stop_text_encoder_training_pct": 40, "epoch": "3", "max_train_steps": "0",
          "text_encoder_lr": "", "unet_lr": ""}


def imported(tmp_path, data, name="cfg.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=2))
    return import_file(path)


def lines(result):
    return {r.key: (r.status, r.detail) for r in result.report}


def test_standard_sd15_gui_config(tmp_path):
    result = imported(tmp_path, STANDARD_SD15)
    cfg, report = result.config, lines(result)
    assert result.source == "kohya_ss GUI JSON"
    assert (cfg.resolution, cfg.optimizer_type, cfg.max_train_epochs, cfg.lr_warmup_steps) == ("512,512", "AdamW8bit", 10, 0.1)
    assert cfg.optimizer_args == ["weight_decay=0.01", "betas=(0.9, 0.99)"]
    assert (cfg.network_module, cfg.network_args) == ("networks.lora", ["rank_dropout=0.1"])
    assert (cfg.unet_lr, cfg.text_encoder_lr, cfg.network_train_unet_only) == (1e-4, 5e-5, False)
    assert (cfg.clip_skip, cfg.keep_tokens, cfg.seed, cfg.save_every_n_epochs, cfg.noise_offset) == (2, 1, 1234, 2, 0.05)
    assert (cfg.sample_every_n_epochs, cfg.lr_scheduler_num_cycles, cfg.lr_scheduler_power) == (None, 1, 1.0)
    assert (cfg.sample_every_n_steps, cfg.save_every_n_steps) == (None, None)          # the GUI's 0s
    assert cfg.max_token_length == 75 and "max_token_length" not in export_sd_scripts(cfg).values   # sd-scripts: None
    assert (cfg.network_dim, cfg.network_alpha, cfg.mixed_precision, cfg.bucket_no_upscale) == (32, 16.0, "bf16", True)
    assert report["max_resolution"][0] == "mapped" and "resolution" in report["max_resolution"][1]
    assert (cfg.xformers, cfg.sdpa, cfg.mem_eff_attn) == (True, False, False)     # the GUI's CrossAttention menu
    if importlib.util.find_spec("xformers") is None:      # the report says how to start it here
        assert "pip install xformers, or untick xformers to use sdpa" in result.text()
    assert cfg.weighted_captions is False and cfg.face_crop_aug_range == ""
    assert report["conv_dim"][0] == "ignored"                 # Standard LoRA: the GUI doesn't pass it
    assert report["lr_scheduler_num_cycles"][0] == "default"
    assert report["wandb_api_key"][0] == report["huggingface_token"][0] == "dropped"
    assert "mid_lr_weight" in result.text() and "secret" in result.text()


def test_secrets_never_reach_the_output_file_or_the_report(tmp_path):
    (tmp_path / "in.json").write_text(json.dumps(STANDARD_SD15))
    out = tmp_path / "out.toml"
    done = run_cli("import-kohya", tmp_path / "in.json", "-o", out)
    assert done.returncode == 0, done.stderr
    for secret in ("0123456789abcdef-secret", "hf_secretTOKEN"):
        assert secret not in out.read_text() and secret not in done.stdout
    assert "wandb_api_key" not in out.read_text() and "huggingface_token" not in out.read_text()
    assert "dropped  wandb_api_key: looks like a secret" in done.stdout
    assert load_toml(out)[0] == import_file(tmp_path / "in.json").config


def test_loha_preset(tmp_path):
    result = imported(tmp_path, LOHA_PRESET)
    cfg, report = result.config, lines(result)
    assert cfg.network_module == "lycoris.kohya"
    assert cfg.network_args == ["algo=loha", "conv_dim=8", "conv_alpha=4"]
    assert report["use_cp"][0] == "ignored"                    # a LoKr option, not one lycoris' LoHa reads here
    assert (cfg.max_train_epochs, cfg.seed, cfg.lr_warmup_steps) == (2, None, 0.0)
    assert cfg.caption_extension == ".none-use-foldername" and cfg.bucket_reso_steps == 1
    assert (cfg.multires_noise_iterations, cfg.multires_noise_discount, cfg.noise_offset) == (8, 0.2, 0.0)
    assert report["noise_offset"] == ("ignored", "noise_offset_type is Multires: the kohya_ss GUI does not pass it")
    from workbench.config.validate import validate
    assert any(f.field == "bucket_reso_steps" and f.level == "error" for f in validate(cfg))


def test_sdxl_v24_steps_default_warmup_unet_only_and_empty_caption_extension(tmp_path):
    result = imported(tmp_path, SDXL_V24)
    cfg, report = result.config, lines(result)
    assert (cfg.max_train_steps, cfg.max_train_epochs) == (1600, None)
    assert "1,600 is the kohya_ss GUI's default" in report["max_train_steps"][1]
    assert (cfg.text_encoder_lr, cfg.unet_lr, cfg.network_train_unet_only) == (0.0, 1e-4, True)
    assert cfg.caption_extension == ".caption" and "sd-scripts' default .caption" in report["caption_extension"][1]
    assert cfg.network_args == ["algo=lokr", "preset=attn-mlp", "factor=8"]
    assert (cfg.optimizer_type, cfg.lr_warmup_steps, cfg.sdxl, cfg.seed) == ("Adafactor", 0.1, True, None)
    assert cfg.optimizer_args == ["scale_parameter=False", "relative_step=False", "warmup_init=False"]
    assert report["huggingface_repo_id"][0] == "ignored"
    assert report["log_with"][0] == "mapped" and cfg.log_with == "wandb" and cfg.wandb_run_name == "run1"


def test_legacy_keys(tmp_path):
    result = imported(tmp_path, LEGACY)
    cfg = result.config
    assert (cfg.optimizer_type, cfg.network_weights, cfg.stop_text_encoder_training) == (
        "AdamW8bit", "/old/prev.safetensors", 40)
    assert cfg.network_module == "lycoris.kohya" and cfg.network_args == ["algo=locon", "conv_dim=4", "conv_alpha=2"]
    assert (cfg.max_train_epochs, cfg.unet_lr, cfg.text_encoder_lr) == (3, None, None)
    assert "ignores it for LoRA" in lines(result)["stop_text_encoder_training_pct"][1]


def test_unsupported_network_type_is_kept_for_check_to_refuse(tmp_path):
    cfg = imported(tmp_path, {"LoRA_type": "Kohya DyLoRA", "epoch": 1}).config
    assert cfg.network_module == "networks.dylora"
    from workbench.config.validate import validate
    assert any(f.field == "network_module" and "networks.lora" in f.message for f in validate(cfg))


@pytest.mark.parametrize("backend, compiles", [("no", False), ("inductor", True), ("AOT_EAGER", True), ("tvm", False)])
def test_the_guis_accelerate_dynamo_backend_becomes_torch_compile(tmp_path, backend, compiles):
    result = imported(tmp_path, {"epoch": 1, "dynamo_backend": backend, "dynamo_mode": "default"})
    cfg, report = result.config, lines(result)
    assert cfg.torch_compile is compiles
    assert cfg.dynamo_backend == (backend.lower() if compiles else "inductor")
    if backend == "tvm":
        assert report["dynamo_backend"][0] == "ignored" and "shipped with PyTorch" in report["dynamo_backend"][1]
    assert report["dynamo_mode"][0] == "ignored"


def test_the_guis_caption_dropouts_import(tmp_path):
    cfg = imported(tmp_path, {"epoch": 1, "caption_dropout_rate": "0.05", "caption_dropout_every_n_epochs": 2.0,
                              "caption_tag_dropout_rate": 0.1}).config
    assert (cfg.caption_dropout_rate, cfg.caption_dropout_every_n_epochs, cfg.caption_tag_dropout_rate) == (0.05, 2, 0.1)
    assert imported(tmp_path, STANDARD_SD15).config.caption_dropout_every_n_epochs == 0


def test_the_guis_loss_saving_and_noise_keys_import(tmp_path):
    """kohya_ss lora_gui saves these under sd-scripts' names; 0 in a save_last_n_* box means off."""
    gui = {"epoch": 1, "loss_type": "smooth_l1", "huber_schedule": "exponential", "huber_c": "0.2", "huber_scale": 1.5,
           "save_last_n_epochs": 2, "save_last_n_epochs_state": 0, "save_last_n_steps": "300",
           "save_last_n_steps_state": 0, "save_state_on_train_end": True, "noise_offset_type": "Original",
           "noise_offset": 0.05, "noise_offset_random_strength": True, "adaptive_noise_scale": 0.01,
           "ip_noise_gamma": 0.1, "ip_noise_gamma_random_strength": True}
    result = imported(tmp_path, gui)
    cfg = result.config
    assert (cfg.loss_type, cfg.huber_schedule, cfg.huber_c, cfg.huber_scale) == ("smooth_l1", "exponential", 0.2, 1.5)
    assert (cfg.save_last_n_epochs, cfg.save_last_n_epochs_state, cfg.save_last_n_steps) == (2, None, 300)
    assert cfg.save_last_n_steps_state is None and cfg.save_state_on_train_end
    assert (cfg.noise_offset_random_strength, cfg.adaptive_noise_scale, cfg.ip_noise_gamma_random_strength) == \
        (True, 0.01, True)
    assert all(lines(result)[k][0] == "mapped" for k in ("loss_type", "huber_c", "save_last_n_epochs"))
    multires = imported(tmp_path, {**gui, "noise_offset_type": "Multires"})
    assert multires.config.adaptive_noise_scale is None and not multires.config.noise_offset_random_strength
    assert lines(multires)["adaptive_noise_scale"][0] == "ignored"
    assert imported(tmp_path, {**gui, "adaptive_noise_scale": 0}).config.adaptive_noise_scale is None


def test_the_guis_vae_keys(tmp_path):
    sdxl = imported(tmp_path, {"epoch": 1, "sdxl": True, "sdxl_no_half_vae": True, "vae_batch_size": 0,
                               "vae": "/models/sdxl_vae.safetensors"}).config
    assert (sdxl.no_half_vae, sdxl.vae_batch_size, sdxl.vae) == (True, 1, "/models/sdxl_vae.safetensors")
    sd1 = imported(tmp_path, {"epoch": 1, "sdxl": False, "sdxl_no_half_vae": True, "vae_batch_size": "4"}).config
    assert (sd1.no_half_vae, sd1.vae_batch_size) == (False, 4)        # the GUI passes it for SDXL only


def test_the_guis_logging_keys_import_and_the_api_key_never_does(tmp_path):
    gui = {"epoch": 1, "log_with": "wandb", "wandb_run_name": "run-7", "log_tracker_name": "loras",
           "log_prefix": "sks-", "wandb_api_key": "0123456789abcdef0123456789abcdef01234567"}
    result = imported(tmp_path, gui)
    cfg = result.config
    assert (cfg.log_with, cfg.wandb_run_name, cfg.log_tracker_name, cfg.log_prefix) == \
        ("wandb", "run-7", "loras", "sks-")
    assert lines(result)["wandb_api_key"][0] == "dropped"
    assert "0123456789abcdef" not in json.dumps(cfg.to_dict()) + result.text()
    old = imported(tmp_path, {"epoch": 1, "use_wandb": True}).config
    assert old.log_with == "wandb"
    assert "log_with" not in export_sd_scripts(TrainConfig(logging_dir="/logs")).values      # tensorboard: implied
    assert export_sd_scripts(cfg).values["log_with"] == "wandb"


def test_export_writes_dynamo_backend_only_with_torch_compile():
    assert "dynamo_backend" not in export_sd_scripts(TrainConfig()).values
    on = export_sd_scripts(TrainConfig(torch_compile=True)).values
    assert (on["torch_compile"], on["dynamo_backend"]) == (True, "inductor")


def test_split_args_keeps_quoted_and_spaced_values():
    assert split_args('a=1 "b=two words" c=(0.9, 0.99) d=x') == ["a=1", "b=two words", "c=(0.9, 0.99)", "d=x"]
    assert split_args("") == []


def test_sd_scripts_toml_uses_sd_scripts_defaults_for_missing_keys(tmp_path):
    path = write_config(tmp_path / "sd.toml", model={"pretrained_model_name_or_path": "/m.safetensors"},
                        dataset={"train_data_dir": "/img", "resolution": "768,768"},
                        training={"network_module": "networks.lora", "network_dim": 16, "text_encoder_lr": [3e-5],
                                  "caption_extention": ".cap", "use_8bit_adam": True, "wandb_api_key": "k"})
    result = import_file(path)
    cfg, report = result.config, lines(result)
    assert result.source == "sd-scripts TOML"
    assert (cfg.caption_extension, cfg.enable_bucket, cfg.lr_scheduler, cfg.mixed_precision) == (".cap", False, "constant", "no")
    assert (cfg.max_train_epochs, cfg.max_train_steps, cfg.optimizer_type) == (None, 1600, "AdamW8bit")
    assert (cfg.text_encoder_lr, cfg.network_dim, cfg.max_bucket_reso, cfg.lr_warmup_steps) == (3e-5, 16, 1024, 0)
    assert report["wandb_api_key"][0] == "dropped" and "hidden 1,600" in report["max_train_steps"][1]


def test_our_own_toml_imports_unchanged(tmp_path):
    from workbench.config.schema import save_toml
    cfg = TrainConfig(network_dim=12, seed=7)
    assert import_file(save_toml(cfg, tmp_path / "ours.toml")).config == cfg


def test_refuses_to_overwrite_without_force(tmp_path):
    (tmp_path / "in.json").write_text(json.dumps(LOHA_PRESET))
    out = tmp_path / "out.toml"
    out.write_text("keep me")
    done = run_cli("import-kohya", tmp_path / "in.json", "-o", out)
    assert done.returncode == 1 and "already exists" in done.stderr and out.read_text() == "keep me"
    assert run_cli("import-kohya", tmp_path / "in.json", "-o", out, "--force").returncode == 0
    assert load_toml(out)[0].network_module == "lycoris.kohya"


def test_bad_input_files_are_one_line_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "types.json").write_text(json.dumps({"train_batch_size": "two"}))
    for name, words in [("bad.json", "not valid JSON"), ("list.json", "one JSON object"),
                        ("types.json", "train_batch_size: 'two' is not a whole number"), ("none.json", "not found")]:
        with pytest.raises(ConfigError, match=words):
            import_file(tmp_path / name)


# ---------------------------------------------------------------- export

# the argument names of sd-scripts' train_network.py / sdxl_train_network.py parsers, from
# library/train_util.py (add_sd_models_arguments, add_optimizer_arguments, add_training_arguments,
# add_dataset_arguments), custom_train_functions.add_custom_train_arguments and train_network.setup_parser
SD_SCRIPTS_ARGS = set("""
v2 v_parameterization pretrained_model_name_or_path tokenizer_cache_dir
optimizer_type use_8bit_adam use_lion_optimizer learning_rate max_grad_norm optimizer_args lr_scheduler_type
lr_scheduler_args lr_scheduler lr_warmup_steps lr_scheduler_num_cycles lr_scheduler_power
output_dir output_name save_precision save_every_n_epochs save_every_n_steps save_n_epoch_ratio save_last_n_epochs
save_state resume train_batch_size max_token_length mem_eff_attn xformers sdpa vae max_train_steps max_train_epochs
max_data_loader_n_workers persistent_data_loader_workers seed gradient_checkpointing gradient_accumulation_steps
mixed_precision full_fp16 full_bf16 clip_skip logging_dir log_with noise_offset multires_noise_iterations
multires_noise_discount adaptive_noise_scale min_timestep max_timestep sample_every_n_steps sample_every_n_epochs
ip_noise_gamma
sample_prompts sample_sampler config_file prior_loss_weight
train_data_dir shuffle_caption caption_extension keep_tokens color_aug flip_aug random_crop resolution
cache_latents vae_batch_size cache_latents_to_disk enable_bucket min_bucket_reso max_bucket_reso bucket_reso_steps
bucket_no_upscale caption_dropout_rate reg_data_dir
min_snr_gamma scale_v_pred_loss_like_noise_pred v_pred_like_loss debiased_estimation_loss weighted_captions
no_metadata save_model_as unet_lr text_encoder_lr network_weights network_module network_dim network_alpha
network_dropout network_args network_train_unet_only network_train_text_encoder_only training_comment
dim_from_weights scale_weight_norms base_weights no_half_vae torch_compile dynamo_backend
caption_dropout_every_n_epochs caption_tag_dropout_rate
loss_type huber_schedule huber_c huber_scale save_last_n_epochs_state save_last_n_steps save_last_n_steps_state
log_prefix log_tracker_name wandb_run_name fp8_base fp8_base_unet save_state_on_train_end
noise_offset_random_strength ip_noise_gamma_random_strength zero_terminal_snr
validation_split validation_seed validate_every_n_epochs validate_every_n_steps max_validation_steps
keep_tokens_separator caption_prefix caption_suffix token_warmup_min token_warmup_step
masked_loss conditioning_data_dir alpha_mask face_crop_aug_range
""".split())
SDXL_ONLY_ARGS = {"cache_text_encoder_outputs"}     # sdxl_train_util.add_sdxl_training_arguments


def everything_set(**changes) -> TrainConfig:
    """A config with every field away from its empty/false default, so every key is exported."""
    return TrainConfig(
        pretrained_model_name_or_path="/m/sd15.safetensors", v2=True, v_parameterization=True, train_data_dir="/img",
        reg_data_dir="/reg", output_dir="/out", output_name="x", logging_dir="/log", training_comment="c",
        train_batch_size=2, max_train_epochs=None, max_train_steps=900, save_every_n_epochs=3, seed=5,
        cache_latents_to_disk=True, unet_lr=2e-4, text_encoder_lr=5e-5, lr_scheduler="linear",
        lr_warmup_steps=0.1, optimizer_args=["weight_decay=0.1"], network_module="lycoris.kohya",
        network_args=["algo=locon"], network_dropout=0.1, network_weights="/w.safetensors", dim_from_weights=True,
        network_train_unet_only=True, scale_weight_norms=1.0, gradient_checkpointing=True, clip_skip=2,
        noise_offset=0.05, min_snr_gamma=5.0, shuffle_caption=True, keep_tokens=1, flip_aug=True, save_state=True,
        resume="/state", sample_prompts="/p.txt", sample_every_n_epochs=1, bucket_no_upscale=True, torch_compile=True,
        dynamo_backend="aot_eager", caption_dropout_rate=0.1, caption_dropout_every_n_epochs=3,
        caption_tag_dropout_rate=0.2, save_every_n_steps=100, sample_every_n_steps=50, max_token_length=225,
        multires_noise_iterations=6, multires_noise_discount=0.2, ip_noise_gamma=0.1, min_timestep=100, max_timestep=900,
        debiased_estimation_loss=True, scale_v_pred_loss_like_noise_pred=True, v_pred_like_loss=0.1,
        loss_type="huber", huber_schedule="exponential", huber_c=0.2, huber_scale=2.0, save_last_n_epochs=2,
        save_last_n_epochs_state=1, save_last_n_steps=300, save_last_n_steps_state=200, save_state_on_train_end=True,
        noise_offset_random_strength=True, adaptive_noise_scale=0.01, zero_terminal_snr=True,
        ip_noise_gamma_random_strength=True, validation_split=0.1, validation_seed=3, validate_every_n_epochs=2,
        validate_every_n_steps=50, max_validation_steps=4, keep_tokens_separator="|||", caption_prefix="a",
        caption_suffix="z", token_warmup_step=0.2, token_warmup_min=2, color_aug=True, random_crop=True,
        vae="/vae.safetensors", vae_batch_size=2, fp8_base=True, fp8_base_unet=True, full_bf16=True,
        full_fp16=True, persistent_data_loader_workers=True, log_with="all", log_prefix="p-", log_tracker_name="proj", wandb_run_name="r1",
        masked_loss=True, alpha_mask=True, conditioning_data_dir="/masks", face_crop_aug_range="2.0,4.0",
        weighted_captions=True, mem_eff_attn=True, xformers=True, **changes)


def test_every_exported_key_is_a_real_sd_scripts_argument():
    job = export_sd_scripts(everything_set(stop_text_encoder_training=30, cache_text_encoder_outputs=True))
    assert set(job.values) <= SD_SCRIPTS_ARGS, set(job.values) - SD_SCRIPTS_ARGS
    left_out = set(TrainConfig.__dataclass_fields__) - set(job.values)
    assert left_out == {"sdxl", "num_cpu_threads_per_process", "stop_text_encoder_training", "max_train_epochs",
                        "cache_text_encoder_outputs", "fast_path"}
    assert any("cache_text_encoder_outputs left out: train_network.py has it for SDXL only" in n for n in job.notes)
    sdxl = export_sd_scripts(everything_set(cache_text_encoder_outputs=True).replace(sdxl=True, v2=False,
                                                                                   v_parameterization=False))
    assert sdxl.values["cache_text_encoder_outputs"] is True and set(sdxl.values) <= SD_SCRIPTS_ARGS | SDXL_ONLY_ARGS
    assert job.values["max_train_steps"] == 900 and "max_train_epochs" not in job.values
    assert tomllib.loads(job.toml()) == job.values


def test_export_then_import_gives_the_same_job():
    cfg = everything_set()
    again, _ = import_sd_scripts(tomllib.loads(export_sd_scripts(cfg).toml()))
    from workbench.config.schema import from_dict
    back = from_dict(again)[0]
    assert back.replace(num_cpu_threads_per_process=cfg.num_cpu_threads_per_process) == cfg


def test_export_script_command_and_notes():
    sd1 = export_sd_scripts(new_config(lr_scheduler="constant", lr_warmup_steps=0.1, text_encoder_lr=0.0,
                                        num_cpu_threads_per_process=4))
    assert sd1.script == "train_network.py" and "lr_warmup_steps" not in sd1.values
    assert sd1.values["network_train_unet_only"] is True and sd1.values["sdpa"] is True
    assert sd1.command("my job.toml") == ("accelerate launch --num_cpu_threads_per_process 4 train_network.py "
                                           "--config_file 'my job.toml'")
    assert any("refuses a warmup with constant" in n for n in sd1.notes)
    sdxl = export_sd_scripts(new_config(sdxl=True, resolution="1024,1024", bucket_reso_steps=32))
    assert sdxl.script == "sdxl_train_network.py" and "sdxl" not in sdxl.values and "v2" not in sdxl.values
    assert sdxl.values["max_train_epochs"] == 1 and sdxl.values["caption_extension"] == ".txt"


def test_export_cli_prints_or_writes_and_refuses_to_overwrite(tmp_path):
    config = write_config(tmp_path / "c.toml", output_name="dog", sdxl=True, resolution="1024,1024",
                          bucket_reso_steps=32, max_train_epochs=1)
    printed = run_cli("export", config)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("# accelerate launch --num_cpu_threads_per_process 2 sdxl_train_network.py")
    assert tomllib.loads(printed.stdout)["output_name"] == "dog"
    written = run_cli("export", config, "-o", tmp_path / "job")
    path = tmp_path / "job" / "dog.sd-scripts.toml"
    assert written.returncode == 0 and str(path) in written.stdout and tomllib.loads(path.read_text())["sdpa"]
    again = run_cli("export", config, "-o", tmp_path / "job")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_gui_json_keeps_the_mask_face_caption_and_attention_options(tmp_path):
    """kohya_ss saves masked_loss, weighted_captions, mem_eff_attn as they are and its CrossAttention menu
    as "xformers": "xformers" | "sdpa" | "none"; alpha_mask / conditioning_data_dir / face_crop_aug_range
    are mapped by their sd-scripts names wherever a file has them."""
    masks = tmp_path / "masks"
    masks.mkdir()
    gui = {"masked_loss": True, "alpha_mask": True, "conditioning_data_dir": str(masks), "weighted_captions": True,
           "face_crop_aug_range": "2.0,4.0", "mem_eff_attn": True, "xformers": "sdpa", "epoch": 1}
    cfg = imported(tmp_path, gui).config
    assert (cfg.masked_loss, cfg.alpha_mask, cfg.conditioning_data_dir, cfg.weighted_captions) == (
        True, True, str(masks), True)
    assert (cfg.face_crop_aug_range, cfg.mem_eff_attn, cfg.xformers, cfg.sdpa) == ("2.0,4.0", True, False, True)
    none = imported(tmp_path, {"xformers": "none", "epoch": 1}, "none.json")
    assert (none.config.sdpa, none.config.xformers) == (False, False)
    assert "plain attention" in lines(none)["xformers"][1]
    job = export_sd_scripts(cfg)                         # and out again under the same names
    assert {k: job.values[k] for k in ("masked_loss", "alpha_mask", "weighted_captions", "face_crop_aug_range",
                                       "mem_eff_attn", "sdpa")} == {
        "masked_loss": True, "alpha_mask": True, "weighted_captions": True, "face_crop_aug_range": "2.0,4.0",
        "mem_eff_attn": True, "sdpa": True}
    assert any("conditioning_data_dir: train_network.py reads it only from a dataset_config" in n for n in job.notes)
    assert any("plain attention" in n for n in export_sd_scripts(none.config).notes)
    toml_cfg = import_sd_scripts({"masked_loss": True, "alpha_mask": True})[0]
    assert toml_cfg["sdpa"] is False                     # not in an sd-scripts TOML: its plain attention
