"""LyCORIS networks (LoCon, LoHa, LoKr ...) built by lycoris-lora, behind the same `Network`.

network_module = lycoris.kohya; network_args: algo=locon|loha|lokr|..., preset, conv_dim,
conv_alpha, rank_dropout, module_dropout, factor (LoKr) and lycoris' other arguments.

Three things of lycoris-lora 4.x are handled here:
- Its default preset "full" names time_embedding.linear_1 twice on a diffusers UNet (once as a
  TimestepEmbedding block, once by name) and stops with "duplicated lora name". Without a
  preset= argument we pass our own preset, "kohya": the targets of sd-scripts' networks.lora
  (LoCon's conv blocks when conv_dim is given).
- Presets are applied to class attributes of LycorisNetworkKohya and stay there; maps a preset
  does not name would carry over to the next network. Each creation starts clean and restores.
- It names text-encoder modules by walking the model, so transformers 5's flattened
  CLIPTextModel gives `lora_te_encoder_...`; the names get their `text_model_` part back here.
"""
from __future__ import annotations

import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import torch

from trainer.network import (
    TEXT_ENCODER_BLOCKS,
    UNET_ATTENTION_BLOCKS,
    UNET_CONV_BLOCKS,
    Network,
    read_lora_file,
    unet_name_rule,
)
from workbench.errors import UserError
from workbench.lora.names import canonical_lora_name, is_text_encoder_name

DEFAULT_PRESET = "kohya"
PRESET_ATTRIBUTES = ("ENABLE_CONV", "UNET_TARGET_REPLACE_MODULE", "UNET_TARGET_REPLACE_NAME",
                     "TEXT_ENCODER_TARGET_REPLACE_MODULE", "TEXT_ENCODER_TARGET_REPLACE_NAME",
                     "MODULE_ALGO_MAP", "NAME_ALGO_MAP", "USE_FNMATCH", "TARGET_EXCLUDE_NAME")
# Tensor name endings that give a LyCORIS module's rank in their first dimension.
RANK_TENSORS = (".lora_down.weight", ".hada_w1_b", ".lokr_w2_b", ".lokr_w1_b")


class LycorisNetwork(Network):
    """lycoris modules have their own max-norm rule (LoHa/LoKr have no up·down to scale)."""

    @torch.no_grad()
    def apply_max_norm(self, max_norm: float, device) -> tuple[int, float, float]:
        results = [m.apply_max_norm(max_norm, device) for m in self.text_encoder_modules + self.unet_modules]
        results = [(bool(scaled), float(norm)) for scaled, norm in results if scaled is not None]
        if not results:
            return 0, 0.0, 0.0
        norms = [norm for _, norm in results]
        return sum(scaled for scaled, _ in results), sum(norms) / len(norms), max(norms)


def create_lycoris_network(cfg, unet, text_encoders: list, weights_path: str | None = None) -> LycorisNetwork:
    """The LyCORIS network of a run (not yet applied), continued from weights_path or network_weights."""
    args = cfg.network_args_dict()
    algo = _algo(args)
    path = weights_path or cfg.network_weights or None
    weights = read_lora_file(path, unet) if path else {}
    rank, alpha = _rank_of_file(weights, path) if cfg.dim_from_weights else (cfg.network_dim, cfg.network_alpha)
    # A continued LoRA keeps its text-encoder part even when only the UNet trains now.
    with_te = cfg.trains_text_encoder() or any(is_text_encoder_name(key) for key in weights)
    lycoris_net = _create(cfg, args, rank, alpha, unet, text_encoders if with_te else [])
    for module in lycoris_net.text_encoder_loras:
        module.lora_name = canonical_lora_name(module.lora_name)
    rename = unet_name_rule(unet)          # lycoris walks the diffusers UNet: SDXL gets the original names
    for module in lycoris_net.unet_loras:
        module.lora_name = rename(module.lora_name)
    if not lycoris_net.unet_loras:
        raise UserError(f"network_args: LyCORIS algo={algo} with this preset puts no module on the UNet")
    network = LycorisNetwork(list(lycoris_net.unet_loras), list(lycoris_net.text_encoder_loras),
                             [unet, *text_encoders], cfg.trains_text_encoder(), rank, alpha, algo)
    if weights:
        network.load_weights_dict(weights, path)
    return network


