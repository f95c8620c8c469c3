"""The typed config: fields, help, defaults, TOML in and out."""
from __future__ import annotations

import pytest
import tomllib

from tests.conftest import write_config
from workbench.config.schema import (
    FIELDS,
    GROUPS,
    ConfigError,
    TrainConfig,
    field_help,
    fields_in_group,
    from_dict,
    load_toml,
    new_config,
    parse_resolution,
    save_toml,
    to_toml,
)

# the issue's list of kohya_ss LoRA-tab options, by sd-scripts name
ISSUE_KEYS = """pretrained_model_name_or_path v2 v_parameterization sdxl save_model_as train_data_dir reg_data_dir
output_dir output_name logging_dir training_comment network_module network_weights dim_from_weights train_batch_size
max_train_epochs max_train_steps save_every_n_epochs caption_extension mixed_precision save_precision
num_cpu_threads_per_process seed cache_latents cache_latents_to_disk learning_rate lr_scheduler lr_warmup_steps
optimizer_type lr_scheduler_num_cycles lr_scheduler_power optimizer_args resolution stop_text_encoder_training
enable_bucket min_bucket_reso max_bucket_reso bucket_reso_steps bucket_no_upscale text_encoder_lr unet_lr network_dim
network_alpha scale_weight_norms network_dropout network_args network_train_unet_only gradient_accumulation_steps
gradient_checkpointing max_grad_norm clip_skip noise_offset min_snr_gamma prior_loss_weight shuffle_caption
keep_tokens sample_prompts sample_every_n_epochs save_state resume""".split()

# kohya_ss LoRA tab defaults (kohya_gui: lora_gui.py, class_basic_training.py, class_advanced_training.py),
# except where README "Where we differ from kohya_ss on purpose" says why
KOHYA_DEFAULTS = dict(train_batch_size=1, max_train_epochs=1, save_every_n_epochs=1, mixed_precision="fp16",
                      save_precision="fp16", num_cpu_threads_per_process=2, cache_latents=True,
                      cache_latents_to_disk=False, learning_rate=1e-4, lr_scheduler="cosine", lr_warmup_steps=0.1,
                      optimizer_type="AdamW8bit", resolution="512,512", enable_bucket=True, min_bucket_reso=256,
                      max_bucket_reso=2048, bucket_reso_steps=64, network_dim=8, network_alpha=1.0,
                      caption_extension=".txt", save_model_as="safetensors", output_name="last", clip_skip=1,
                      max_grad_norm=1.0, prior_loss_weight=1.0, gradient_accumulation_steps=1, keep_tokens=0,
                      sample_sampler="euler_a", lr_scheduler_num_cycles=1, lr_scheduler_power=1.0)
DIFFERENT_ON_PURPOSE = dict(max_train_steps=0, bucket_no_upscale=False, text_encoder_lr=None)


def test_every_issue_option_is_a_field_with_one_line_help_and_a_group():
    assert set(ISSUE_KEYS) <= set(FIELDS)
    for name in FIELDS:
        text = field_help(name)
        assert text and "\n" not in text and len(text) < 200, name
        assert FIELDS[name].metadata["group"] in GROUPS
    assert sum(len(fields_in_group(g)) for g in GROUPS) == len(FIELDS)


def test_defaults_are_kohya_ss_except_the_documented_traps():
    cfg = new_config()
    assert {k: getattr(cfg, k) for k in KOHYA_DEFAULTS} == KOHYA_DEFAULTS
    assert {k: getattr(cfg, k) for k in DIFFERENT_ON_PURPOSE} == DIFFERENT_ON_PURPOSE
    assert "1,600" in field_help("max_train_steps") and "kohya_ss" in field_help("bucket_no_upscale")
    assert ".caption" in field_help("caption_extension") and "UNet only" in field_help("text_encoder_lr")


