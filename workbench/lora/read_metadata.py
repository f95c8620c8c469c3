"""Decode the metadata sd-scripts (and the workbench trainer) store in a LoRA: tag frequencies,
dataset folders with repeats, buckets, the training parameters grouped for display.

Every value sd-scripts writes is str(v): numbers and booleans as Python prints them ("8",
"0.0001", "True"), unset options as "None", nested values as JSON strings.
config_from_metadata rebuilds a workbench config from them ("use these settings").
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from workbench.config.schema import FIELDS, OPTIMIZERS, ConfigError, TrainConfig, from_dict
from workbench.errors import UserError


class MetadataError(UserError):
    """A metadata value that should be JSON and is not; the message names the key."""


def json_value(meta: dict[str, str], key: str) -> Any:
    """The JSON a metadata key holds; None when the key is absent or holds "None"/"null"."""
    raw = meta.get(key)
    if raw is None or raw in ("None", "null", ""):
        return None
    try:
        return json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        raise MetadataError(f"{key}: not valid JSON ({short(raw)})") from None


def short(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _expect(condition: bool, key: str, what: str) -> None:
    if not condition:
        raise MetadataError(f"{key}: not {what}")


def _count(value: Any, key: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MetadataError(f"{key}: {short(value)!r} is not a count") from None


# ------------------------------------------------------------------ tag frequency

@dataclass(frozen=True)
class TagFrequency:
    total: list[tuple[str, int]]                      # over all folders, most frequent first
    per_dir: dict[str, list[tuple[str, int]]]          # folder -> its tags, most frequent first


def by_count(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Most frequent first; equal counts in alphabetical order so the list is stable."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def tag_frequency(meta: dict[str, str], key: str = "ss_tag_frequency") -> TagFrequency | None:
    """ss_tag_frequency `{dir: {tag: count}}` -> totals over all folders and per folder."""
    data = json_value(meta, key)
    if data is None:
        return None
    _expect(isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()), key,
            "a {folder: {tag: count}} object")
    totals: dict[str, int] = {}
    per_dir = {}
    for folder, tags in data.items():
        counts = {str(tag): _count(n, key) for tag, n in tags.items()}
        for tag, n in counts.items():
            totals[tag] = totals.get(tag, 0) + n
        per_dir[folder] = by_count(counts)
    return TagFrequency(by_count(totals), per_dir)


# ------------------------------------------------------------------ dataset folders

@dataclass(frozen=True)
class DatasetDir:
    name: str
    n_repeats: int
    img_count: int

    @property
    def images_times_repeats(self) -> int:
        return self.n_repeats * self.img_count


def dataset_dirs(meta: dict[str, str], key: str = "ss_dataset_dirs") -> list[DatasetDir]:
    """ss_dataset_dirs / ss_reg_dataset_dirs `{dir: {"n_repeats", "img_count"}}`, in stored order."""
    data = json_value(meta, key)
    if data is None:
        return []
    _expect(isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()), key,
            'a {folder: {"n_repeats", "img_count"}} object')
    return [DatasetDir(name, _count(info.get("n_repeats"), key), _count(info.get("img_count"), key))
            for name, info in data.items()]


# ------------------------------------------------------------------ buckets

@dataclass(frozen=True)
class Bucket:
    width: int
    height: int
    count: int          # images × repeats that fall in this bucket


@dataclass(frozen=True)
class BucketInfo:
    buckets: list[Bucket]
    mean_img_ar_error: float | None     # mean |image aspect − bucket aspect|


def bucket_info(meta: dict[str, str]) -> BucketInfo | None:
    """ss_bucket_info `{"buckets": {i: {"resolution": [w, h], "count": n}}, "mean_img_ar_error": x}`;
    a LoRA trained from a dataset config keeps it per dataset in ss_datasets (merged here)."""
    data = json_value(meta, "ss_bucket_info")
    if data is None:
        datasets = json_value(meta, "ss_datasets") or []
        _expect(isinstance(datasets, list), "ss_datasets", "a list of datasets")
        infos = [d.get("bucket_info") for d in datasets if isinstance(d, dict) and d.get("bucket_info")]
        return _merge([_bucket_info(info, "ss_datasets") for info in infos]) if infos else None
    return _bucket_info(data, "ss_bucket_info")


def _bucket_info(data: Any, key: str) -> BucketInfo:
    _expect(isinstance(data, dict) and isinstance(data.get("buckets", {}), dict), key,
            'a {"buckets": {index: {"resolution", "count"}}} object')
    buckets = []
    for index in sorted(data.get("buckets", {}), key=lambda i: _count(i, key)):
        entry = data["buckets"][index]
        reso = entry.get("resolution") if isinstance(entry, dict) else None
        _expect(isinstance(reso, list) and len(reso) == 2, key, f"a [w, h] resolution in bucket {index}")
        buckets.append(Bucket(_count(reso[0], key), _count(reso[1], key), _count(entry.get("count"), key)))
    error = data.get("mean_img_ar_error")
    return BucketInfo(buckets, float(error) if isinstance(error, (int, float)) else None)


def _merge(infos: list[BucketInfo]) -> BucketInfo:
    counts: dict[tuple[int, int], int] = {}
    for info in infos:
        for b in info.buckets:
            counts[(b.width, b.height)] = counts.get((b.width, b.height), 0) + b.count
    errors = [i.mean_img_ar_error for i in infos if i.mean_img_ar_error is not None]
    return BucketInfo([Bucket(w, h, n) for (w, h), n in sorted(counts.items())],
                      sum(errors) / len(errors) if errors else None)


# ------------------------------------------------------------------ training parameters

PARAMETER_GROUPS = {
    "Network": ("ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_network_args",
                "ss_network_dropout", "ss_scale_weight_norms"),
    "Learning rate": ("ss_optimizer", "ss_learning_rate", "ss_unet_lr", "ss_text_encoder_lr", "ss_lr_scheduler",
                      "ss_lr_warmup_steps", "ss_max_grad_norm"),
    "Steps": ("ss_num_train_images", "ss_num_reg_images", "ss_batch_size_per_device",
              "ss_gradient_accumulation_steps", "ss_num_batches_per_epoch", "ss_num_epochs", "ss_epoch",
              "ss_steps", "ss_max_train_steps"),
    "Images": ("ss_resolution", "ss_enable_bucket", "ss_min_bucket_reso", "ss_max_bucket_reso",
               "ss_bucket_no_upscale", "ss_cache_latents", "ss_flip_aug", "ss_color_aug", "ss_random_crop",
               "ss_face_crop_aug_range", "ss_shuffle_caption", "ss_keep_tokens", "ss_caption_dropout_rate"),
    "Loss": ("ss_noise_offset", "ss_min_snr_gamma", "ss_prior_loss_weight", "ss_multires_noise_iterations",
             "ss_adaptive_noise_scale", "ss_noise_offset_random_strength", "ss_zero_terminal_snr", "ss_ip_noise_gamma",
             "ss_ip_noise_gamma_random_strength", "ss_debiased_estimation", "ss_loss_type", "ss_huber_schedule",
             "ss_huber_c", "ss_huber_scale"),
    "Validation": ("ss_validation_split", "ss_num_validation_images", "ss_validation_seed",
                   "ss_validate_every_n_epochs", "ss_validate_every_n_steps", "ss_max_validation_steps"),
    "Model": ("ss_sd_model_name", "ss_base_model_version", "ss_v2", "ss_clip_skip", "ss_vae_name",
              "ss_mixed_precision", "ss_full_fp16", "ss_fp8_base", "ss_fp8_base_unet", "ss_gradient_checkpointing"),
    "Run": ("ss_output_name", "ss_seed", "ss_training_started_at", "ss_training_finished_at",
            "ss_session_id", "ss_sd_scripts_commit_hash"),
}
TIMESTAMP_KEYS = ("ss_training_started_at", "ss_training_finished_at")   # unix seconds


def training_parameters(meta: dict[str, str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(group, [(name without "ss_", value as stored)])] for the keys present; timestamps
    shown as UTC dates. Groups without any stored key are left out."""
    groups = []
    for group, keys in PARAMETER_GROUPS.items():
        rows = [(key[3:], display_value(key, meta[key])) for key in keys if key in meta]
        if rows:
            groups.append((group, rows))
    return groups


