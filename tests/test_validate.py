"""Each validation rule: the finding it gives (level, field, words) and the config it leaves alone."""
from __future__ import annotations

import pytest

from workbench.config.schema import OPTIMIZERS, SCHEDULERS, TrainConfig, new_config
from workbench.config.validate import errors, validate

CLEAN = new_config(optimizer_type="AdamW")


def found(cfg, field=None, level=None):
    return [f for f in validate(cfg) if (field is None or f.field == field) and (level is None or f.level == level)]


def test_the_defaults_are_clean():
    assert validate(CLEAN) == []
    assert errors(validate(new_config())) == []


def test_alpha_above_rank_is_a_warning():
    [f] = found(CLEAN.replace(network_dim=8, network_alpha=16), "network_alpha")
    assert f.level == "warning" and "16 is above rank 8" in f.message and "2×" in f.message
    assert found(CLEAN.replace(network_dim=8, network_alpha=8), "network_alpha") == []


@pytest.mark.parametrize("sdxl,steps,ok", [(False, 64, True), (False, 128, True), (False, 32, False),
                                           (False, 96, False), (True, 32, True), (True, 96, True), (True, 48, False)])
def test_bucket_steps_multiple_of_64_for_sd1_sd2_and_32_for_sdxl(sdxl, steps, ok):
    cfg = CLEAN.replace(sdxl=sdxl, bucket_reso_steps=steps, resolution="1024,1024" if sdxl else "512,512")
    got = found(cfg, "bucket_reso_steps", "error")
    assert (got == []) == ok
    if not ok:
        assert f"multiple of {32 if sdxl else 64}" in got[0].message
    assert found(cfg.replace(enable_bucket=False), "bucket_reso_steps") == []   # no buckets: not used


@pytest.mark.parametrize("no_upscale", [False, True])
def test_max_bucket_reso_covers_each_side_of_the_resolution(no_upscale):
    cfg = CLEAN.replace(resolution="768,512", max_bucket_reso=704, bucket_no_upscale=no_upscale)
    [f] = found(cfg, "max_bucket_reso")
    assert f.level == "error" and "at least 768" in f.message
    assert found(cfg.replace(max_bucket_reso=768), "max_bucket_reso") == []
    [f] = found(cfg.replace(max_bucket_reso=1024, min_bucket_reso=576), "min_bucket_reso")
    assert "lower it to 512" in f.message


@pytest.mark.parametrize("name", ["train_batch_size", "gradient_accumulation_steps", "network_dim",
                                  "max_train_epochs", "num_cpu_threads_per_process", "lr_scheduler_num_cycles"])
def test_counts_must_be_positive(name):
    [f] = found(CLEAN.replace(**{name: 0}), name)
    assert f.level == "error" and "below the minimum 1" in f.message


def test_warmup_on_constant_is_ignored_with_a_visible_note():
    [f] = found(CLEAN.replace(lr_scheduler="constant", lr_warmup_steps=0.1), "lr_warmup_steps")
    assert f.level == "note" and "ignored" in f.message and "constant_with_warmup" in f.message
    assert found(CLEAN.replace(lr_scheduler="constant", lr_warmup_steps=0), "lr_warmup_steps") == []
    assert found(CLEAN.replace(lr_scheduler="cosine", lr_warmup_steps=0.1), "lr_warmup_steps") == []


@pytest.mark.parametrize("name,value,valid", [("lr_scheduler", "cosine_annealing", SCHEDULERS),
                                              ("optimizer_type", "AdamW32", OPTIMIZERS)])
def test_unknown_scheduler_or_optimizer_lists_the_valid_ones(name, value, valid):
    [f] = found(CLEAN.replace(**{name: value}), name)
    assert f.level == "error" and f"unknown {value!r}" in f.message
    assert all(v in f.message for v in valid)


def test_a_wrong_letter_case_gets_a_did_you_mean():
    [f] = found(CLEAN.replace(optimizer_type="adamw8bit"), "optimizer_type")
    assert "did you mean AdamW8bit?" in f.message


def test_adafactor_scheduler_needs_the_adafactor_optimizer():
    [f] = found(CLEAN.replace(lr_scheduler="adafactor", optimizer_type="AdamW"), "lr_scheduler")
    assert f.level == "error" and "Adafactor" in f.message
    assert found(CLEAN.replace(lr_scheduler="adafactor", optimizer_type="Adafactor"), "lr_scheduler") == []


def test_no_epochs_and_no_steps_names_the_hidden_default():
    [f] = found(CLEAN.replace(max_train_epochs=None, max_train_steps=0), "max_train_epochs")
    assert f.level == "error" and "1,600" in f.message
    assert found(CLEAN.replace(max_train_epochs=None, max_train_steps=500), "max_train_epochs") == []