@pytest.mark.parametrize("grouped", [False, True])
def test_toml_round_trip_keeps_every_value_including_empty_ones(tmp_path, grouped):
    cfg = TrainConfig(pretrained_model_name_or_path="/m/model.safetensors", sdxl=True, seed=None, max_train_epochs=None,
                      max_train_steps=1234, lr_warmup_steps=50, unet_lr=2e-4, text_encoder_lr=0.0,
                      network_args=["conv_dim=4", "algo=locon"], optimizer_args=["betas=(0.9, 0.99)"],
                      training_comment='quote " and ünïcode', sample_every_n_epochs=None, resolution="1024,768")
    path = save_toml(cfg, tmp_path / "c.toml", grouped=grouped)
    again, unknown = load_toml(path)
    assert again == cfg and unknown == []
    ratio = cfg.replace(lr_warmup_steps=0.25)
    assert from_dict(tomllib.loads(to_toml(ratio, grouped)))[0] == ratio


def test_tables_only_group_and_unknown_keys_are_reported(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('train_batch_size = 3\n[model]\nv2 = true\n[training.optim]\nlearning_rate = 5e-5\ntypo_key = 1\n'
                    '[network_args]\nconv_dim = 4\n')
    cfg, unknown = load_toml(path)
    assert (cfg.train_batch_size, cfg.v2, cfg.learning_rate) == (3, True, 5e-5)
    assert cfg.network_args == ["conv_dim=4"]
    assert unknown == ["typo_key"]


def test_a_key_in_two_tables_is_an_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[a]\nseed = 1\n[b]\nseed = 2\n")
    with pytest.raises(ConfigError, match=r"c\.toml: seed: given twice \(in \[a\] and \[b\]\)"):
        load_toml(path)


@pytest.mark.parametrize("key,value,words", [
    ("train_batch_size", "four", "not a whole number"), ("train_batch_size", 2.5, "not a whole number"),
    ("learning_rate", "fast", "not a number"), ("cache_latents", "maybe", "not true or false"),
    ("network_args", [{"a": 1}], "not a list"), ("output_name", ["a"], "not a text"),
    ("resolution", "big", 'not "W,H"'), ("lr_warmup_steps", 2.5, "whole steps")])
def test_wrong_types_name_the_key_and_the_file(tmp_path, key, value, words):
    path = write_config(tmp_path / "bad.toml", **{key: value})
    with pytest.raises(ConfigError) as err:
        load_toml(path)
    assert str(err.value).startswith(f"{path}: {key}") and words in str(err.value)
    assert "\n" not in str(err.value)


def test_values_kohya_users_write_are_accepted():
    cfg, _ = from_dict({"resolution": 768, "clip_skip": "2", "optimizer_args": "weight_decay=0.01 d0=1e-4",
                        "seed": "", "shuffle_caption": "true", "lr_warmup_steps": 100.0, "max_train_epochs": ""})
    assert (cfg.resolution, cfg.clip_skip, cfg.seed, cfg.shuffle_caption) == ("768,768", 2, None, True)
    assert cfg.optimizer_args == ["weight_decay=0.01", "d0=1e-4"]
    assert cfg.lr_warmup_steps == 100 and isinstance(cfg.lr_warmup_steps, int) and cfg.max_train_epochs is None
    assert parse_resolution("1024x768") == (1024, 768) and parse_resolution([640, 480]) == (640, 480)


def test_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_toml(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a folder"):
        load_toml(tmp_path)
    (tmp_path / "broken.toml").write_text("train_batch_size = = 2\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_toml(tmp_path / "broken.toml")
    (tmp_path / "newer.toml").write_text("config_version = 99\n")
    with pytest.raises(ConfigError, match="newer workbench"):
        load_toml(tmp_path / "newer.toml")


def test_derived_values():
    cfg = TrainConfig(learning_rate=1e-4, unet_lr=None, text_encoder_lr=5e-5, network_args=["conv_dim = 8"])
    assert (cfg.unet_lr_value(), cfg.text_encoder_lr_value(), cfg.trains_text_encoder()) == (1e-4, 5e-5, True)
    assert not cfg.replace(text_encoder_lr=0.0).trains_text_encoder()
    assert not cfg.replace(network_train_unet_only=True).trains_text_encoder()
    assert cfg.network_args_dict() == {"conv_dim": "8"}
    assert [TrainConfig(v2=True).model_family(), TrainConfig(sdxl=True).model_family()] == ["sd2", "sdxl"]
