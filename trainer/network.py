"""The LoRA network in kohya's format (sd-scripts' networks.lora): LoRA, and LoCon with conv_dim.

Targets: every Linear and 1x1 Conv2d inside the UNet's Transformer2DModel blocks, every Linear
inside the text encoders' CLIPAttention / CLIPMLP; with network_args conv_dim (and conv_alpha)
also every Linear and Conv2d of ResnetBlock2D, Downsample2D and Upsample2D (3x3 convs at
conv_dim, the rest at network_dim). Each target keeps its frozen weight W and gains
ΔW = up · down · alpha / rank, added to its output. Names follow workbench/lora/names.py.

`create_lora_network` builds networks.lora; trainer/lycoris_network.py builds lycoris.kohya on the
same `Network`, which is what the trainer talks to; trainer/network_registry.py picks one by
network_module (this module imports neither of them).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.errors import UserError
from workbench.lora.blocks import BLOCK_ARGS, Blocks, block_index, parse_blocks
from workbench.lora.names import (
    UNET_PREFIX,
    canonical_lora_name,
    is_text_encoder_name,
    lora_name,
    sgm_layout,
    sgm_unet_name,
    text_encoder_module_path,
    text_encoder_prefixes,
)

UNET_ATTENTION_BLOCKS = ("Transformer2DModel",)
UNET_CONV_BLOCKS = ("ResnetBlock2D", "Downsample2D", "Upsample2D")
# CLIPSdpaAttention / CLIPFlashAttention2 are the attention classes of transformers 4.x.
TEXT_ENCODER_BLOCKS = ("CLIPAttention", "CLIPSdpaAttention", "CLIPFlashAttention2", "CLIPMLP")
LORA_ARGS = ("conv_dim", "conv_alpha", "rank_dropout", "module_dropout",
             "loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio", *BLOCK_ARGS)


# ---------------------------------------------------------------- arguments

@dataclass(frozen=True)
class LoRAArgs:
    rank: int
    alpha: float
    conv_rank: int | None       # None: 3x3 convs are not trained (plain LoRA)
    conv_alpha: float
    dropout: float              # on the rank activations, each element
    rank_dropout: float         # per sample and rank
    module_dropout: float       # the whole module's delta


def parse_lora_args(cfg) -> LoRAArgs:
    """network_dim / network_alpha / network_dropout and the networks.lora network_args."""
    args = cfg.network_args_dict()
    unknown = sorted(set(args) - set(LORA_ARGS))
    if unknown:
        raise UserError(f'network_args: "{unknown[0]}" is not an argument of networks.lora '
                        f"(known: {', '.join(LORA_ARGS)}); for LyCORIS set network_module = lycoris.kohya")
    conv_rank = _number_arg(args, "conv_dim", int, None)
    if conv_rank is not None and conv_rank < 1:
        raise UserError(f"network_args: conv_dim={conv_rank} must be 1 or more (leave it out for no conv layers)")
    return LoRAArgs(
        rank=cfg.network_dim, alpha=float(cfg.network_alpha),
        conv_rank=conv_rank, conv_alpha=_number_arg(args, "conv_alpha", float, 1.0),
        dropout=_probability("network_dropout", cfg.network_dropout),
        rank_dropout=_probability("network_args rank_dropout", _number_arg(args, "rank_dropout", float, 0.0)),
        module_dropout=_probability("network_args module_dropout", _number_arg(args, "module_dropout", float, 0.0),
                                    one_allowed=True))


def _number_arg(args: dict[str, str], key: str, kind: type, default):
    if key not in args:
        return default
    try:
        return kind(args[key])
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise UserError(f'network_args: {key}="{args[key]}" is not {what}') from None


def _probability(field: str, value: float, one_allowed: bool = False) -> float:
    # Dropouts of 1.0 would divide the kept activations by zero (they scale by 1/(1-p));
    # module_dropout 1.0 only skips every module.
    if not 0.0 <= value <= 1.0 or (value == 1.0 and not one_allowed):
        raise UserError(f"{field}: {value} must be at least 0 and {'at most' if one_allowed else 'below'} 1")
    return value


# ---------------------------------------------------------------- targets

def is_conv3x3(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.Conv2d) and module.kernel_size != (1, 1)


def _modules_in_blocks(root: torch.nn.Module, block_classes: tuple[str, ...], wanted) -> dict[str, torch.nn.Module]:
    """{path inside root: module} for the modules `wanted` accepts inside blocks of those classes."""
    found = {}
    for block_path, block in root.named_modules():
        if type(block).__name__ not in block_classes:
            continue
        for child_path, child in block.named_modules():
            if child_path and wanted(child):
                found[f"{block_path}.{child_path}" if block_path else child_path] = child
    return found


def unet_targets(unet: torch.nn.Module, with_conv: bool) -> dict[str, torch.nn.Module]:
    """{lora name: module} of the UNet (LoCon's conv blocks when with_conv)."""
    def in_attention(m):
        return isinstance(m, torch.nn.Linear) or (isinstance(m, torch.nn.Conv2d) and not is_conv3x3(m))
    paths = _modules_in_blocks(unet, UNET_ATTENTION_BLOCKS, in_attention)
    if with_conv:
        paths.update(_modules_in_blocks(unet, UNET_CONV_BLOCKS,
                                        lambda m: isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))))
    rename = unet_name_rule(unet)
    return {rename(lora_name(UNET_PREFIX, path)): module for path, module in paths.items()}