def _create(cfg, args: dict[str, str], rank: int, alpha: float, unet, text_encoders: list):
    """lycoris.kohya.create_network with our preset handling; its asserts become UserErrors."""
    from lycoris.kohya import LycorisNetworkKohya, create_network
    # One encoder is passed alone: lycoris then names it lora_te; a list gives lora_te1 / lora_te2.
    te_arg = None if not text_encoders else text_encoders[0] if len(text_encoders) == 1 else text_encoders
    options = {key: value for key, value in args.items() if key != "preset"}
    options.setdefault("dropout", cfg.network_dropout)
    with _preset(args, LycorisNetworkKohya) as preset:
        try:
            return create_network(1.0, rank, alpha, None, te_arg, unet, preset=preset,
                                  warn_on_unmatched="preset" in args, **options)
        except AssertionError as exc:   # lycoris checks its preset and module names with asserts
            raise UserError(f"network_args preset={args.get('preset', DEFAULT_PRESET)}: LyCORIS refused it "
                            f"({exc or 'unreadable preset'}); leave preset out or use preset=attn-mlp") from None


def _algo(args: dict[str, str]) -> str:
    from lycoris.wrapper import network_module_dict
    algo = args.get("algo", "locon").lower()
    if algo not in network_module_dict:
        raise UserError(f'network_args: algo="{algo}" is not a LyCORIS algorithm '
                        f"({', '.join(sorted(network_module_dict))})")
    return algo


def kohya_preset(with_conv: bool) -> dict:
    """sd-scripts' networks.lora targets as a LyCORIS preset."""
    return {"enable_conv": with_conv,
            "unet_target_module": list(UNET_ATTENTION_BLOCKS + (UNET_CONV_BLOCKS if with_conv else ())),
            "unet_target_name": [],
            "text_encoder_target_module": list(TEXT_ENCODER_BLOCKS),
            "text_encoder_target_name": []}


@contextmanager
def _preset(args: dict[str, str], network_class):
    """Yield the preset argument for lycoris (a built-in name or a .toml path), with the class
    attributes lycoris writes presets into cleared before and restored after."""
    from lycoris.config import PRESET
    name = args.get("preset")
    if name is not None and name not in PRESET and not Path(name).is_file():
        raise UserError(f'network_args: preset="{name}" is neither a LyCORIS preset '
                        f"({', '.join(PRESET)}) nor a preset .toml file")
    saved = {attribute: getattr(network_class, attribute) for attribute in PRESET_ATTRIBUTES}
    network_class.MODULE_ALGO_MAP, network_class.NAME_ALGO_MAP = {}, {}
    network_class.USE_FNMATCH, network_class.TARGET_EXCLUDE_NAME = False, []
    try:
        if name is not None:
            yield name
        else:
            with tempfile.TemporaryDirectory() as folder:
                yield _write_preset(Path(folder) / f"{DEFAULT_PRESET}.toml", kohya_preset("conv_dim" in args))
    finally:
        for attribute, value in saved.items():
            setattr(network_class, attribute, value)


def _write_preset(path: Path, preset: dict) -> str:
    import tomli_w
    path.write_text(tomli_w.dumps(preset), encoding="utf-8")
    return str(path)


def _rank_of_file(weights: dict[str, torch.Tensor], path) -> tuple[int, float]:
    """dim_from_weights: the (rank, alpha) most of the file's modules have."""
    if not weights:
        raise UserError("dim_from_weights: set network_weights to the LoRA to take rank and alpha from")
    pairs = Counter()
    for key, tensor in weights.items():
        if key.endswith(RANK_TENSORS):
            name = key.split(".")[0]
            alpha = weights.get(f"{name}.alpha")
            pairs[(tensor.shape[0], float(alpha) if alpha is not None else float(tensor.shape[0]))] += 1
    if not pairs:
        raise UserError(f"dim_from_weights: no rank can be read from {path} "
                        "(a full-matrix LoKr has none): set network_dim and network_alpha instead")
    return pairs.most_common(1)[0][0]
