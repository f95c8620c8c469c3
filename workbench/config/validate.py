"""Config validation: each rule one small function returning findings that name the field.

Errors stop a run; warnings are shown next to their field in the app and by `workbench check`.
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

from workbench.config.schema import FIELDS, ConfigError, TrainConfig, parse_key_values, parse_resolution
from workbench.lora.blocks import BLOCK_ARGS, parse_blocks
from workbench.planning.buckets import bucket_range


@dataclass(frozen=True)
class Finding:
    level: str        # "error" | "warning" | "note"
    field: str        # config key, or "" when it is about files
    message: str
    files: tuple[str, ...] = ()

    def line(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{self.level}: {where}{self.message}"

    def to_json(self) -> dict:
        return {"level": self.level, "field": self.field, "message": self.message, "files": list(self.files)}


def _choices(cfg: TrainConfig) -> list[Finding]:
    out = []
    for name in ("lr_scheduler", "optimizer_type", "network_module", "mixed_precision", "save_precision",
                 "save_model_as", "sample_sampler", "loss_type", "huber_schedule", "log_with",
                 "fast_path"):
        valid = FIELDS[name].metadata["choices"]
        value = getattr(cfg, name)
        if value not in valid:
            hint = next((v for v in valid if v.lower() == str(value).lower()), None)
            extra = f" (did you mean {hint}?)" if hint else ""
            out.append(Finding("error", name, f"unknown {value!r}{extra}; valid: {', '.join(valid)}"))
    return out


def _ranges(cfg: TrainConfig) -> list[Finding]:
    out = []
    for name, f in FIELDS.items():
        value = getattr(cfg, name)
        if value is None or isinstance(value, (str, list, bool)):
            continue
        low, high = f.metadata.get("min"), f.metadata.get("max")
        if low is not None and value < low:
            out.append(Finding("error", name, f"{value} is below the minimum {low}"))
        if high is not None and value > high:
            out.append(Finding("error", name, f"{value} is above the maximum {high}"))
    return out


def _resolution_and_buckets(cfg: TrainConfig) -> list[Finding]:
    try:
        w, h = parse_resolution(cfg.resolution)
    except ConfigError as exc:
        return [Finding("error", "resolution", str(exc).split(": ", 1)[1])]
    out = []
    if w % 8 or h % 8:
        out.append(Finding("error", "resolution", f"{w},{h}: both sides must be multiples of 8 "
                           "(latents are 1/8 of the image)"))
    if cfg.enable_bucket:
        out += _bucket_sizes(cfg, w, h)
    return out


def _bucket_sizes(cfg: TrainConfig, w: int, h: int) -> list[Finding]:
    """sd-scripts asserts these whenever buckets are on, bucket_no_upscale or not."""
    out = []
    step = 32 if cfg.sdxl else 64
    if cfg.bucket_reso_steps % step:
        family = "SDXL" if cfg.sdxl else "SD1/SD2"
        out.append(Finding("error", "bucket_reso_steps", f"{cfg.bucket_reso_steps} is not a multiple of {step}, "
                           f"which {family} needs; use {step}"))
    if math.isqrt(w * h) < cfg.bucket_reso_steps:
        out.append(Finding("error", "resolution", f"{w},{h} is smaller than one bucket step "
                           f"({cfg.bucket_reso_steps} px): its square bucket would be empty"))
    if cfg.max_bucket_reso < max(w, h):
        out.append(Finding("error", "max_bucket_reso", f"{cfg.max_bucket_reso} is smaller than the resolution's "
                           f"side {max(w, h)}; raise it to at least {max(w, h)}"))
    if cfg.min_bucket_reso > min(w, h):
        out.append(Finding("error", "min_bucket_reso", f"{cfg.min_bucket_reso} is larger than the resolution's "
                           f"side {min(w, h)}; lower it to {min(w, h)} or less"))
    if cfg.min_bucket_reso > cfg.max_bucket_reso:
        out.append(Finding("error", "min_bucket_reso", f"{cfg.min_bucket_reso} is larger than max_bucket_reso "
                           f"{cfg.max_bucket_reso}"))
    if cfg.bucket_no_upscale:
        out.append(Finding("note", "bucket_no_upscale", "min_bucket_reso and max_bucket_reso are ignored: "
                           "each image's bucket comes from its own size"))
    elif cfg.bucket_reso_steps > 0:
        out += _bucket_range_rounding(cfg)
    return out


def _bucket_range_rounding(cfg: TrainConfig) -> list[Finding]:
    low, high = bucket_range(cfg.min_bucket_reso, cfg.max_bucket_reso, cfg.bucket_reso_steps)
    return [Finding("note", name, f"{given} is used as {used}, a multiple of bucket_reso_steps "
                    f"{cfg.bucket_reso_steps} (as sd-scripts does)")
            for name, given, used in (("min_bucket_reso", cfg.min_bucket_reso, low),
                                      ("max_bucket_reso", cfg.max_bucket_reso, high)) if given != used]


def _steps(cfg: TrainConfig) -> list[Finding]:
    """sd-scripts' rule: epochs decide when given, else steps; with neither it runs a hidden 1,600."""
    if cfg.max_train_epochs is None and cfg.max_train_steps <= 0:
        return [Finding("error", "max_train_epochs", "set max_train_epochs or max_train_steps (neither is "
                        "set; sd-scripts would silently run its default of 1,600 steps)")]
    if cfg.max_train_epochs is not None and cfg.max_train_steps > 0:
        return [Finding("warning", "max_train_steps", f"max_train_steps {cfg.max_train_steps} is ignored: "
                        f"max_train_epochs {cfg.max_train_epochs} decides the steps (as in sd-scripts); "
                        "empty one of them")]
    return []