def is_sdxl_unet(unet: torch.nn.Module) -> bool:
    return getattr(unet, "config", {}).get("addition_embed_type") == "text_time"


def unet_name_rule(unet: torch.nn.Module):
    """SDXL LoRA names are sd-scripts' original block names (input_blocks_4_1_...); SD1/SD2 names
    are the diffusers path, as sd-scripts writes them too."""
    if not is_sdxl_unet(unet):
        return lambda name: name
    layout = sgm_layout(unet.config)
    return lambda name: sgm_unet_name(name, layout)


def text_encoder_targets(text_encoders: list) -> dict[str, torch.nn.Module]:
    """{lora name: module} of every Linear in the text encoders' attention and MLP blocks."""
    targets = {}
    for prefix, encoder in zip(text_encoder_prefixes(len(text_encoders)), text_encoders):
        has_level = hasattr(encoder, "text_model")
        for path, module in _modules_in_blocks(encoder, TEXT_ENCODER_BLOCKS,
                                               lambda m: isinstance(m, torch.nn.Linear)).items():
            targets[lora_name(prefix, text_encoder_module_path(has_level, path))] = module
    return targets


# ---------------------------------------------------------------- one module

class LoRAModule(torch.nn.Module):
    """ΔW = up · down · alpha / rank beside one frozen Linear or Conv2d (`org`)."""

    def __init__(self, name: str, org: torch.nn.Module, rank: int, alpha: float, args: LoRAArgs):
        super().__init__()
        alpha = alpha or rank   # alpha 0 means "no scaling", as in sd-scripts
        self.lora_name, self.rank, self.alpha_value, self.scale = name, rank, float(alpha), alpha / rank
        self.dropout, self.rank_dropout, self.module_dropout = args.dropout, args.rank_dropout, args.module_dropout
        if isinstance(org, torch.nn.Conv2d):
            self.lora_down = torch.nn.Conv2d(org.in_channels, rank, org.kernel_size, org.stride, org.padding,
                                             bias=False)
            self.lora_up = torch.nn.Conv2d(rank, org.out_channels, 1, 1, bias=False)
        else:
            self.lora_down = torch.nn.Linear(org.in_features, rank, bias=False)
            self.lora_up = torch.nn.Linear(rank, org.out_features, bias=False)
        torch.nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        torch.nn.init.zeros_(self.lora_up.weight)   # ΔW = 0: the model starts exactly as it was
        self.register_buffer("alpha", torch.tensor(float(alpha)))
        self.org = [org]   # in a list so torch does not make the base layer a child (its weights are not saved)
        self.org_forward = None

    def apply_to(self) -> None:
        """Route the base layer's forward through this module; its weights stay as they are."""
        if self.org_forward is None:
            self.org_forward = self.org[0].forward
            self.org[0].forward = self.forward

    def forward(self, x, *args, **kwargs):
        base = self.org_forward(x, *args, **kwargs)
        if self.training and self.module_dropout and torch.rand(()) < self.module_dropout:
            return base
        h = self.lora_down(x)
        scale = self.scale
        if self.training and self.dropout:
            h = torch.nn.functional.dropout(h, p=self.dropout)
        if self.training and self.rank_dropout:
            h = h * self._rank_mask(h)
            scale = scale / (1.0 - self.rank_dropout)   # the kept ranks stand in for the dropped ones
        return torch.add(base, self.lora_up(h), alpha=scale)   # one kernel for the scale and the sum

    def _rank_mask(self, h: torch.Tensor) -> torch.Tensor:
        """A 0/1 mask per sample and rank, broadcast over tokens (Linear) or pixels (Conv2d)."""
        keep = (torch.rand(h.shape[0], self.rank, device=h.device) > self.rank_dropout).to(h.dtype)
        if isinstance(self.lora_down, torch.nn.Conv2d):
            return keep.view(*keep.shape, *[1] * (h.dim() - 2))
        return keep.view(keep.shape[0], *[1] * (h.dim() - 2), self.rank)

    def delta_norm(self) -> torch.Tensor:
        """‖ΔW‖ (Frobenius) without forming ΔW: ‖U·D‖² = Σ (UᵀU) ⊙ (D·Dᵀ), two rank×rank
        products, O(rank²·(in+out)) work instead of the O(rank·in·out) of the out×in matrix."""
        up = self.lora_up.weight.flatten(1).float()       # (out, rank)
        down = self.lora_down.weight.flatten(1).float()   # (rank, in·kh·kw)
        squared = ((up.T @ up) * (down @ down.T)).sum().clamp(min=0)   # rounding can dip below 0
        return squared.sqrt() * self.scale


