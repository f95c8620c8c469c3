"""What a LoRA file holds, from its header: the network type (LoRA, LoCon, LoHa, LoKr and the other
LyCORIS algorithms), its modules split into UNet and text encoder(s), rank and alpha per module,
tensor dtypes, the base model it was trained on, and the modules grouped by UNet block / text
encoder layer. Only the alphas are read from the file's data (their own 2-4 bytes each).

Tensor names follow kohya's rule: module name (the model path with "." turned into "_", behind a
prefix lora_unet_ / lora_te_ / lora_te1_ / lora_te2_), ".", then the tensor's role
(lora_down.weight, alpha, hada_w1_a ...). PEFT files (unet.<path>.lora_A.weight) and diffusers'
older .lora.down.weight / _lora.down.weight files are read too.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import UserError
from workbench.lora.header import metadata_of, read_header, read_scalars, tensor_entries
from workbench.lora.names import UNET_BLOCK_SIDES, UNET_PREFIX, text_encoder_prefixes

# tensor role -> the algorithm it belongs to (None: a role every algorithm may carry)
ROLE_ALGO = {
    "lora_down.weight": "lora", "lora_up.weight": "lora", "lora_mid.weight": "lora",
    "lora_A.weight": "lora", "lora_B.weight": "lora",
    "hada_w1_a": "loha", "hada_w1_b": "loha", "hada_w2_a": "loha", "hada_w2_b": "loha",
    "hada_t1": "loha", "hada_t2": "loha",
    "lokr_w1": "lokr", "lokr_w1_a": "lokr", "lokr_w1_b": "lokr", "lokr_w2": "lokr",
    "lokr_w2_a": "lokr", "lokr_w2_b": "lokr", "lokr_t1": "lokr", "lokr_t2": "lokr",
    "a1.weight": "glora", "a2.weight": "glora", "b1.weight": "glora", "b2.weight": "glora",
    "bm.weight": "glora",
    "oft_blocks": "oft", "weight": "ia3", "on_input": "ia3", "diff": "full", "diff_b": "full",
    "w_norm": "norm", "b_norm": "norm",
    "alpha": None, "dora_scale": None, "rescale": None,
}
# module-name prefix -> (part, text encoder label)
PREFIXES = ((f"{UNET_PREFIX}_", "unet", ""),
            *((f"{p}_", "text_encoder", p.removeprefix("lora_")) for p in text_encoder_prefixes(2)),
            *((f"{p}_", "text_encoder", p.removeprefix("lora_")) for p in text_encoder_prefixes(1)),
            ("unet.", "unet", ""), ("text_encoder_2.", "text_encoder", "te2"), ("text_encoder.", "text_encoder", "te"))
# a numbered block (down_blocks_1, input_blocks_4) or the one middle block (mid_block, middle_block)
UNET_BLOCK = re.compile("^(" + "|".join(rf"{b}_\d+" if b.endswith("blocks") else b for b in UNET_BLOCK_SIDES) + ")")
UNET_BLOCK_ORDER = UNET_BLOCK_SIDES
TE_LAYER = re.compile(r"layers_(\d+)")
# sd-scripts' ss_base_model_version values, from the width of a cross-attention key projection's
# input (the text embedding: 768 CLIP-L, 1024 OpenCLIP-H, 2048 SDXL's two encoders together)
VERSION_BY_CONTEXT_WIDTH = {768: "sd_v1", 1024: "sd_v2", 2048: "sdxl_base_v1-0"}
VERSION_BY_ARCHITECTURE = (("stable-diffusion-xl-v1-base", "sdxl_base_v1-0"),
                           ("stable-diffusion-v2-768-v", "sd_v2_v"), ("stable-diffusion-v2", "sd_v2"),
                           ("stable-diffusion-v1", "sd_v1"))


@dataclass(frozen=True)
class Module:
    name: str                  # "lora_unet_down_blocks_0_attentions_0_proj_in"
    part: str                  # "unet" | "text_encoder" | "other"
    algo: str                  # "lora" | "locon" | "loha" | "lokr" | "glora" | "oft" | "boft" | "ia3" | "full" | "norm"
    rank: int | None           # None where the algorithm has no rank (ia3, oft, full, a full-matrix lokr)
    alpha: float | None        # None where the file stores no alpha
    tensors: dict              # role -> header entry


@dataclass(frozen=True)
class Structure:
    type: str
    modules: tuple[Module, ...]
    dtypes: dict[str, int]               # dtype -> number of tensors
    other_tensors: tuple[str, ...]       # tensors that belong to no recognised module

    def count(self, part: str) -> int:
        return sum(1 for m in self.modules if m.part == part)

    def rank_distribution(self) -> dict[int, int]:
        return distribution(m.rank for m in self.modules)

    def alpha_distribution(self) -> dict[float, int]:
        return distribution(m.alpha for m in self.modules)

    def rank(self) -> int | None:
        return most_common(self.rank_distribution())

    def alpha(self) -> float | None:
        return most_common(self.alpha_distribution())


def distribution(values) -> dict:
    """value -> count, most common first (ties: smaller value first); None values left out."""
    counts = Counter(v for v in values if v is not None)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def most_common(dist: dict):
    return next(iter(dist), None)


# diffusers' pre-PEFT layouts (2023): "<path>.lora.down.weight" (LoRACompatibleLinear) and
# "<path>.processor.to_q_lora.down.weight" (attention processors); the same down/up pair as PEFT's A/B
OLD_DIFFUSERS_ROLE = re.compile(r"[._]lora\.(down|up)\.weight$")


def split_role(key: str) -> tuple[str, str] | None:
    """"mod.lora_down.weight" -> ("mod", "lora_down.weight"); None when the role is unknown."""
    old = OLD_DIFFUSERS_ROLE.search(key)
    if old:
        return key[:old.start()], "lora_A.weight" if old.group(1) == "down" else "lora_B.weight"
    parts = key.split(".")
    for width in (2, 1):
        role = ".".join(parts[-width:])
        if len(parts) > width and role in ROLE_ALGO:
            return ".".join(parts[:-width]), role
    return None


def part_of(name: str) -> tuple[str, str, str]:
    """(part, text encoder label, the name without its prefix) of a module name."""
    for prefix, part, encoder in PREFIXES:
        if name.startswith(prefix):
            return part, encoder, name[len(prefix):].replace(".", "_")
    return "other", "", name


def module_algo(tensors: dict) -> str | None:
    algos = {ROLE_ALGO[role] for role in tensors} - {None}
    if not algos:
        return None
    algo = "+".join(sorted(algos))      # one name; tensors of two algorithms on one module are shown as both
    down = tensors.get("lora_down.weight") or tensors.get("lora_A.weight")
    if algo == "lora" and down and len(down["shape"]) == 4 and down["shape"][2:] != [1, 1]:
        return "locon"      # a conv layer with a k×k (3×3) kernel, which plain LoRA leaves alone
    if algo == "oft" and len(tensors["oft_blocks"]["shape"]) == 4:
        return "boft"       # butterfly OFT stacks its blocks in one more dimension
    if algo == "ia3" and "on_input" not in tensors:
        return None         # a bare ".weight" is not IA3's
    return algo


def module_rank(algo: str, tensors: dict) -> int | None:
    shape = lambda role: tensors[role]["shape"] if role in tensors else None  # noqa: E731
    if algo in ("lora", "locon"):
        down = shape("lora_down.weight") or shape("lora_A.weight")
        return down[0] if down else None
    if algo == "loha":
        return shape("hada_w1_b")[0] if shape("hada_w1_b") else None
    if algo == "lokr":
        # the decomposed factor's inner size; both factors full means no rank
        for role in ("lokr_w1_a", "lokr_w2_a"):
            if shape(role):
                return shape(role)[1]
        return None
    if algo == "glora":
        return shape("a2.weight")[0] if shape("a2.weight") else None
    return None


def group_tensors(entries: dict[str, dict]) -> tuple[dict[str, dict], list[str]]:
    """module name -> {role: entry}, and the tensor names that fit no module."""
    modules: dict[str, dict] = {}
    other = []
    for key, entry in entries.items():
        split = split_role(key)
        if split is None:
            other.append(key)
        else:
            modules.setdefault(split[0], {})[split[1]] = entry
    return modules, other


def structure_of(path: str | Path, header_length: int, header: dict, metadata: dict[str, str]) -> Structure:
    """The Structure of a safetensors LoRA from its parsed header (read_header's result)."""
    entries = tensor_entries(header)
    grouped, other = group_tensors(entries)
    alpha_entries = {f"{name}.alpha": t["alpha"] for name, t in grouped.items() if "alpha" in t}
    alphas = read_scalars(path, header_length, alpha_entries)
    modules = []
    for name, tensors in sorted(grouped.items()):
        algo = module_algo(tensors)
        if algo is None:
            other.extend(f"{name}.{role}" for role in tensors)
            continue
        modules.append(Module(name, part_of(name)[0], algo, module_rank(algo, tensors),
                              alphas.get(f"{name}.alpha"), tensors))
    dtypes = dict(Counter(e["dtype"] for e in entries.values()).most_common())
    return Structure(network_type(modules, metadata), tuple(modules), dtypes, tuple(sorted(other)))


def network_type(modules: list[Module], metadata: dict[str, str]) -> str:
    """lora, locon (some 3×3 conv modules), loha, lokr ...; several algorithms joined by "+".
    DyLoRA writes plain LoRA tensors: only its metadata tells it apart."""
    algos = {m.algo for m in modules}
    if algos == {"lora", "locon"}:
        algos = {"locon"}
    if not algos:
        return "unknown"
    kind = "+".join(sorted(algos))
    declared = f"{metadata.get('ss_network_module', '')} {metadata.get('ss_network_args', '')}".lower()
    if kind in ("lora", "locon") and "dylora" in declared:
        return "dylora"
    return kind


def base_model_version(metadata: dict[str, str], modules: tuple[Module, ...]) -> tuple[str | None, str]:
    """(sd-scripts' version string such as sd_v1 / sd_v2 / sd_v2_v / sdxl_base_v1-0, where it came from)."""
    if metadata.get("ss_base_model_version"):
        return metadata["ss_base_model_version"], "ss_base_model_version"
    architecture = metadata.get("modelspec.architecture", "")
    for prefix, version in VERSION_BY_ARCHITECTURE:
        if architecture.startswith(prefix):
            return version, "modelspec.architecture"
    if any(part_of(m.name)[1] in ("te1", "te2") for m in modules):
        return "sdxl_base_v1-0", "key names (two text encoders)"
    width = context_width(modules)
    if width in VERSION_BY_CONTEXT_WIDTH:
        return VERSION_BY_CONTEXT_WIDTH[width], f"key names (cross-attention input width {width})"
    if metadata.get("ss_v2") == "True":
        return "sd_v2", "ss_v2"
    return None, "not stored and not recognisable from the key names"


def context_width(modules: tuple[Module, ...]) -> int | None:
    """Input width of a UNet cross-attention key projection (attn2 to_k), from its down matrix."""
    for m in modules:
        down = m.tensors.get("lora_down.weight") or m.tensors.get("lora_A.weight")
        if m.part == "unet" and down and part_of(m.name)[2].endswith("attn2_to_k") and len(down["shape"]) == 2:
            return down["shape"][1]
    return None


def block_of(name: str) -> tuple[tuple, str]:
    """(sort key, label) of the block a module sits in: "unet down_blocks_0", "unet mid_block",
    "te1 layer 5" ... UNet blocks in the order data flows, then text-encoder layers."""
    part, encoder, rest = part_of(name)
    if part == "unet":
        match = UNET_BLOCK.match(rest)
        if not match:
            return (0, 3, 0), "unet other"
        block = match.group(1)
        stem, _, index = block.rpartition("_") if block[-1].isdigit() else (block, "", "0")
        return (0, UNET_BLOCK_ORDER[stem], int(index)), f"unet {block}"
    if part == "text_encoder":
        layer = TE_LAYER.search(rest)
        if layer:
            return (1, encoder, int(layer.group(1))), f"{encoder} layer {layer.group(1)}"
        return (1, encoder, 1 << 30), f"{encoder} other"
    return (2, 0, 0), "other"


@dataclass(frozen=True)
class Block:
    label: str
    modules: tuple[Module, ...]

    def rank_distribution(self) -> dict[int, int]:
        return distribution(m.rank for m in self.modules)


def modules_by_block(modules: tuple[Module, ...]) -> list[Block]:
    groups: dict[tuple, list[Module]] = {}
    labels = {}
    for module in modules:
        key, label = block_of(module.name)
        groups.setdefault(key, []).append(module)
        labels[key] = label
    return [Block(labels[key], tuple(groups[key])) for key in sorted(groups)]


@dataclass(frozen=True)
class BlockNorm:
    label: str
    modules: int
    mean: float        # mean over the block's modules of ‖up·down·alpha/rank‖ (Frobenius)
    max: float


def norms_by_block(path: str | Path) -> list[BlockNorm]:
    """Weight-update norms of a kohya LoRA/LoCon per block: how hard each part of the model was
    pushed. Reads the tensors (torch and safetensors imported here, not at module level)."""
    n, header = read_header(path)
    structure = structure_of(path, n, header, metadata_of(header))
    norms = module_norms(path, structure)
    result = []
    for block in modules_by_block(structure.modules):
        values = [norms[m.name] for m in block.modules]
        result.append(BlockNorm(block.label, len(values), sum(values) / len(values), max(values)))
    return result


def module_norms(path: str | Path, structure: Structure) -> dict[str, float]:
    """module name -> ‖ΔW‖_F with ΔW = up·down·(alpha/rank), conv kernels flattened.
    ‖U·D‖² = Σ (UᵀU ∘ D·Dᵀ), rank×rank products, so ΔW itself is never built."""
    from safetensors import safe_open

    unsupported = sorted({m.algo for m in structure.modules} - {"lora", "locon"})
    if unsupported or any("lora_mid.weight" in m.tensors for m in structure.modules):
        raise UserError(f"{path}: norms per block are computed for kohya LoRA/LoCon files; this one holds "
                        f"{', '.join(unsupported) or 'Tucker (lora_mid) modules'}")
    norms = {}
    with safe_open(str(path), framework="pt") as f:
        for m in structure.modules:
            down_role, up_role = ("lora_down.weight", "lora_up.weight") if "lora_down.weight" in m.tensors \
                else ("lora_A.weight", "lora_B.weight")
            down = f.get_tensor(f"{m.name}.{down_role}").double().flatten(1)
            up = f.get_tensor(f"{m.name}.{up_role}").double().flatten(1)
            # kohya: a missing or zero alpha means alpha = rank, a scale of 1
            scale = m.alpha / m.rank if m.alpha else 1.0
            squared = ((up.T @ up) * (down @ down.T)).sum().clamp_min(0)
            norms[m.name] = float(squared.sqrt()) * abs(scale)
    return norms