def display_value(key: str, raw: str) -> str:
    if key in TIMESTAMP_KEYS:
        try:
            moment = datetime.fromtimestamp(float(raw), tz=timezone.utc)
        except (ValueError, OverflowError, OSError):
            return raw
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return raw


# ------------------------------------------------------------------ use these settings

# ss_* key -> TrainConfig field, where the stored value converts as it is
SETTING_KEYS = {
    "ss_network_module": "network_module", "ss_network_dim": "network_dim", "ss_network_alpha": "network_alpha",
    "ss_network_dropout": "network_dropout", "ss_scale_weight_norms": "scale_weight_norms",
    "ss_learning_rate": "learning_rate", "ss_unet_lr": "unet_lr", "ss_text_encoder_lr": "text_encoder_lr",
    "ss_lr_warmup_steps": "lr_warmup_steps", "ss_max_grad_norm": "max_grad_norm",
    "ss_batch_size_per_device": "train_batch_size", "ss_gradient_accumulation_steps": "gradient_accumulation_steps",
    "ss_num_epochs": "max_train_epochs", "ss_enable_bucket": "enable_bucket", "ss_min_bucket_reso": "min_bucket_reso",
    "ss_max_bucket_reso": "max_bucket_reso", "ss_bucket_no_upscale": "bucket_no_upscale",
    "ss_cache_latents": "cache_latents", "ss_flip_aug": "flip_aug", "ss_shuffle_caption": "shuffle_caption",
    "ss_keep_tokens": "keep_tokens", "ss_noise_offset": "noise_offset", "ss_min_snr_gamma": "min_snr_gamma",
    "ss_caption_dropout_rate": "caption_dropout_rate", "ss_caption_tag_dropout_rate": "caption_tag_dropout_rate",
    "ss_caption_dropout_every_n_epochs": "caption_dropout_every_n_epochs", "ss_max_token_length": "max_token_length",
    "ss_multires_noise_iterations": "multires_noise_iterations", "ss_multires_noise_discount": "multires_noise_discount",
    "ss_ip_noise_gamma": "ip_noise_gamma", "ss_debiased_estimation": "debiased_estimation_loss",
    "ss_prior_loss_weight": "prior_loss_weight", "ss_v2": "v2", "ss_clip_skip": "clip_skip",
    "ss_mixed_precision": "mixed_precision", "ss_gradient_checkpointing": "gradient_checkpointing",
    "ss_seed": "seed", "ss_output_name": "output_name", "ss_training_comment": "training_comment",
    "ss_loss_type": "loss_type", "ss_huber_schedule": "huber_schedule", "ss_huber_c": "huber_c",
    "ss_huber_scale": "huber_scale", "ss_adaptive_noise_scale": "adaptive_noise_scale",
    "ss_zero_terminal_snr": "zero_terminal_snr", "ss_noise_offset_random_strength": "noise_offset_random_strength",
    "ss_ip_noise_gamma_random_strength": "ip_noise_gamma_random_strength",
    "ss_validation_split": "validation_split", "ss_validation_seed": "validation_seed",
    "ss_max_validation_steps": "max_validation_steps", "ss_validate_every_n_epochs": "validate_every_n_epochs",
    "ss_validate_every_n_steps": "validate_every_n_steps", "ss_color_aug": "color_aug",
    "ss_random_crop": "random_crop", "ss_full_fp16": "full_fp16", "ss_fp8_base": "fp8_base",
    "ss_fp8_base_unet": "fp8_base_unet",
}
# keys that record what a run did or what it ran on, not a setting to carry over
RESULT_KEYS = frozenset((
    "ss_num_train_images", "ss_num_reg_images", "ss_num_validation_images", "ss_num_batches_per_epoch", "ss_epoch",
    "ss_steps", "ss_max_train_steps", "ss_total_batch_size", "ss_tag_frequency", "ss_dataset_dirs",
    "ss_reg_dataset_dirs", "ss_bucket_info", "ss_session_id", "ss_training_started_at", "ss_training_finished_at",
    "ss_sd_model_hash", "ss_new_sd_model_hash", "ss_vae_hash", "ss_new_vae_hash", "ss_sd_scripts_commit_hash"))