def test_model_flags_and_network_rules():
    assert found(CLEAN.replace(sdxl=True, v2=True, resolution="1024,1024"), "v2", "error")
    assert found(CLEAN.replace(v_parameterization=True), "v_parameterization", "warning")
    assert found(CLEAN.replace(dim_from_weights=True), "dim_from_weights", "error")
    assert "algo=locon" in found(CLEAN.replace(network_module="lycoris.kohya"), "network_args")[0].message
    assert found(CLEAN.replace(network_args=["conv_dim"]), "network_args", "error")
    assert found(CLEAN.replace(resolution="500,512"), "resolution", "error")


def test_required_paths_only_when_asked():
    assert [f.field for f in validate(CLEAN, require_paths=True)] == [
        "pretrained_model_name_or_path", "train_data_dir", "output_dir"]


def test_bucket_range_rounding_and_sdxl_clip_skip_are_noted():
    from workbench.config.validate import validate
    notes = {f.field: f for f in validate(new_config(min_bucket_reso=200, max_bucket_reso=1000))}
    assert notes["min_bucket_reso"].level == "note" and "used as 192" in notes["min_bucket_reso"].message
    assert "used as 1024" in notes["max_bucket_reso"].message
    assert "min_bucket_reso" not in {f.field for f in validate(new_config())}
    sdxl = {f.field: f for f in validate(new_config(sdxl=True, bucket_reso_steps=32, clip_skip=2))}
    assert sdxl["clip_skip"].level == "note" and "no effect" in sdxl["clip_skip"].message
    assert "clip_skip" not in {f.field for f in validate(new_config(clip_skip=2))}


def test_sampling_without_prompts_warns_and_step_sampling_under_epochs_is_noted():
    [f] = found(CLEAN.replace(sample_every_n_steps=100), "sample_prompts")
    assert f.level == "warning" and "sample_every_n_steps is set but there is no prompt file" in f.message
    both = CLEAN.replace(sample_every_n_steps=100, sample_every_n_epochs=1, sample_prompts="/p.txt")
    [note] = found(both, "sample_every_n_steps")
    assert note.level == "note" and "sample_every_n_epochs is set and wins" in note.message
    assert found(both.replace(sample_every_n_epochs=None)) == []


def test_min_timestep_must_be_below_max_timestep():
    [f] = found(CLEAN.replace(min_timestep=500, max_timestep=500), "min_timestep")
    assert f.level == "error" and "must be below max_timestep 500" in f.message
    assert found(CLEAN.replace(min_timestep=100, max_timestep=900)) == []


def test_cached_text_encoder_outputs_need_a_frozen_text_encoder_and_fixed_captions():
    cached = new_config(cache_text_encoder_outputs=True, network_train_unet_only=True)
    assert errors(validate(cached)) == []
    assert errors(validate(cached.replace(caption_dropout_every_n_epochs=3))) == []      # "" is cached too
    trains_te = errors(validate(cached.replace(network_train_unet_only=False)))
    assert [f.field for f in trains_te] == ["cache_text_encoder_outputs"] and "network_train_unet_only" in \
        trains_te[0].message
    for key, value in (("shuffle_caption", True), ("caption_dropout_rate", 0.1), ("caption_tag_dropout_rate", 0.2)):
        found = errors(validate(cached.replace(**{key: value})))
        assert len(found) == 1 and key in found[0].message and "sd-scripts refuses" in found[0].message


def test_check_notes_a_keep_tokens_separator_that_nothing_reads():
    notes = [f for f in validate(TrainConfig(max_train_epochs=1, keep_tokens_separator="|||"))
             if f.field == "keep_tokens_separator"]
    assert notes and "stays in the captions" in notes[0].message
    assert not [f for f in validate(TrainConfig(max_train_epochs=1, keep_tokens_separator="|||", shuffle_caption=True))
                if f.field == "keep_tokens_separator"]


def test_fp8_and_full_half_precision_need_their_mixed_precision():
    def found(**changes):
        return {f.field: f.level for f in validate(TrainConfig(max_train_epochs=1, **changes)) if f.level == "error"}
    assert found(fp8_base=True, mixed_precision="no") == {"fp8_base": "error"}
    assert found(fp8_base_unet=True, mixed_precision="bf16") == {}
    assert found(full_bf16=True, mixed_precision="fp16") == {"full_bf16": "error"}
    assert found(full_fp16=True, mixed_precision="bf16") == {"full_fp16": "error"}


def test_token_warmup_changes_captions_so_the_text_cache_refuses_it():
    found = [f for f in validate(TrainConfig(max_train_epochs=1, network_train_unet_only=True,
                                             cache_text_encoder_outputs=True, token_warmup_step=0.2))
             if f.field == "cache_text_encoder_outputs"]
    assert found and "token_warmup_step" in found[0].message