def _timesteps(cfg: TrainConfig) -> list[Finding]:
    if cfg.min_timestep >= cfg.max_timestep:
        return [Finding("error", "min_timestep", f"min_timestep {cfg.min_timestep} must be below max_timestep "
                        f"{cfg.max_timestep}: no timestep would be left to train")]
    return []


def _warmup(cfg: TrainConfig) -> list[Finding]:
    if cfg.lr_warmup_steps and cfg.lr_scheduler in ("constant", "adafactor"):
        return [Finding("note", "lr_warmup_steps", f"{cfg.lr_scheduler} has no warmup, so lr_warmup_steps "
                        f"{cfg.lr_warmup_steps:g} is ignored (sd-scripts would refuse it; use "
                        "constant_with_warmup to warm up)")]
    return []


def _scheduler_needs_optimizer(cfg: TrainConfig) -> list[Finding]:
    if cfg.lr_scheduler == "adafactor" and cfg.optimizer_type != "Adafactor":
        return [Finding("error", "lr_scheduler", f"adafactor only works with optimizer_type Adafactor, not "
                        f"{cfg.optimizer_type}; pick another scheduler or the Adafactor optimizer")]
    return []


def _model_flags(cfg: TrainConfig) -> list[Finding]:
    out = []
    if cfg.sdxl and cfg.v2:
        out.append(Finding("error", "v2", "sdxl and v2 are both set; a model is SD 2.x or SDXL — clear one"))
    if cfg.v_parameterization and not cfg.v2:
        out.append(Finding("warning", "v_parameterization", "v-prediction is for SD 2.x 768-v models; "
                           "with an SD1 or SDXL base the training target is unexpected"))
    return out


def _network(cfg: TrainConfig) -> list[Finding]:
    out = []
    if cfg.network_alpha > cfg.network_dim > 0:       # rank 0 is a range error of its own
        out.append(Finding("warning", "network_alpha", f"alpha {cfg.network_alpha:g} is above rank {cfg.network_dim}: "
                           f"updates are scaled up by {cfg.network_alpha / cfg.network_dim:g}×, which usually "
                           "needs a lower learning rate"))
    for key in ("network_args", "optimizer_args"):
        try:
            parse_key_values(getattr(cfg, key), key)
        except ConfigError as exc:
            out.append(Finding("error", key, str(exc).split(": ", 1)[1]))
    out += _loraplus(cfg) + _blocks(cfg)
    if cfg.network_module == "lycoris.kohya" and "algo" not in _safe_args(cfg):
        out.append(Finding("note", "network_args", "lycoris.kohya without algo= trains LoCon (algo=locon)"))
    if cfg.dim_from_weights and not cfg.network_weights:
        out.append(Finding("error", "dim_from_weights", "needs network_weights (the LoRA to take rank and alpha from)"))
    return out


