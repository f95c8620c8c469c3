"""The metadata stored in a LoRA file, sd-scripts' way: ss_* training keys, modelspec.* keys, and
the whole frozen config as one JSON value ("workbench_config") so a run can be rebuilt from its
LoRA (workbench/lora/read_metadata.py reads it back). Built for the trainer from the config and the
plan; pure, no torch.

Every value is a string (safetensors metadata is str → str): scalars are `str(v)` as sd-scripts
writes them ("True", "None", "0.0001"), nested values are JSON strings.
"""
from __future__ import annotations

import datetime
import json
from dataclasses import dataclass

from workbench import __version__
from workbench.config.kohya import export_sd_scripts
from workbench.config.schema import TrainConfig
from workbench.dataset.captions import tag_frequency_by_folder
from workbench.planning.buckets import BucketSpec

SAI_MODEL_SPEC = "1.0.1"
IMPL_STABILITY_AI = "https://github.com/Stability-AI/generative-models"
IMPL_DIFFUSERS = "diffusers"
IMPLEMENTATION_VERSION = f"lora-workbench/{__version__}"     # sd-scripts writes "sd-scripts/<commit>"
CONFIG_KEY = "workbench_config"
# Options sd-scripts always records and the workbench does not offer, with the value sd-scripts
# writes when they are off, so a file reads like a kohya one to the tools that show them.
OPTIONS_NOT_OFFERED = {
    "ss_lowram": "False",
    "ss_resize_interpolation": "None",
    # sd-scripts' value when it cannot tell its own git commit; this file was not made by sd-scripts
    "ss_sd_scripts_commit_hash": "(unknown)",
}
# sd-scripts' argparse defaults of the options the export leaves out when they mean "off" there
SD_SCRIPTS_DEFAULTS = {"clip_skip": None, "max_token_length": None, "noise_offset": None, "min_snr_gamma": None,
                       "multires_noise_iterations": None, "ip_noise_gamma": None, "min_timestep": None,
                       "max_timestep": None, "lr_warmup_steps": 0}


@dataclass(frozen=True)
class RunFacts:
    """What only the running trainer knows; the rest of the metadata follows from config + plan."""
    seed: int
    session_id: int                 # random integer shared by every file of one run
    started_at: float               # unix time
    optimizer: str                  # "torch.optim.adamw.AdamW(weight_decay=0.01)"
    lr_scheduler: str               # the schedule run (Adafactor's relative step: "adafactor:<lr>")
    network_dim: int                # the rank trained (dim_from_weights may change it)
    network_alpha: float
    sd_model_hash: str = ""         # legacy 8-hex hash of a single-file base model ("IsADirectory": a folder)
    new_sd_model_hash: str = ""     # sha256 of that file (also "IsADirectory" for a folder)
    vae_hashes: tuple[str, str] | None = None    # (legacy, sha256) of the separate VAE (vae), as the base model's
    num_processes: int = 1


def base_model_version(cfg: TrainConfig) -> str:
    """sd-scripts' vocabulary: sd_v1, sd_v2, "_v" added for v-prediction (SD1 too), sdxl_base_v1-0."""
    if cfg.sdxl:
        return "sdxl_base_v1-0"
    version = "sd_v2" if cfg.v2 else "sd_v1"
    return version + "_v" if cfg.v_parameterization else version


def dataset_dirs(plan, reg: bool) -> dict[str, dict[str, int]]:
    """A training folder counts the images that train (validation_split holds some out)."""
    return {s.dir.name: {"n_repeats": s.repeats, "img_count": len(s.images) if reg else _training_count(plan, s)}
            for s in plan.dataset.subsets if s.is_reg == reg}


def _training_count(plan, subset) -> int:
    return sum(1 for im in plan.images if im.subset is subset and im.repeats > 0)


def sd_scripts_args(cfg: TrainConfig) -> dict:
    """The arguments sd-scripts runs the exported job with: what `workbench export` writes, else
    sd-scripts' own default. The ss_* / modelspec keys that record an argument read it here, so a
    file says what sd-scripts' own file says for the same job (clip_skip 1 is left out: None)."""
    return {**SD_SCRIPTS_DEFAULTS, **export_sd_scripts(cfg).values}


def bucket_info(cfg: TrainConfig, plan) -> dict | None:
    """{"buckets": {i: {"resolution": [w, h], "count": images × repeats}}, "mean_img_ar_error": mean
    |bucket aspect − image aspect| over the images used}; None without bucketing. i numbers the
    buckets that hold images, in (w, h) order, as sd-scripts' BucketManager does (it only lists
    the resolutions an image was assigned to, then sorts them)."""
    if not cfg.enable_bucket:
        return None
    buckets = {i: {"resolution": list(reso), "count": plan.buckets[reso]}
               for i, reso in enumerate(sorted(plan.buckets))}
    used = plan.used_images
    errors = [abs(im.bucket[0] / im.bucket[1] - im.info.size[0] / im.info.size[1]) for im in used]
    return {"buckets": dict(sorted(buckets.items())), "mean_img_ar_error": sum(errors) / max(1, len(errors))}