# ---------------------------------------------------------------- the network

class Network(torch.nn.Module):
    """The LoRA modules of one run; what the trainer optimises, regularises and saves.

    The modules are children named by their kohya names, so `state_dict()` is the file's
    layout. The base models (UNet, text encoders) are held only to be frozen in apply_to.
    """

    def __init__(self, unet_modules: list, text_encoder_modules: list, base_models: list,
                 trains_text_encoder: bool, rank: int, alpha: float, algo: str):
        super().__init__()
        self.unet_modules, self.text_encoder_modules = unet_modules, text_encoder_modules
        for module in text_encoder_modules + unet_modules:
            self.add_module(module.lora_name, module)
        self.base_models = base_models   # a plain list: not children, not saved
        self.trains_text_encoder = trains_text_encoder and bool(text_encoder_modules)
        self.rank, self.alpha, self.algo = rank, alpha, algo
        self.block_lr: dict[str, tuple[int, float]] = {}     # UNet module name -> (block, LR weight)

    def apply_to(self) -> None:
        # The base model is never trained: no gradient memory is spent on its weights.
        for model in self.base_models:
            model.requires_grad_(False)
        for module in self.text_encoder_modules + self.unet_modules:
            module.apply_to()

    def param_groups(self, unet_lr: float, text_encoder_lr: float,
                     loraplus: dict[str, float | None] | None = None) -> list[dict]:
        """One group per part that trains; the parts that do not are frozen (no gradients).
        LoRA+ (`loraplus` {part: ratio}): a part's lora_up weights form a group "<part> plus" at
        ratio × its LR, as sd-scripts' prepare_optimizer_params splits them. Block LR weights
        (down/mid/up_lr_weight): one UNet group per block, "unet_block<i>" at weight × unet_lr."""
        groups = []
        te_lr = text_encoder_lr if self.trains_text_encoder else 0.0
        parts = self.unet_parts(unet_lr) + [("text_encoder", "text_encoder", self.text_encoder_modules, te_lr)]
        for name, part, modules, lr in parts:
            ratio = (loraplus or {}).get(part)
            named = [(n, p) for module in modules for n, p in module.named_parameters()]
            for _, p in named:
                p.requires_grad_(lr > 0)
            plus = [p for n, p in named if ratio and "lora_up" in n]
            rest = [p for n, p in named if not (ratio and "lora_up" in n)]
            if lr > 0:
                groups += [{"params": rest, "lr": lr, "name": name}] if rest else []
                groups += [{"params": plus, "lr": lr * ratio, "name": f"{name} plus"}] if plus else []
        if not groups:
            raise UserError("unet_lr and text_encoder_lr are both 0 (or the text encoder is off): nothing would train")
        return groups

    def unet_parts(self, unet_lr: float) -> list[tuple[str, str, list, float]]:
        """(group name, part, modules, LR) of the UNet: one, or one per block in the order the
        blocks first appear (sd-scripts' order) with block LR weights."""
        if not self.block_lr:
            return [("unet", "unet", self.unet_modules, unet_lr)]
        blocks: dict[int, list] = {}
        for module in self.unet_modules:
            blocks.setdefault(self.block_lr[module.lora_name][0], []).append(module)
        return [(f"unet_block{i}", "unet", modules, unet_lr * self.block_lr[modules[0].lora_name][1])
                for i, modules in blocks.items()]

    def set_text_encoder_trainable(self, trainable: bool) -> None:
        """stop_text_encoder_training: frozen parameters get no gradient, so the optimizer
        (zero_grad(set_to_none=True)) leaves them as they are while the UNet goes on."""
        for module in self.text_encoder_modules:
            module.requires_grad_(trainable)

    @torch.no_grad()
    def apply_max_norm(self, max_norm: float, device) -> tuple[int, float, float]:
        """scale_weight_norms: where ‖ΔW‖ > max_norm scale up and down by √(max_norm/‖ΔW‖), so
        ‖ΔW‖ becomes max_norm. Returns (modules scaled, mean and max ‖ΔW‖ afterwards).
        Norms are computed on `device` in one batch: one host sync per call, not per module."""
        modules = self.text_encoder_modules + self.unet_modules
        norms = torch.stack([m.delta_norm().to(device) for m in modules])
        # A relative slack of 1e-6: a module scaled to the max last step is not counted again
        # for float rounding.
        over = norms > max_norm * (1 + 1e-6)
        ratios = torch.where(over, max_norm / norms, torch.ones_like(norms))
        for module, factor in zip(modules, ratios.sqrt()):
            module.lora_down.weight.mul_(factor.to(module.lora_down.weight))
            module.lora_up.weight.mul_(factor.to(module.lora_up.weight))
        after = norms * ratios
        return int(over.sum()), float(after.mean()), float(after.max())

    def kohya_state_dict(self, dtype=None) -> dict[str, torch.Tensor]:
        """Kohya names -> CPU copies (cast to dtype when given): exactly what the file holds."""
        return {key: value.detach().to(device="cpu", dtype=dtype or value.dtype, copy=True).contiguous()
                for key, value in self.state_dict().items()}

    def load_kohya_weights(self, path) -> None:
        self.load_weights_dict(read_lora_file(path, self.base_models[0]), path)

    def load_weights_dict(self, weights: dict[str, torch.Tensor], path) -> None:
        """Load a file's tensors (canonical names); refuse what does not fit, naming the tensor."""
        own = self.state_dict()
        unknown = [key for key in weights if key not in own]
        if unknown:
            raise UserError(f"{path}: {len(unknown)} of its tensors have no module in this network "
                            f"(first: {unknown[0]}): the LoRA was made for another model or other network_args")
        for key, tensor in weights.items():
            _check_fits(path, key, tensor, own[key])
        self.load_state_dict(weights, strict=False)