# sd-scripts writes every option; an option that is off, or at the value that does what the
# workbench does, needs no note when it cannot be carried over
OFF_VALUES = frozenset(("None", "False", "0", "0.0", "", "null", "[]", "{}"))
SAME_AS_WORKBENCH = {"ss_multires_noise_discount": "0.3", "ss_max_token_length": "75"}
# the optimizer's class name (the last part of sd-scripts' class path) -> optimizer_type
OPTIMIZER_CLASSES = {"AdamW": "AdamW", "AdamW8bit": "AdamW8bit", "PagedAdamW8bit": "PagedAdamW8bit",
                     "Lion": "Lion", "Lion8bit": "Lion8bit", "SGD": "SGDNesterov", "SGD8bit": "SGDNesterov8bit",
                     "Adafactor": "Adafactor", "DAdaptAdamPreprint": "DAdaptation", "DAdaptAdam": "DAdaptAdam",
                     "DAdaptAdaGrad": "DAdaptAdaGrad", "DAdaptAdan": "DAdaptAdan", "DAdaptLion": "DAdaptLion",
                     "DAdaptSGD": "DAdaptSGD", "Prodigy": "Prodigy"}
MODEL_FLAGS = {"sd_v1": {"v2": False, "sdxl": False}, "sd_v2": {"v2": True, "sdxl": False},
               "sd_v1_v": {"v2": False, "v_parameterization": True, "sdxl": False},
               "sd_v2_v": {"v2": True, "v_parameterization": True, "sdxl": False}}