def learning_rates(cfg: TrainConfig, facts: RunFacts) -> dict:
    """sd-scripts clears learning_rate and unet_lr when Adafactor makes its own step size (relative
    step, the schedule recorded as "adafactor:<lr>"): the configured rate only seeds that schedule."""
    relative_step = facts.lr_scheduler.startswith("adafactor:")
    return {"ss_learning_rate": None if relative_step else cfg.learning_rate,
            "ss_unet_lr": None if relative_step else cfg.unet_lr, "ss_text_encoder_lr": cfg.text_encoder_lr}


def bucket_settings(cfg: TrainConfig) -> dict:
    """sd-scripts keeps the bucket sizes only while bucketing is on; off, they are None and
    bucket_no_upscale False. The sizes are the ones the bucket list is made from."""
    if not cfg.enable_bucket:
        return {"ss_min_bucket_reso": None, "ss_max_bucket_reso": None, "ss_bucket_no_upscale": False}
    spec = BucketSpec.from_config(cfg)
    return {"ss_min_bucket_reso": spec.min_reso, "ss_max_bucket_reso": spec.max_reso,
            "ss_bucket_no_upscale": spec.no_upscale}


def noise_and_loss(cfg: TrainConfig, args: dict) -> dict:
    """The later noise and loss options as sd-scripts records them: flags as True/False, the rest
    as the exported job passes them (adaptive_noise_scale empty: None); huber_* are written
    whatever the loss type, as sd-scripts does."""
    return {"ss_noise_offset_random_strength": cfg.noise_offset_random_strength,
            "ss_adaptive_noise_scale": args.get("adaptive_noise_scale"), "ss_zero_terminal_snr": cfg.zero_terminal_snr,
            "ss_ip_noise_gamma_random_strength": cfg.ip_noise_gamma_random_strength,
            "ss_loss_type": args["loss_type"], "ss_huber_schedule": args["huber_schedule"],
            "ss_huber_scale": args["huber_scale"], "ss_huber_c": args["huber_c"]}


def validation_settings(plan, args: dict) -> dict:
    """sd-scripts' validation keys as the exported job passes them (empty: None); the images held
    out counted with their repeats."""
    return {"ss_num_validation_images": plan.num_validation_images, "ss_validation_seed": args.get("validation_seed"),
            "ss_validation_split": args["validation_split"], "ss_max_validation_steps": args.get("max_validation_steps"),
            "ss_validate_every_n_epochs": args.get("validate_every_n_epochs"),
            "ss_validate_every_n_steps": args.get("validate_every_n_steps")}


def vae_keys(cfg: TrainConfig, facts: RunFacts) -> dict[str, str]:
    """sd-scripts writes these only with --vae: its name (the last path part) and hashes."""
    if not cfg.vae:
        return {}
    legacy, sha = facts.vae_hashes or ("", "")
    return {"ss_vae_name": _model_name(cfg.vae), "ss_vae_hash": legacy, "ss_new_vae_hash": sha}