def _blocks(cfg: TrainConfig) -> list[Finding]:
    """block_dims / *_lr_weight & co (networks.lora): counts per model family, numbers, presets."""
    args = _safe_args(cfg)
    given = [k for k in BLOCK_ARGS if k in args]
    if not given:
        return []
    if cfg.network_module != "networks.lora":
        return [Finding("error", "network_args", f"{given[0]} is an argument of networks.lora; "
                        f"{cfg.network_module} does not read it here")]
    if cfg.dim_from_weights:
        return [Finding("note", "network_args", f"{', '.join(given)}: not used with dim_from_weights (the "
                        "modules and ranks come from network_weights), as in sd-scripts")]
    try:
        parse_blocks(args, cfg.sdxl, cfg.network_dim, cfg.network_alpha, None, 1.0)
    except ConfigError as exc:
        return [Finding("error", "network_args", str(exc).split(": ", 1)[1])]
    return []


def _loraplus(cfg: TrainConfig) -> list[Finding]:
    try:
        ratios = cfg.loraplus_ratios()
    except ConfigError as exc:
        return [Finding("error", "network_args", str(exc).split(": ", 1)[1])]
    if any(ratios.values()) and cfg.network_module != "networks.lora":
        return [Finding("error", "network_args", "loraplus_* ratios are arguments of networks.lora; "
                        f"{cfg.network_module} does not read them here")]
    return []


def _safe_args(cfg: TrainConfig) -> dict:
    try:
        return cfg.network_args_dict()
    except ConfigError:
        return {}


def _text_encoder(cfg: TrainConfig) -> list[Finding]:
    if cfg.stop_text_encoder_training and not cfg.trains_text_encoder():
        return [Finding("note", "stop_text_encoder_training", "the text encoder is not trained in this run; ignored")]
    return []


def _clip_skip(cfg: TrainConfig) -> list[Finding]:
    if cfg.sdxl and cfg.clip_skip > 1:
        return [Finding("note", "clip_skip", "SDXL always uses the penultimate layer of both text encoders; "
                        f"clip_skip {cfg.clip_skip} has no effect (as in sd-scripts)")]
    return []


def _samples(cfg: TrainConfig) -> list[Finding]:
    wanted = [k for k in ("sample_every_n_epochs", "sample_every_n_steps") if getattr(cfg, k)]
    if wanted and not cfg.sample_prompts:
        return [Finding("warning", "sample_prompts", f"{wanted[0]} is set but there is no prompt file")]
    if len(wanted) == 2:
        return [Finding("note", "sample_every_n_steps", "ignored: sample_every_n_epochs is set and wins, "
                        "as in sd-scripts")]
    return []


def _required_paths(cfg: TrainConfig) -> list[Finding]:
    out = []
    for name in ("pretrained_model_name_or_path", "train_data_dir", "output_dir"):
        if not getattr(cfg, name):
            out.append(Finding("error", name, f"not set: {FIELDS[name].metadata['help']}"))
    return out


def _flip_with_cache(cfg: TrainConfig) -> list[Finding]:
    if cfg.flip_aug and cfg.cache_latents:
        return [Finding("note", "flip_aug", "with cache_latents every image is encoded twice (as is and mirrored): "
                        "caching takes twice as long")]
    return []


def _augment_with_cache(cfg: TrainConfig) -> list[Finding]:
    """color_aug and random_crop change an image at every use: sd-scripts refuses them with cached latents."""
    if not (cfg.cache_latents or cfg.cache_latents_to_disk):
        return []
    return [Finding("error", name, "changes every image at each use, so its latents cannot be cached: turn "
                    "cache_latents (and cache_latents_to_disk) off, as sd-scripts refuses it")
            for name in ("color_aug", "random_crop") if getattr(cfg, name)]