def _check_fits(path, key: str, tensor: torch.Tensor, own: torch.Tensor) -> None:
    if tensor.shape != own.shape:
        raise UserError(f"{path}: {key} has shape {list(tensor.shape)}, this network's is {list(own.shape)}: "
                        "set network_dim / conv_dim to the file's, or turn on dim_from_weights")
    if key.endswith(".alpha") and not math.isclose(float(tensor), float(own), rel_tol=1e-3):
        raise UserError(f"{path}: {key} is {float(tensor):g}, this network's is {float(own):g}: "
                        "set network_alpha / conv_alpha to the file's, or turn on dim_from_weights")


def read_lora_file(path, unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A LoRA file's tensors under canonical names: text_model_ restored for old files, an SDXL
    file's diffusers-path UNet names (earlier workbench versions) turned into the original ones."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"network_weights: {path}: file not found")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file
            tensors = load_file(str(path))
        else:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # safetensors and torch raise many types for a damaged file
        raise UserError(f"network_weights: {path}: not a readable LoRA file ({exc})") from None
    if not isinstance(tensors, dict) or not tensors:
        raise UserError(f"network_weights: {path}: holds no named tensors (not a LoRA file)")
    rename = unet_name_rule(unet)
    return {_canonical_key(key, rename): value for key, value in tensors.items()}


def _canonical_key(key: str, rename) -> str:
    name, dot, rest = key.partition(".")
    return rename(canonical_lora_name(name)) + dot + rest


# ---------------------------------------------------------------- building

def create_lora_network(cfg, unet, text_encoders: list, weights_path: str | None = None) -> Network:
    """networks.lora: the run's network, its modules created but not yet applied (call apply_to).

    weights_path (else cfg.network_weights) continues from a LoRA; with cfg.dim_from_weights
    the modules, their ranks and alphas come from that file instead of network_dim/alpha/args.
    """
    args = parse_lora_args(cfg)
    path = weights_path or cfg.network_weights or None
    if cfg.dim_from_weights and not path:
        raise UserError("dim_from_weights: set network_weights to the LoRA to take rank and alpha from")
    weights = read_lora_file(path, unet) if path else {}
    # A continued LoRA keeps its text-encoder part even when only the UNet trains now.
    with_te = cfg.trains_text_encoder() or any(is_text_encoder_name(key) for key in weights)
    sdxl = is_sdxl_unet(unet)
    blocks = parse_blocks(cfg.network_args_dict(), sdxl, args.rank, args.alpha, args.conv_rank, args.conv_alpha)
    with_conv = args.conv_rank is not None or cfg.dim_from_weights or bool(blocks and blocks.conv_dims)
    targets = unet_targets(unet, with_conv=with_conv)
    te_targets = text_encoder_targets(text_encoders) if with_te else {}
    rank_alpha = (_ranks_of_file(weights, path) if cfg.dim_from_weights
                  else _ranks_of_blocks(blocks, args, sdxl) if blocks else _ranks_of_args(args))
    if not targets:
        raise UserError(f"{cfg.pretrained_model_name_or_path}: the UNet has no Transformer2DModel blocks "
                        "to put LoRA modules in: not a Stable Diffusion UNet")
    unet_modules, te_modules = _build(targets, rank_alpha, args), _build(te_targets, rank_alpha, args)
    if not unet_modules + te_modules:
        raise UserError(f"dim_from_weights: none of the modules in {path} exist in this model "
                        "(a LoRA for another model family?)")
    rank, alpha = _common_rank(unet_modules + te_modules) if cfg.dim_from_weights else (args.rank, args.alpha)
    network = Network(unet_modules, te_modules, [unet, *text_encoders], cfg.trains_text_encoder(), rank, alpha, "lora")
    if blocks and blocks.lr_weights and not cfg.dim_from_weights:
        network.block_lr = {m.lora_name: (i, blocks.lr_weights[i]) for m in unet_modules
                            for i in [block_index(m.lora_name, sdxl)]}
    if weights:
        network.load_weights_dict(weights, path)
    return network


def _ranks_of_args(args: LoRAArgs):
    def rank_alpha(name: str, module: torch.nn.Module) -> tuple[int | None, float]:
        return (args.conv_rank, args.conv_alpha) if is_conv3x3(module) else (args.rank, args.alpha)
    return rank_alpha


def _ranks_of_blocks(blocks: Blocks, args: LoRAArgs, sdxl: bool):
    """block_dims & co: each UNet module at its block's rank (0: none); text-encoder modules as usual."""
    plain = _ranks_of_args(args)

    def rank_alpha(name: str, module: torch.nn.Module) -> tuple[int | None, float]:
        if not name.startswith(UNET_PREFIX):
            return plain(name, module)
        return blocks.rank_alpha(block_index(name, sdxl), is_conv3x3(module))
    return rank_alpha


def _ranks_of_file(weights: dict[str, torch.Tensor], path):
    """dim_from_weights: each module of the file with its rank (lora_down's first dim) and alpha
    (rank when the file has none, as in sd-scripts); modules the file lacks are not created."""
    ranks = {}
    for key, tensor in weights.items():
        if key.endswith(".lora_down.weight"):
            name = key.split(".")[0]
            alpha = weights.get(f"{name}.alpha")
            ranks[name] = (tensor.shape[0], float(alpha) if alpha is not None else float(tensor.shape[0]))
    if not ranks:
        raise UserError(f"dim_from_weights: {path} holds no lora_down weights (not a kohya LoRA/LoCon file)")
    return lambda name, module: ranks.get(name, (None, 0.0))


def _build(targets: dict[str, torch.nn.Module], rank_alpha, args: LoRAArgs) -> list[LoRAModule]:
    modules = []
    for name, module in targets.items():
        rank, alpha = rank_alpha(name, module)
        if rank:
            modules.append(LoRAModule(name, module, rank, alpha, args))
    return modules


def _common_rank(modules: list[LoRAModule]) -> tuple[int, float]:
    """The (rank, alpha) most modules have, leaving out 3x3 convs (conv_dim is reported apart)."""
    pairs = Counter((m.rank, m.alpha_value) for m in modules if not is_conv3x3(m.org[0]))
    return pairs.most_common(1)[0][0] if pairs else (modules[0].rank, modules[0].alpha_value)