def training_metadata(cfg: TrainConfig, plan, facts: RunFacts) -> dict[str, str]:
    """The ss_* keys fixed for the whole run (for_save adds the per-file ones)."""
    w, h = cfg.resolution_wh()
    args = sd_scripts_args(cfg)
    values = {
        "ss_session_id": facts.session_id, "ss_training_started_at": facts.started_at,
        "ss_output_name": cfg.output_name, **learning_rates(cfg, facts),
        "ss_num_train_images": plan.num_train_images, "ss_num_reg_images": plan.num_reg_images,
        "ss_num_batches_per_epoch": -(-plan.batches_per_epoch // facts.num_processes),
        "ss_num_epochs": plan.epochs, "ss_max_train_steps": plan.total_steps,
        "ss_gradient_checkpointing": cfg.gradient_checkpointing,
        "ss_gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "ss_lr_warmup_steps": args["lr_warmup_steps"], "ss_lr_scheduler": facts.lr_scheduler,
        "ss_network_module": cfg.network_module, "ss_network_dim": facts.network_dim,
        "ss_network_alpha": facts.network_alpha, "ss_network_dropout": cfg.network_dropout,
        "ss_mixed_precision": cfg.mixed_precision, "ss_v2": cfg.v2, "ss_base_model_version": base_model_version(cfg),
        "ss_clip_skip": args["clip_skip"], "ss_cache_latents": cfg.cache_latents, "ss_seed": facts.seed,
        "ss_noise_offset": args["noise_offset"], "ss_min_snr_gamma": args["min_snr_gamma"],
        "ss_multires_noise_iterations": args["multires_noise_iterations"],
        "ss_multires_noise_discount": cfg.multires_noise_discount, "ss_ip_noise_gamma": args["ip_noise_gamma"],
        "ss_debiased_estimation": cfg.debiased_estimation_loss, **noise_and_loss(cfg, args),
        **validation_settings(plan, args),
        "ss_full_fp16": cfg.full_fp16, "ss_fp8_base": cfg.fp8_base, "ss_fp8_base_unet": cfg.fp8_base_unet,
        "ss_prior_loss_weight": cfg.prior_loss_weight, "ss_scale_weight_norms": cfg.scale_weight_norms,
        "ss_max_grad_norm": cfg.max_grad_norm, "ss_training_comment": cfg.training_comment,
        "ss_optimizer": facts.optimizer,
        "ss_batch_size_per_device": cfg.train_batch_size,
        "ss_total_batch_size": cfg.train_batch_size * facts.num_processes * cfg.gradient_accumulation_steps,
        "ss_resolution": (w, h), "ss_enable_bucket": cfg.enable_bucket, **bucket_settings(cfg),
        "ss_flip_aug": cfg.flip_aug, "ss_color_aug": cfg.color_aug, "ss_random_crop": cfg.random_crop,
        # sd-scripts records its parsed (low, high) tuple whether or not buckets use it; masked_loss,
        # alpha_mask, weighted_captions and the attention flags it does not record (workbench_config has them)
        "ss_face_crop_aug_range": cfg.face_crop_range(),
        "ss_shuffle_caption": cfg.shuffle_caption, "ss_keep_tokens": cfg.keep_tokens,
        "ss_max_token_length": args["max_token_length"],
        "ss_caption_dropout_rate": cfg.caption_dropout_rate,
        "ss_caption_dropout_every_n_epochs": cfg.caption_dropout_every_n_epochs,
        "ss_caption_tag_dropout_rate": cfg.caption_tag_dropout_rate,
        "ss_sd_model_name": _model_name(cfg.pretrained_model_name_or_path),
        "ss_sd_model_hash": facts.sd_model_hash, "ss_new_sd_model_hash": facts.new_sd_model_hash,
        **OPTIONS_NOT_OFFERED,
    }
    metadata = {key: str(value) for key, value in values.items()}
    metadata.update(vae_keys(cfg, facts))
    if cfg.network_args:        # sd-scripts writes the key only when network_args are given
        metadata["ss_network_args"] = json.dumps(cfg.network_args_dict())
    metadata.update({
        "ss_dataset_dirs": json.dumps(dataset_dirs(plan, reg=False)),
        "ss_reg_dataset_dirs": json.dumps(dataset_dirs(plan, reg=True)),
        "ss_tag_frequency": json.dumps(tag_frequency_by_folder(plan.dataset)),
        "ss_bucket_info": json.dumps(bucket_info(cfg, plan)),
        CONFIG_KEY: json.dumps(cfg.to_dict()),
    })
    return metadata


def _model_name(path: str) -> str:
    return path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]


def for_save(base: dict[str, str], cfg: TrainConfig, epoch: int, step: int, finished_at: float) -> dict[str, str]:
    """The metadata of one saved file: the run's keys, where it stands, and modelspec.*."""
    return {**base, "ss_epoch": str(epoch), "ss_steps": str(step), "ss_training_finished_at": str(finished_at),
            **modelspec(cfg, finished_at)}


def modelspec(cfg: TrainConfig, timestamp: float) -> dict[str, str]:
    """Stability AI's ModelSpec keys as sd-scripts writes them for a LoRA (sai_model_spec.py: a key
    whose value is None is left out)."""
    if cfg.sdxl:
        arch = "stable-diffusion-xl-v1-base"
    elif cfg.v2:
        arch = "stable-diffusion-v2-768-v" if cfg.v_parameterization else "stable-diffusion-v2-512"
    else:
        arch = "stable-diffusion-v1"
    w, h = cfg.resolution_wh()
    spec = {"modelspec.sai_model_spec": SAI_MODEL_SPEC, "modelspec.architecture": f"{arch}/lora",
            "modelspec.implementation": IMPL_STABILITY_AI if cfg.sdxl else IMPL_DIFFUSERS,
            "modelspec.title": cfg.output_name, "modelspec.resolution": f"{w}x{h}",
            "modelspec.date": datetime.datetime.fromtimestamp(int(timestamp)).isoformat(),
            "modelspec.prediction_type": "v" if cfg.v_parameterization else "epsilon",
            "modelspec.implementation_version": IMPLEMENTATION_VERSION}
    args = sd_scripts_args(cfg)
    if args["min_timestep"] is not None or args["max_timestep"] is not None:
        low, high = args["min_timestep"] or 0, args["max_timestep"] or 1000
        spec["modelspec.timestep_range"] = f"{low},{high}"
    if args["clip_skip"] is not None:
        spec["modelspec.encoder_layer"] = str(args["clip_skip"])
    return spec