def config_from_metadata(meta: dict[str, str]) -> tuple[TrainConfig, list[str]]:
    """The workbench config a LoRA was trained with, and a note per thing that could not be
    carried over. Exact from "workbench_config" (the trainer's frozen config); otherwise
    best-effort from sd-scripts' ss_* keys, the rest left at the workbench's defaults."""
    notes = []
    if "workbench_config" in meta:
        try:
            cfg, unknown = from_dict(json.loads(meta["workbench_config"]))
            return cfg, [f"workbench_config: {key} is not a workbench setting; not used" for key in unknown]
        except (json.JSONDecodeError, TypeError, AttributeError, ConfigError) as exc:
            notes.append(f"workbench_config: unreadable ({short(exc)}); rebuilt from the ss_* keys")
    values: dict[str, Any] = {}
    for key in sorted(k for k in meta if k.startswith("ss_") and k not in RESULT_KEYS):
        try:
            values.update(_settings_of(key, meta[key], meta))
        except (ConfigError, MetadataError) as exc:
            if meta[key] in OFF_VALUES or SAME_AS_WORKBENCH.get(key) == meta[key]:
                continue
            notes.append(f"{key} = {short(meta[key])}: {exc}; left at the default")
    if meta.get("ss_dataset_dirs"):
        notes.append("train_data_dir: a LoRA keeps only its folders' names; choose the dataset folder")
    return from_dict(values)[0], notes


def _settings_of(key: str, raw: str, meta: dict[str, str]) -> dict[str, Any]:
    if key in SETTING_KEYS:
        return _checked(SETTING_KEYS[key], _scalar(raw))
    if key in SPECIAL_KEYS:
        return SPECIAL_KEYS[key](raw, meta)
    raise ConfigError("no workbench setting holds it")


def _scalar(raw: str) -> Any:
    """"None" -> None; JSON numbers -> numbers ("8.0" -> 8.0); anything else the text."""
    if raw == "None":
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else raw


def _checked(field_name: str, value: Any) -> dict[str, Any]:
    """{field: value} once the config accepts it; {} for an unset value of a field that cannot be
    empty (sd-scripts' "None" means off, as the workbench default does)."""
    optional = "None" in str(FIELDS[field_name].type)
    if value is None and not optional:
        return {}
    from_dict({field_name: value})          # raises ConfigError naming the field when it does not fit
    choices = FIELDS[field_name].metadata["choices"]
    if choices and value not in choices:
        raise ConfigError(f"{field_name} has no choice {value!r}")
    return {field_name: value}