def _latent_cache(cfg: TrainConfig) -> list[Finding]:
    if cfg.cache_latents_to_disk and not cfg.cache_latents:
        return [Finding("note", "cache_latents", "cache_latents_to_disk turns cache_latents on, as in sd-scripts")]
    return []


def _text_encoder_cache(cfg: TrainConfig) -> list[Finding]:
    """sd-scripts' rules for cache_text_encoder_outputs: the text encoder must not train, and the
    caption text must not change from step to step (caption_dropout_every_n_epochs only swaps in the
    empty caption, which is cached too)."""
    if not cfg.cache_text_encoder_outputs:
        return []
    out = []
    if cfg.trains_text_encoder():
        out.append(Finding("error", "cache_text_encoder_outputs", "the text encoder's LoRA trains, so its outputs "
                           "change every step: set network_train_unet_only (or text_encoder_lr 0), or turn the cache off"))
    changing = [name for name, on in (("shuffle_caption", cfg.shuffle_caption),
                                      ("caption_dropout_rate", cfg.caption_dropout_rate > 0),
                                      ("caption_tag_dropout_rate", cfg.caption_tag_dropout_rate > 0),
                                      ("token_warmup_step", cfg.token_warmup_step > 0)) if on]
    if changing:
        out.append(Finding("error", "cache_text_encoder_outputs", f"{' and '.join(changing)} change the caption "
                           "text every step, so it cannot be encoded once (sd-scripts refuses this too); turn "
                           "them or the cache off"))
    return out


def _loss(cfg: TrainConfig) -> list[Finding]:
    """huber_* are read only by the huber and smooth_l1 losses, huber_scale not by the snr schedule."""
    huber = cfg.loss_type in ("huber", "smooth_l1")
    changed = [k for k in ("huber_schedule", "huber_c", "huber_scale")
               if getattr(cfg, k) != FIELDS[k].default]
    if not huber and changed:
        return [Finding("note", changed[0], f"{', '.join(changed)}: only read with loss_type huber or smooth_l1, "
                        f"not {cfg.loss_type}; ignored")]
    if huber and cfg.huber_c <= 0:
        return [Finding("error", "huber_c", f"{cfg.huber_c:g}: the {cfg.loss_type} threshold must be above 0")]
    if huber and cfg.huber_schedule == "snr" and cfg.huber_scale != 1.0:
        return [Finding("note", "huber_scale", f"{cfg.huber_scale:g} is ignored by the snr schedule (as in "
                        "sd-scripts); it scales the exponential and constant ones")]
    return []


def _noise(cfg: TrainConfig) -> list[Finding]:
    out = []
    if cfg.adaptive_noise_scale is not None and not cfg.noise_offset:
        out.append(Finding("error", "adaptive_noise_scale", "needs noise_offset (it is added to it); set "
                           "noise_offset or clear adaptive_noise_scale, as sd-scripts refuses it"))
    if cfg.noise_offset_random_strength and not cfg.noise_offset:
        out.append(Finding("note", "noise_offset_random_strength", "noise_offset is 0: nothing to randomise"))
    if cfg.ip_noise_gamma_random_strength and not cfg.ip_noise_gamma:
        out.append(Finding("note", "ip_noise_gamma_random_strength", "ip_noise_gamma is 0: nothing to randomise"))
    if cfg.zero_terminal_snr and not cfg.v_parameterization:
        out.append(Finding("warning", "zero_terminal_snr", "without v_parameterization the noisiest step has no "
                           "signal to predict from: training will be unexpected (sd-scripts warns the same)"))
    return out


