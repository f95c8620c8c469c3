"""Configs that travel: kohya_ss GUI JSON or sd-scripts TOML in, the sd-scripts job out.

Import turns a kohya_ss GUI config (flat keys; numbers often strings or "") or an sd-scripts
`--config_file` TOML into a workbench config and reports every key: mapped (to what), ignored
(why), or dropped (secrets — API keys and tokens are never copied). Export writes the sd-scripts
config TOML (our keys are sd-scripts' names, so it is a dump minus workbench-only keys) and the
`accelerate launch` command that runs the same job with train_network.py / sdxl_train_network.py.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from workbench.config.schema import DYNAMO_BACKENDS, FIELDS, OPTIMIZERS, ConfigError, TrainConfig, from_dict, save_toml
from workbench.fileio import write_text_atomic

SECRET = re.compile(r"api_?key|(^|_)key$|password|passwd|secret|credential|(^|_)token$|^hf_", re.IGNORECASE)
GUI_DEFAULT_MAX_TRAIN_STEPS = 1600   # kohya_ss GUI's "Max train steps" default, sd-scripts' default too
LYCORIS_ALGOS = {"LoCon": "locon", "LyCORIS/LoCon": "locon", "LyCORIS/LoHa": "loha", "LyCORIS/LoKr": "lokr",
                 "LyCORIS/iA3": "ia3", "LyCORIS/DyLoRA": "dylora", "LyCORIS/GLoRA": "glora",
                 "LyCORIS/Diag-OFT": "diag-oft", "LyCORIS/BOFT": "boft", "LyCORIS/Native Fine-Tuning": "full"}
OTHER_NETWORKS = {"Kohya DyLoRA": "networks.dylora", "LoRA-FA": "networks.lora_fa"}
# LyCORIS options the GUI saves with these "off" values; only other values become network_args
LYCORIS_OFF = {"factor": -1, "use_tucker": False, "use_scalar": False, "decompose_both": False, "train_norm": False,
               "rank_dropout_scale": False, "dora_wd": False, "bypass_mode": False, "rescaled": False, "constrain": 0}
BLOCK_WEIGHTS = ("down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold", "block_dims",
                 "block_alphas", "conv_block_dims", "conv_block_alphas")
IGNORED_WHY = {
    **dict.fromkeys(("num_processes", "num_machines", "multi_gpu", "gpu_ids", "main_process_port",
                     "extra_accelerate_launch_args"), "several GPUs: `accelerate launch -m trainer` (README)"),
    **dict.fromkeys(("dynamo_mode", "dynamo_use_fullgraph", "dynamo_use_dynamic"),
                    "torch.compile's own mode is used, one static graph per batch shape"),
    **dict.fromkeys(("model_list", "training_preset", "save_as_bool", "file_path", "headless", "print_only"),
                    "kohya_ss GUI state, not a training option"),
    **dict.fromkeys(("log_tracker_config", "log_config"), "tracker config files are not read; log_tracker_name "
                                                           "and wandb_run_name are"),
    "additional_parameters": "free-form sd-scripts arguments; add the ones you need by hand",
    "dataset_config": "the workbench reads <repeats>_<name> folders; a dataset_config TOML is not read",
    "network_train_text_encoder_only": "text-encoder-only training is not supported",
    **dict.fromkeys(BLOCK_WEIGHTS, "kohya_ss passes block-wise ranks and learning rates for Standard and Kohya "
                                   "LoCon only"),
}


@dataclass
class ReportLine:
    status: str      # "mapped" | "ignored" | "dropped" | "default"
    key: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<8} {self.key}: {self.detail}"


@dataclass
class Imported:
    config: TrainConfig
    report: list[ReportLine]
    source: str      # "kohya_ss GUI JSON" | "sd-scripts TOML" | "workbench TOML"

    def text(self) -> str:
        off = [r.key for r in self.report if r.status == "unset"]
        lines = [r.line() for r in self.report if r.status != "unset"]
        if off:
            lines.append(f"ignored  (empty or off in the file, nothing lost): {', '.join(off)}")
        return "\n".join(lines)


class _Import:
    """Collects our keys' raw values and one report line per source key."""

    def __init__(self, data: dict[str, Any]):
        self.data, self.values, self.report, self.used = data, {}, [], set()

    def take(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def number(self, key: str) -> float | None:
        try:
            return _number(self.take(key))
        except ConfigError as exc:
            raise ConfigError(f"{key}: {exc}") from None

    def whole(self, key: str) -> int | None:
        number = self.number(key)
        return None if number is None else int(number)

    def set(self, target: str, value: Any, key: str, why: str = "") -> None:
        self.values[target] = value
        shown = "empty" if value is None else json.dumps(value, ensure_ascii=False)
        arrow = "" if key == target else f"-> {target} "
        self.report.append(ReportLine("mapped", key, f"{arrow}= {shown}{f' ({why})' if why else ''}"))

    def note(self, status: str, key: str, why: str) -> None:
        self.used.add(key)
        self.report.append(ReportLine(status, key, why))


# ---------------------------------------------------------------- value helpers

def _number(value: Any) -> float | None:
    """GUI numbers: 1, 1.0, "1e-4", "" (empty) -> float or None."""
    if value is None or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{value!r} is not a number") from None


def _number_or_text(value: Any) -> float | str | None:
    """A number where there is one; anything else is left for the config to refuse by key name."""
    try:
        return _number(value)
    except ConfigError:
        return str(value)


def _is_off(value: Any) -> bool:
    return value in (None, "", False, 0, "0", "none", "None", [])


def split_args(text: str) -> list[str]:
    """The GUI's one space-separated "key=value" string -> a list. Quotes are honoured and a
    piece without "=" joins the one before ("betas=(0.9, 0.99)" stays whole)."""
    out: list[str] = []
    for piece in shlex.split(str(text)):
        if "=" not in piece and out:
            out[-1] += " " + piece
        else:
            out.append(piece)
    return out


def canonical_optimizer(name: str) -> str:
    """sd-scripts compares optimizer names case-insensitively; we keep one spelling."""
    return next((o for o in OPTIMIZERS if o.lower() == str(name).lower()), str(name))


# ---------------------------------------------------------------- kohya_ss GUI JSON

def _gui_steps(imp: _Import) -> None:
    epoch, epochs, steps = (imp.whole(k) for k in ("epoch", "max_train_epochs", "max_train_steps"))
    if epochs:
        imp.set("max_train_epochs", epochs, "max_train_epochs", "the GUI's override wins over Epoch and steps")
    elif steps:
        why = (f"{GUI_DEFAULT_MAX_TRAIN_STEPS:,} is the kohya_ss GUI's default Max train steps — check you meant it; "
               if steps == GUI_DEFAULT_MAX_TRAIN_STEPS else "")
        imp.set("max_train_steps", steps, "max_train_steps", f"{why}max_train_steps wins over Epoch {epoch}")
        imp.set("max_train_epochs", None, "epoch", "not used: max_train_steps is set")
    elif epoch:
        imp.set("max_train_epochs", epoch, "epoch", "max_train_steps is 0 or empty")
    elif {"epoch", "max_train_epochs", "max_train_steps"} & set(imp.data):
        imp.note("default", "epoch", "epochs and steps are all 0 or empty: the workbench default is used")


def _gui_warmup(imp: _Import) -> None:
    steps, percent = imp.whole("lr_warmup_steps"), imp.number("lr_warmup")
    if steps:
        imp.set("lr_warmup_steps", steps, "lr_warmup_steps", "whole steps; overrides LR warmup %")
    elif percent is not None and percent < 100:
        imp.set("lr_warmup_steps", percent / 100, "lr_warmup", f"{percent:g}% of the steps, as a ratio")
    elif percent is not None:
        imp.note("ignored", "lr_warmup", f"{percent:g}% would warm up for the whole run")


def _gui_learning_rates(imp: _Import) -> None:
    """The GUI's rule: text encoder LR 0 with a UNet LR trains the UNet only; "" counts as 0."""
    if "text_encoder_lr" not in imp.data and "unet_lr" not in imp.data:
        return
    te, unet = (imp.number(k) or 0.0 for k in ("text_encoder_lr", "unet_lr"))
    if te == 0 and unet == 0:
        imp.note("mapped", "text_encoder_lr, unet_lr", "both 0 or empty -> empty: both use learning_rate")
        return
    if unet:
        imp.set("unet_lr", unet, "unet_lr")
    if te == 0:
        imp.set("text_encoder_lr", 0.0, "text_encoder_lr")
        imp.set("network_train_unet_only", True, "text_encoder_lr", "0 with a UNet learning rate: UNet only")
    else:
        imp.set("text_encoder_lr", te, "text_encoder_lr")
    if unet == 0:
        imp.set("unet_lr", 0.0, "unet_lr", "text encoder only in the GUI: here the UNet gets learning rate 0")


def _gui_network(imp: _Import) -> None:
    lora_type = imp.take("LoRA_type") or "Standard"
    args = []
    if lora_type in LYCORIS_ALGOS:
        imp.set("network_module", "lycoris.kohya", "LoRA_type", f"{lora_type} -> algo={LYCORIS_ALGOS[lora_type]}")
        args.append(f"algo={LYCORIS_ALGOS[lora_type]}")
        preset = imp.take("LyCORIS_preset")
        args += [f"preset={preset}"] if preset else []
        args += _lycoris_extras(imp)
    elif lora_type in ("Standard", "Kohya LoCon"):
        imp.set("network_module", "networks.lora", "LoRA_type", lora_type)
    else:
        module = OTHER_NETWORKS.get(lora_type, lora_type)
        imp.set("network_module", module, "LoRA_type", "not supported here: `workbench check` lists the valid ones")
    args += _dropouts_and_conv(imp, lora_type)
    args += _loraplus(imp)
    args += _block_weights(imp) if lora_type in ("Standard", "Kohya LoCon") else []
    if args:
        imp.set("network_args", args, "network_args", "from LoRA_type and its options")


def _dropouts_and_conv(imp: _Import, lora_type: str) -> list[str]:
    args = []
    conv_dim, conv_alpha = imp.number("conv_dim"), imp.number("conv_alpha")
    if lora_type != "Standard" and conv_dim:
        args += [f"conv_dim={conv_dim:g}", f"conv_alpha={conv_alpha or 1:g}"]
    elif conv_dim:
        imp.note("ignored", "conv_dim", "the GUI passes conv_dim only for LoCon-type networks, not Standard")
    for key in ("rank_dropout", "module_dropout"):
        value = imp.number(key)
        args += [f"{key}={value:g}"] if value else []
    return args


def _loraplus(imp: _Import) -> list[str]:
    """The GUI's LoRA+ boxes: passed as network_args when not 0 or empty (its append_loraplus_network_args)."""
    args = []
    for key in ("loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio"):
        value = imp.number(key)
        args += [f"{key}={value:g}"] if value else []
    return args


def _block_weights(imp: _Import) -> list[str]:
    """block_dims, down_lr_weight & co: the GUI passes each one that is not empty as a network arg."""
    args = []
    for key in BLOCK_WEIGHTS:
        if key not in imp.data:
            continue
        value = imp.take(key)
        if value in (None, "", 0, "0"):
            imp.note("unset", key, "")
        else:
            args.append(f"{key}={str(value).replace(' ', '')}")
    return args


def _lycoris_extras(imp: _Import) -> list[str]:
    args = []
    for key, off in LYCORIS_OFF.items():
        value = imp.take(key)
        if value is not None and value != "" and value != off:
            args.append(f"{key}={value}")
    return args


def _gui_fixups(imp: _Import) -> None:
    """Single keys whose GUI meaning differs from the name or the value."""
    if "max_resolution" in imp.data:
        imp.set("resolution", imp.take("max_resolution"), "max_resolution")
    if "optimizer" in imp.data or imp.data.get("use_8bit_adam"):
        name = imp.take("optimizer") or ("AdamW8bit" if imp.take("use_8bit_adam") else "AdamW")
        imp.set("optimizer_type", canonical_optimizer(name), "optimizer")
    if "optimizer_args" in imp.data:
        imp.set("optimizer_args", split_args(imp.take("optimizer_args") or ""), "optimizer_args", "split on spaces")
    if "caption_extension" in imp.data and not imp.data["caption_extension"]:
        imp.take("caption_extension")
        imp.set("caption_extension", ".caption", "caption_extension", "empty means sd-scripts' default .caption")
    if imp.data.get("lora_network_weights") and not imp.data.get("network_weights"):
        imp.set("network_weights", imp.take("lora_network_weights"), "lora_network_weights", "legacy key")
    _gui_stop_text_encoder(imp)
    _gui_attention(imp)
    _gui_dynamo(imp)
    _gui_vae(imp)
    if imp.data.get("use_wandb") and not imp.data.get("log_with"):
        imp.take("use_wandb")
        imp.set("log_with", "wandb", "use_wandb", "the older GUI's Weights & Biases box")
    for key in ("seed", "save_every_n_epochs", "sample_every_n_epochs", "save_every_n_steps", "sample_every_n_steps",
                "save_last_n_epochs", "save_last_n_epochs_state", "save_last_n_steps", "save_last_n_steps_state",
                "adaptive_noise_scale"):
        if key in imp.data and _number_or_text(imp.data[key]) in (None, 0):
            imp.take(key)
            imp.set(key, None, key, "0 or empty means none here")
    if "clip_skip" in imp.data and _number_or_text(imp.data["clip_skip"]) in (None, 0):
        imp.take("clip_skip")
        imp.set("clip_skip", 1, "clip_skip", "0 means no skip (1)")
    _gui_noise_type(imp)


def _gui_noise_type(imp: _Import) -> None:
    """The GUI passes noise_offset for "Original" and the multires keys for "Multires", never both."""
    kind = imp.take("noise_offset_type") if "noise_offset_type" in imp.data else None
    other = {"Original": ("multires_noise_iterations", "multires_noise_discount"),
             "Multires": ("noise_offset", "noise_offset_random_strength", "adaptive_noise_scale")}.get(kind, ())
    for key in other:
        if key in imp.data:
            imp.take(key)
            imp.note("ignored", key, f"noise_offset_type is {kind}: the kohya_ss GUI does not pass it")
    if kind is not None:
        imp.note("mapped", "noise_offset_type", f"{kind}: its own keys are used")


def _gui_vae(imp: _Import) -> None:
    """The GUI passes no_half_vae for SDXL only (sdxl_no_half_vae); its vae_batch_size 0 is sd-scripts' 1."""
    if "sdxl_no_half_vae" in imp.data:
        on = bool(imp.take("sdxl_no_half_vae")) and bool(imp.data.get("sdxl"))
        imp.set("no_half_vae", on, "sdxl_no_half_vae", "the kohya_ss GUI passes it for SDXL only")
    if "vae_batch_size" in imp.data and not _number_or_text(imp.data["vae_batch_size"]):
        imp.take("vae_batch_size")
        imp.set("vae_batch_size", 1, "vae_batch_size", "0 or empty: sd-scripts' default 1")


def _gui_attention(imp: _Import) -> None:
    """The GUI's CrossAttention menu is saved as "xformers": "xformers" | "sdpa" | "none" (older
    GUIs: true/false) and passed as --xformers or --sdpa; "none" passes neither (plain attention)."""
    if "xformers" not in imp.data:
        return
    value = imp.take("xformers")
    choice = "xformers" if value in (True, "xformers") else "sdpa" if value == "sdpa" else "none"
    why = f"the GUI's CrossAttention {choice}"
    if choice == "xformers" and importlib.util.find_spec("xformers") is None:
        why += "; xformers is not installed here: pip install xformers, or untick xformers to use sdpa"
    imp.set("xformers", choice == "xformers", "xformers", why)
    imp.set("sdpa", choice == "sdpa", "xformers", "sd-scripts' plain attention when neither" if choice == "none" else "")


def _gui_dynamo(imp: _Import) -> None:
    """The GUI's accelerate option --dynamo_backend compiles the model: sd-scripts' torch_compile."""
    if "dynamo_backend" not in imp.data:
        return
    backend = str(imp.take("dynamo_backend") or "no")
    if backend.lower() == "no":
        imp.note("unset", "dynamo_backend", "")
    elif backend.lower() in DYNAMO_BACKENDS:
        imp.set("torch_compile", True, "dynamo_backend", "accelerate compiles the model with it")
        imp.set("dynamo_backend", backend.lower(), "dynamo_backend")
    else:
        imp.note("ignored", "dynamo_backend", f"{backend}: not a torch.compile backend shipped with PyTorch "
                 f"({', '.join(DYNAMO_BACKENDS)})")


def _gui_stop_text_encoder(imp: _Import) -> None:
    """Percent of the steps in both the GUI and the workbench; the GUI's LoRA tab ignores it."""
    for key in ("stop_text_encoder_training", "stop_text_encoder_training_pct"):
        percent = imp.whole(key)
        if percent and percent > 0:
            imp.set("stop_text_encoder_training", percent, key,
                    "% of the steps; note the kohya_ss GUI ignores it for LoRA, the workbench applies it")
        elif key in imp.data:
            imp.note("unset", key, "")


def _remaining_keys(imp: _Import) -> None:
    """Every key no step above consumed: our own names map as they are, secrets are dropped."""
    for key, value in imp.data.items():
        if key in imp.used:
            continue
        imp.used.add(key)
        if SECRET.search(key):
            imp.note("dropped", key, "looks like a secret (API key/token/password): never copied")
        elif key in FIELDS and not (value == "" and _required(key)):
            imp.set(key, value, key)
        elif key in FIELDS:
            imp.note("default", key, f"empty in the file: the workbench default {getattr(TrainConfig(), key)!r} is used")
        elif _is_off(value):
            imp.note("unset", key, "")
        else:
            imp.note("ignored", key, IGNORED_WHY.get(key, "not a workbench option (its trainer does not support it)"))


def _required(key: str) -> bool:
    return "None" not in str(FIELDS[key].type)


def import_gui_json(data: dict[str, Any]) -> tuple[dict[str, Any], list[ReportLine]]:
    imp = _Import(data)
    for step in (_gui_steps, _gui_warmup, _gui_learning_rates, _gui_network, _gui_fixups, _remaining_keys):
        step(imp)
    return imp.values, imp.report


# ---------------------------------------------------------------- sd-scripts TOML

# where sd-scripts' default differs from ours: a key missing from an sd-scripts TOML means this
SD_SCRIPTS_DEFAULTS = {"caption_extension": ".caption", "enable_bucket": False, "cache_latents": False,
                       "mixed_precision": "no", "save_precision": "float", "optimizer_type": "AdamW",
                       "lr_scheduler": "constant", "learning_rate": 2e-6, "lr_warmup_steps": 0,
                       "max_bucket_reso": 1024, "network_dim": 4, "save_every_n_epochs": None,
                       "max_train_epochs": None, "max_train_steps": GUI_DEFAULT_MAX_TRAIN_STEPS,
                       "sample_sampler": "ddim", "num_cpu_threads_per_process": 1, "no_half_vae": False,
                       "vae_batch_size": 1, "sdpa": False}
SD_SCRIPTS_ALIASES = {"caption_extention": "caption_extension"}   # sd-scripts keeps its old misspelling


def import_sd_scripts(data: dict[str, Any]) -> tuple[dict[str, Any], list[ReportLine]]:
    imp = _Import(_one_level(data))
    for old, new in SD_SCRIPTS_ALIASES.items():
        if old in imp.data and new not in imp.data:
            imp.set(new, imp.take(old), old, "sd-scripts' old spelling")
    if "optimizer_type" in imp.data or imp.data.get("use_8bit_adam") or imp.data.get("use_lion_optimizer"):
        legacy = "AdamW8bit" if imp.take("use_8bit_adam") else "Lion" if imp.take("use_lion_optimizer") else "AdamW"
        imp.set("optimizer_type", canonical_optimizer(imp.take("optimizer_type") or legacy), "optimizer_type")
    if "stop_text_encoder_training" in imp.data:
        imp.note("ignored", "stop_text_encoder_training", "a step count of train_db.py, not a train_network.py option; "
                 "the workbench's own is a percent of the steps")
    if isinstance(imp.data.get("text_encoder_lr"), list):
        rates = imp.take("text_encoder_lr")
        imp.set("text_encoder_lr", rates[0] if rates else None, "text_encoder_lr", "first of the list")
    for key, value in SD_SCRIPTS_DEFAULTS.items():
        if key not in imp.data and key not in imp.values:
            imp.values[key] = value
            imp.report.append(ReportLine("default", key, f"not in the file: sd-scripts' default {value!r}"))
    if "max_train_epochs" not in imp.data and "max_train_steps" not in imp.data:
        imp.report.append(ReportLine("default", "max_train_steps", "neither epochs nor steps in the file: "
                                     "sd-scripts' hidden 1,600 steps; set max_train_epochs"))
    imp.report.append(ReportLine("note", "sdxl", "sd-scripts picks SDXL by its script (sdxl_train_network.py): "
                                 "set sdxl = true if this config is for SDXL"))
    _remaining_keys(imp)
    return imp.values, imp.report


def _one_level(data: dict[str, Any]) -> dict[str, Any]:
    """sd-scripts' --config_file: top-level tables are lifted one level, nothing deeper."""
    flat = {}
    for key, value in data.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    return flat


# ---------------------------------------------------------------- files

def import_file(path: str | Path) -> Imported:
    """Read a kohya_ss GUI .json or an sd-scripts (or workbench) .toml; ConfigError names the file."""
    path = Path(path)
    data = _read(path)
    if path.suffix.lower() == ".json":
        source, (values, report) = "kohya_ss GUI JSON", import_gui_json(data)
    elif "config_version" in data:
        source, values, report = "workbench TOML", data, []
    else:
        source, (values, report) = "sd-scripts TOML", import_sd_scripts(data)
    try:
        cfg, unknown = from_dict(values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    report += [ReportLine("ignored", key, "not a workbench option") for key in unknown]
    return Imported(cfg, report, source)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    if path.suffix.lower() not in (".json", ".toml"):
        raise ConfigError(f"{path}: give a kohya_ss GUI .json or an sd-scripts .toml")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lower()[1:].upper()} ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected one JSON object of settings")
    return data


def write_new(text_or_cfg, out: str | Path, force: bool) -> Path:
    """Write a config (or text) to `out`, refusing to replace an existing file unless `force`."""
    out = Path(out)
    if out.exists() and not force:
        raise ConfigError(f"{out}: already exists; choose another name or pass --force to replace it")
    if isinstance(text_or_cfg, TrainConfig):
        return save_toml(text_or_cfg, out)
    write_text_atomic(out, text_or_cfg)
    return out


# ---------------------------------------------------------------- export to sd-scripts

WORKBENCH_ONLY = {
    "sdxl": "picks the script: sdxl_train_network.py",
    "num_cpu_threads_per_process": "an accelerate launch option, on the command line",
    "stop_text_encoder_training": "train_network.py has no such option: there the text encoder trains throughout",
    "fast_path": "sd-scripts compiles only with torch_compile; workbench's automatic compile on a GPU stays here",
}


def _empty(value: Any) -> bool:
    """Left out of the export: sd-scripts' own default means the same (None, "", [], a false flag)."""
    return value is None or value is False or (isinstance(value, (str, list)) and not value)


@dataclass
class Export:
    values: dict[str, Any]             # the sd-scripts config TOML
    script: str                        # train_network.py | sdxl_train_network.py
    threads: int
    file_name: str                     # <output_name>.sd-scripts.toml: the CLI and the app use the same
    notes: list[str] = field(default_factory=list)

    def toml(self) -> str:
        import tomli_w
        return tomli_w.dumps(self.values)

    def command(self, toml_path: str) -> str:
        return shlex.join(["accelerate", "launch", "--num_cpu_threads_per_process", str(self.threads),
                           self.script, "--config_file", toml_path])


def export_sd_scripts(cfg: TrainConfig) -> Export:
    notes = []
    values = {k: v for k, v in cfg.to_dict().items() if k not in WORKBENCH_ONLY and not _empty(v)}
    if cfg.stop_text_encoder_training:
        notes.append(f"stop_text_encoder_training left out: {WORKBENCH_ONLY['stop_text_encoder_training']}")
    if cfg.fast_path == "auto" and not cfg.torch_compile:
        notes.append(f"fast_path left out: {WORKBENCH_ONLY['fast_path']} (the same numbers, eager speed)")
    if cfg.max_train_epochs is not None:
        values.pop("max_train_steps", None)          # epochs decide; sd-scripts would ignore it anyway
    if not cfg.torch_compile:
        values.pop("dynamo_backend")                 # read by sd-scripts only with torch_compile
    if cfg.cache_text_encoder_outputs and not cfg.sdxl:
        values.pop("cache_text_encoder_outputs")     # train_network.py has no such option
        notes.append("cache_text_encoder_outputs left out: train_network.py has it for SDXL only; SD1/SD2 encode "
                     "every step there, with the same result")
    if cfg.max_token_length == 75:
        values.pop("max_token_length")               # sd-scripts' None: one 75-token window
    if cfg.clip_skip == 1:
        values.pop("clip_skip")                      # no skip; sd-scripts warns about any clip_skip with v2
    if cfg.lr_scheduler in ("constant", "adafactor") and values.pop("lr_warmup_steps", 0):
        notes.append(f"lr_warmup_steps left out: sd-scripts refuses a warmup with {cfg.lr_scheduler}")
    elif isinstance(cfg.lr_warmup_steps, float) and 0 < cfg.lr_warmup_steps < 1:
        notes.append("lr_warmup_steps is a ratio: sd-scripts takes one since 2024 (int_or_float); an older one "
                     "needs whole steps: ratio × total steps from `workbench plan`")
    if cfg.text_encoder_lr == 0 and not cfg.network_train_unet_only:
        values["network_train_unet_only"] = True
        notes.append("text_encoder_lr 0: network_train_unet_only = true added, as the workbench trains the UNet only")
    if cfg.log_with == "tensorboard":
        values.pop("log_with")                        # sd-scripts logs to TensorBoard whenever logging_dir is set
    if cfg.log_with != "wandb" and not cfg.logging_dir:
        notes.append("logging_dir is empty: sd-scripts writes no TensorBoard log (the workbench uses the run's tb/)"
                     + ("; with log_with all it refuses to start" if cfg.log_with == "all" else ""))
    if cfg.masked_loss and cfg.conditioning_data_dir:
        notes.append("conditioning_data_dir: train_network.py reads it only from a dataset_config subset, not with "
                     "train_data_dir folders; give each [[datasets.subsets]] conditioning_data_dir there")
    if not any((cfg.sdpa, cfg.xformers, cfg.mem_eff_attn)):
        notes.append("attention: sdpa, xformers and mem_eff_attn are off, so sd-scripts runs its plain attention too")
    script = "sdxl_train_network.py" if cfg.sdxl else "train_network.py"
    return Export(values, script, cfg.num_cpu_threads_per_process, f"{cfg.output_name or 'config'}.sd-scripts.toml", notes)
