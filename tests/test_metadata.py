"""The ss_* / modelspec metadata built from config + plan, sd-scripts' way: every key, str values,
JSON for nested ones, counts from the plan, bucket indices from the bucket list, and the frozen
config read back by the inspector's reader. Pure: no torch."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import make_image
from workbench.config.schema import TrainConfig
from workbench.lora import write_metadata as metadata
from workbench.lora.read_metadata import config_from_metadata
from workbench.planning.buckets import Bucketer, BucketSpec
from workbench.planning.plan import make_plan

ISSUE_KEYS = """ss_network_module ss_network_dim ss_network_alpha ss_network_args ss_network_dropout ss_learning_rate
ss_unet_lr ss_text_encoder_lr ss_num_train_images ss_num_reg_images ss_num_batches_per_epoch ss_num_epochs ss_epoch
ss_steps ss_max_train_steps ss_lr_warmup_steps ss_lr_scheduler ss_optimizer ss_mixed_precision ss_seed ss_resolution
ss_enable_bucket ss_min_bucket_reso ss_max_bucket_reso ss_bucket_info ss_tag_frequency ss_dataset_dirs
ss_reg_dataset_dirs ss_training_comment ss_output_name ss_sd_model_name ss_sd_model_hash ss_new_sd_model_hash
ss_base_model_version ss_v2 ss_clip_skip ss_noise_offset ss_min_snr_gamma ss_scale_weight_norms
ss_gradient_checkpointing ss_gradient_accumulation_steps ss_training_started_at ss_training_finished_at
ss_session_id modelspec.sai_model_spec modelspec.architecture modelspec.implementation modelspec.title
modelspec.resolution modelspec.date modelspec.prediction_type workbench_config""".split()


@pytest.fixture
def run(tmp_path):
    sizes = [(128, 128), (112, 176), (128, 128)]
    captions = ["Trigger, red circle", "trigger, blue square", "trigger, red circle, night"]
    for i, (size, caption) in enumerate(zip(sizes, captions)):
        make_image(tmp_path / "train" / "3_trigger" / f"{i}.png", size)
        (tmp_path / "train" / "3_trigger" / f"{i}.txt").write_text(caption)
    for i in range(4):
        make_image(tmp_path / "reg" / "1_shape" / f"{i}.png", (128, 128))   # no captions: class tokens
    cfg = TrainConfig(pretrained_model_name_or_path="/models/base.safetensors", train_data_dir=str(tmp_path / "train"),
                      reg_data_dir=str(tmp_path / "reg"), output_name="mine", resolution="128,128",
                      min_bucket_reso=64, max_bucket_reso=256, train_batch_size=2, max_train_epochs=3,
                      network_args=["conv_dim=4"], training_comment="hello")
    plan = make_plan(cfg)
    facts = metadata.RunFacts(seed=5, session_id=77, started_at=1000.5, optimizer="torch.optim.adamw.AdamW",
                              lr_scheduler="cosine", network_dim=8, network_alpha=1.0, sd_model_hash="abcd1234",
                              new_sd_model_hash="f" * 64)
    base = metadata.training_metadata(cfg, plan, facts)
    return cfg, plan, metadata.for_save(base, cfg, epoch=2, step=12, finished_at=2000.0)


def test_every_listed_key_is_there_as_a_string(run):
    _, _, meta = run
    assert [k for k in ISSUE_KEYS if k not in meta] == []
    assert all(isinstance(v, str) for v in meta.values())
    scalars = (meta["ss_v2"], meta["ss_unet_lr"], meta["ss_seed"], meta["ss_resolution"])
    assert scalars == ("False", "None", "5", "(128, 128)")
    assert (meta["ss_epoch"], meta["ss_steps"], meta["ss_training_finished_at"]) == ("2", "12", "2000.0")
    assert (meta["ss_sd_model_name"], meta["ss_sd_model_hash"]) == ("base.safetensors", "abcd1234")
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "4"}


def test_counts_come_from_the_plan(run):
    _, plan, meta = run
    assert meta["ss_num_train_images"] == str(plan.num_train_images) == "9"
    assert meta["ss_num_reg_images"] == "4"
    assert meta["ss_num_batches_per_epoch"] == str(plan.batches_per_epoch)
    assert meta["ss_max_train_steps"] == str(plan.total_steps) and meta["ss_num_epochs"] == "3"
    assert json.loads(meta["ss_dataset_dirs"]) == {"3_trigger": {"n_repeats": 3, "img_count": 3}}
    assert json.loads(meta["ss_reg_dataset_dirs"]) == {"1_shape": {"n_repeats": 1, "img_count": 4}}


def test_tag_frequency_counts_each_image_once_per_folder_lower_cased(run):
    _, _, meta = run
    assert json.loads(meta["ss_tag_frequency"]) == {
        "3_trigger": {"trigger": 3, "red circle": 2, "blue square": 1, "night": 1},
        "1_shape": {"shape": 4}}


def test_bucket_info_numbers_the_buckets_that_hold_images(run):
    """sd-scripts' BucketManager lists only the resolutions images were assigned to, sorted: 0, 1, 2 …
    not their place in the full bucket list."""
    cfg, plan, meta = run
    info = json.loads(meta["ss_bucket_info"])
    assert {int(i): (tuple(b["resolution"]), b["count"]) for i, b in info["buckets"].items()} == \
        {i: (reso, plan.buckets[reso]) for i, reso in enumerate(sorted(plan.buckets))}
    assert len(plan.buckets) < len(Bucketer(BucketSpec.from_config(cfg)).resos)     # so the two rules differ
    errors = [abs(im.bucket[0] / im.bucket[1] - im.info.size[0] / im.info.size[1]) for im in plan.used_images]
    assert info["mean_img_ar_error"] == pytest.approx(sum(errors) / len(errors)) and info["mean_img_ar_error"] > 0
    assert metadata.bucket_info(cfg.replace(enable_bucket=False), plan) is None


@pytest.mark.parametrize("flags, version, arch, prediction", [
    ({}, "sd_v1", "stable-diffusion-v1/lora", "epsilon"),
    ({"v2": True}, "sd_v2", "stable-diffusion-v2-512/lora", "epsilon"),
    ({"v2": True, "v_parameterization": True}, "sd_v2_v", "stable-diffusion-v2-768-v/lora", "v"),
    ({"sdxl": True}, "sdxl_base_v1-0", "stable-diffusion-xl-v1-base/lora", "epsilon"),
])
def test_model_version_and_modelspec_per_family(flags, version, arch, prediction):
    cfg = TrainConfig(output_name="t", resolution="768,512", **flags)
    spec = metadata.modelspec(cfg, 0)
    assert metadata.base_model_version(cfg) == version
    assert (spec["modelspec.architecture"], spec["modelspec.prediction_type"]) == (arch, prediction)
    assert spec["modelspec.resolution"] == "768x512" and spec["modelspec.title"] == "t"
    assert spec["modelspec.implementation"] == ("https://github.com/Stability-AI/generative-models"
                                                if flags.get("sdxl") else "diffusers")


def test_several_processes_divide_the_batches_and_multiply_the_total_batch(run):
    cfg, plan, _ = run
    facts = metadata.RunFacts(seed=1, session_id=1, started_at=0, optimizer="o", lr_scheduler="cosine",
                              network_dim=8, network_alpha=1.0, num_processes=2)
    meta = metadata.training_metadata(cfg, plan, facts)
    assert meta["ss_num_batches_per_epoch"] == str(-(-plan.batches_per_epoch // 2))
    assert meta["ss_total_batch_size"] == "4"


def test_the_frozen_config_rebuilds_the_run(run):
    cfg, _, meta = run
    rebuilt, notes = config_from_metadata(meta)
    assert rebuilt == cfg and notes == []


def test_workbench_modules_do_not_import_torch():
    code = ("import sys, workbench.lora.write_metadata, workbench.models.demo, workbench.commands.train, workbench.commands.demo; "
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'streamlit') if m in sys.modules]; "
            "print(heavy); sys.exit(bool(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