def _keep_last(cfg: TrainConfig) -> list[Finding]:
    """save_last_n_* act only on the saves they thin out, as sd-scripts' removal does."""
    needs = {"save_last_n_epochs": ("save_every_n_epochs", cfg.save_every_n_epochs),
             "save_last_n_steps": ("save_every_n_steps", cfg.save_every_n_steps),
             "save_last_n_epochs_state": ("save_state with save_every_n_epochs",
                                          cfg.save_state and cfg.save_every_n_epochs),
             "save_last_n_steps_state": ("save_state with save_every_n_steps",
                                         cfg.save_state and cfg.save_every_n_steps)}
    return [Finding("note", name, f"ignored: it thins out the saves of {what}, which is not set")
            for name, (what, on) in needs.items() if getattr(cfg, name) and not on]


def _validation(cfg: TrainConfig) -> list[Finding]:
    """validation_split below 1; the other validation options act only with a split."""
    if cfg.validation_split >= 1:
        return [Finding("error", "validation_split", f"{cfg.validation_split:g} would hold out every image; "
                        "give a fraction below 1 (e.g. 0.1)")]
    if not cfg.validation_split:
        wanted = [k for k in ("validation_seed", "validate_every_n_epochs", "validate_every_n_steps",
                              "max_validation_steps") if getattr(cfg, k) is not None]
        return [Finding("note", wanted[0], f"{', '.join(wanted)}: ignored, validation_split is 0 "
                        "(no images are held out)")] if wanted else []
    if cfg.validation_seed is None and cfg.seed is None:
        return [Finding("warning", "validation_seed", "neither validation_seed nor seed is set: the held-out "
                        "images are drawn when the run starts, so the plan's buckets and steps may differ a little")]
    return []


def _vae(cfg: TrainConfig) -> list[Finding]:
    from pathlib import Path
    if cfg.vae and not Path(cfg.vae).expanduser().exists():
        return [Finding("error", "vae", f"{cfg.vae} not found; give a VAE file or folder, or leave it empty "
                        "for the model's own")]
    if cfg.sdxl and cfg.mixed_precision == "fp16" and not cfg.no_half_vae:
        return [Finding("warning", "no_half_vae", "SDXL's VAE overflows in fp16 (NaN latents, black samples); "
                        "turn no_half_vae on")]
    return []


def _memory(cfg: TrainConfig) -> list[Finding]:
    """fp8 and full half precision need the mixed precision that computes with them (sd-scripts asserts it)."""
    out = []
    for name in ("fp8_base", "fp8_base_unet"):
        if getattr(cfg, name) and cfg.mixed_precision == "no":
            out.append(Finding("error", name, "needs mixed_precision fp16 or bf16: fp8 weights are only stored, "
                               "the computing is done in fp16/bf16"))
    for name, precision in (("full_bf16", "bf16"), ("full_fp16", "fp16")):
        if getattr(cfg, name) and cfg.mixed_precision != precision:
            out.append(Finding("error", name, f"needs mixed_precision {precision} (now {cfg.mixed_precision})"))
    if cfg.full_bf16 and cfg.full_fp16:
        out.append(Finding("error", "full_fp16", "full_bf16 and full_fp16 are both set; keep one"))
    return out


def _trackers(cfg: TrainConfig) -> list[Finding]:
    import importlib.util
    if cfg.log_with in ("wandb", "all") and importlib.util.find_spec("wandb") is None:
        return [Finding("error", "log_with", f"{cfg.log_with} needs the wandb package: "
                        "pip install 'lora-workbench[wandb]'")]
    wandb_only = [k for k in ("log_tracker_name", "wandb_run_name") if getattr(cfg, k)]
    if wandb_only and cfg.log_with == "tensorboard":
        return [Finding("note", wandb_only[0], "only used by wandb; log_with is tensorboard")]
    return []


def _caption_tags(cfg: TrainConfig) -> list[Finding]:
    """keep_tokens_separator is read only where tags are moved or cut, as in sd-scripts."""
    if cfg.keep_tokens_separator and not (cfg.shuffle_caption or cfg.token_warmup_step or cfg.caption_tag_dropout_rate):
        return [Finding("note", "keep_tokens_separator", "only read with shuffle_caption, token_warmup_step or "
                        f"caption_tag_dropout_rate; without them {cfg.keep_tokens_separator!r} stays in the "
                        "captions as written (as in sd-scripts)")]
    return []