def _optimizer(raw: str, meta) -> dict[str, Any]:
    """"bitsandbytes.optim.adamw.AdamW8bit(weight_decay=0.01,betas=(0.9, 0.99))" -> the
    optimizer_type and its optimizer_args, as sd-scripts writes the class path and kwargs."""
    path, _, args = raw.partition("(")
    name = path.strip().rsplit(".", 1)[-1]
    optimizer = OPTIMIZER_CLASSES.get(name, name if name in OPTIMIZERS else None)
    if optimizer is None:
        raise ConfigError(f"{name} is not an optimizer the workbench offers")
    return {"optimizer_type": optimizer, "optimizer_args": split_top_level(args[:-1] if args.endswith(")") else args)}


def split_top_level(text: str) -> list[str]:
    """"a=1,b=(0.9, 0.99)" -> ["a=1", "b=(0.9, 0.99)"]: commas inside brackets stay."""
    items, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += char
    return [item for item in items + [current.strip()] if item]


def _resolution(raw: str, meta) -> dict[str, Any]:
    """"(768, 512)" (sd-scripts' tuple, width first) -> "768,512"."""
    return _checked("resolution", ",".join(split_top_level(raw.strip("()[] "))))


def _scheduler(raw: str, meta) -> dict[str, Any]:
    """sd-scripts writes Adafactor's relative-step schedule as "adafactor:<initial lr>"."""
    return _checked("lr_scheduler", raw.split(":", 1)[0])


def _network_args(raw: str, meta) -> dict[str, Any]:
    args = json_value(meta, "ss_network_args")
    _expect(isinstance(args, dict), "ss_network_args", "a {key: value} object")
    # newer sd-scripts also records "dropout" here; it is network_dropout (ss_network_dropout), not an arg
    return _checked("network_args", [f"{k}={v}" for k, v in args.items() if k != "dropout"])


def _model_version(raw: str, meta) -> dict[str, Any]:
    if raw.startswith("sdxl"):
        return {"sdxl": True, "v2": False}
    if raw not in MODEL_FLAGS:
        raise ConfigError("not a model family the workbench trains (SD 1.x, SD 2.x, SDXL)")
    return dict(MODEL_FLAGS[raw])


def _datasets(raw: str, meta) -> dict[str, Any]:
    """A dataset-config run keeps resolution, batch size, buckets and subset options per dataset."""
    datasets = json_value(meta, "ss_datasets")
    _expect(isinstance(datasets, list) and datasets and isinstance(datasets[0], dict), "ss_datasets",
            "a list of datasets")
    first = datasets[0]
    subset = (first.get("subsets") or [{}])[0]
    values = {"resolution": ",".join(str(v) for v in first.get("resolution") or ()) or None,
              "train_batch_size": first.get("batch_size_per_device"), "enable_bucket": first.get("enable_bucket"),
              "min_bucket_reso": first.get("min_bucket_reso"), "max_bucket_reso": first.get("max_bucket_reso"),
              "flip_aug": subset.get("flip_aug"), "shuffle_caption": subset.get("shuffle_caption"),
              "keep_tokens": subset.get("keep_tokens")}
    settings: dict[str, Any] = {}
    for name, value in values.items():
        settings.update(_checked(name, value) if value is not None else {})
    return settings


def _face_crop(raw: str, meta) -> dict[str, Any]:
    """"(2.0, 4.0)" (sd-scripts' parsed tuple) -> "2.0,4.0"; "None": off."""
    if raw == "None":
        return {}
    return _checked("face_crop_aug_range", ",".join(split_top_level(raw.strip("()[] "))))


def _vae_name(raw: str, meta) -> dict[str, Any]:
    raise ConfigError("only the VAE's file name is stored; choose its path under Parameters › Model › VAE (vae)")


def _model_name(raw: str, meta) -> dict[str, Any]:
    raise ConfigError("only the base model's file name is stored; choose its path under Parameters › Model (pretrained_model_name_or_path)")


SPECIAL_KEYS = {"ss_optimizer": _optimizer, "ss_lr_scheduler": _scheduler, "ss_resolution": _resolution,
                "ss_network_args": _network_args, "ss_base_model_version": _model_version, "ss_datasets": _datasets,
                "ss_sd_model_name": _model_name, "ss_vae_name": _vae_name, "ss_face_crop_aug_range": _face_crop}