def _masks(cfg: TrainConfig) -> list[Finding]:
    """masked_loss needs masks; the conditioning folder is read only with masked_loss (sd-scripts:
    its mask dataset exists only then); alpha_mask masks the loss on its own."""
    if cfg.masked_loss and not (cfg.conditioning_data_dir or cfg.alpha_mask):
        return [Finding("error", "masked_loss", "no masks: set conditioning_data_dir (a folder of mask images) "
                        "or alpha_mask (the images' alpha channel)")]
    if cfg.conditioning_data_dir and not cfg.masked_loss:
        return [Finding("note", "conditioning_data_dir", "only read with masked_loss; ignored")]
    if cfg.conditioning_data_dir and not Path(cfg.conditioning_data_dir).expanduser().is_dir():
        return [Finding("error", "conditioning_data_dir", f"{cfg.conditioning_data_dir}: not a folder; give the "
                        "folder of mask images")]
    return []


def _face_crop(cfg: TrainConfig) -> list[Finding]:
    """sd-scripts crops around faces only without buckets, on images read at every use."""
    try:
        if cfg.face_crop_range() is None:
            return []
    except ConfigError as exc:
        return [Finding("error", "face_crop_aug_range", str(exc).split(": ", 1)[1])]
    if cfg.enable_bucket:
        return [Finding("note", "face_crop_aug_range", "ignored with enable_bucket: sd-scripts crops around "
                        "faces only without buckets")]
    if cfg.cache_latents or cfg.cache_latents_to_disk:
        return [Finding("error", "face_crop_aug_range", "crops each image differently at each use, so its latents "
                        "cannot be cached: turn cache_latents (and cache_latents_to_disk) off")]
    return []


def _weighted_captions(cfg: TrainConfig) -> list[Finding]:
    cuts = [k for k in ("shuffle_caption", "caption_tag_dropout_rate", "token_warmup_step") if getattr(cfg, k)]
    if cfg.weighted_captions and cuts:
        return [Finding("note", "weighted_captions", f"{cuts[0]} splits captions on commas: keep commas out of "
                        "(...) and [...] or their weights break (as sd-scripts warns)")]
    return []


def _attention(cfg: TrainConfig) -> list[Finding]:
    """sd-scripts' order: mem_eff_attn, else xformers, else sdpa; xformers must be installed."""
    if cfg.xformers and not cfg.mem_eff_attn and importlib.util.find_spec("xformers") is None:
        return [Finding("error", "xformers", "the xformers package is not installed: pip install xformers, or use "
                        "sdpa (PyTorch's own, as fast on torch 2)")]
    if cfg.mem_eff_attn and cfg.xformers:
        return [Finding("note", "xformers", "not used: mem_eff_attn wins (as in sd-scripts)")]
    return []


RULES = (_choices, _ranges, _resolution_and_buckets, _steps, _timesteps, _warmup, _scheduler_needs_optimizer, _model_flags,
         _network, _text_encoder, _clip_skip, _samples, _flip_with_cache, _latent_cache, _text_encoder_cache,
         _loss, _noise, _keep_last, _validation, _caption_tags, _augment_with_cache, _vae, _memory, _trackers,
         _masks, _face_crop, _weighted_captions, _attention)


def validate(cfg: TrainConfig, require_paths: bool = False) -> list[Finding]:
    """All findings for a config. `require_paths`: also demand model, data and output paths."""
    findings = [f for rule in RULES for f in rule(cfg)]
    if require_paths:
        findings = _required_paths(cfg) + findings
    return findings


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "error"]


def unrunnable(cfg: TrainConfig, name: str) -> str | None:
    """Why field `name`'s value in `cfg` cannot run (its first error, as "name: message"), or None.
    The Parameters page never saves such a value (a negative learning rate, a bucket step that
    is no multiple of 64); findings on other fields never block an edit of this one."""
    found = [f for f in errors(validate(cfg)) if f.field == name]
    return f"{name}: {found[0].message}" if found else None

