"""The LoRA inspector: what a .safetensors LoRA is, read from its header alone, whether its bytes
are intact (sshs_model_hash), and how two LoRAs differ. The CLI (`workbench inspect`) and the
Inspect page both call these functions; nothing here imports torch.

Decoding helpers the page uses live beside it and are re-exported here: tag frequency, dataset
folders, buckets, grouped training parameters and config_from_metadata (workbench/lora/read_metadata.py);
structure per block and weight norms per block (workbench/lora/structure.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.lora.hashes import model_hash_file
from workbench.lora.header import HeaderError, metadata_of, read_header, tensor_entries
from workbench.lora.kind import what_it_is
from workbench.lora.read_metadata import (
    MetadataError,
    bucket_info,
    config_from_metadata,
    dataset_dirs,
    tag_frequency,
    training_parameters,
)
from workbench.lora.structure import Structure, base_model_version, modules_by_block, norms_by_block, structure_of

__all__ = ["Inspection", "HashCheck", "Comparison", "describe", "check_hash", "to_json", "compare", "comparison_json",
           "network_summary", "structure_facts", "HeaderError", "NotALora", "MetadataError", "tag_frequency",
           "dataset_dirs", "bucket_info", "training_parameters", "config_from_metadata", "modules_by_block",
           "norms_by_block"]


@dataclass(frozen=True)
class Inspection:
    path: Path
    size_bytes: int
    header_length: int                  # N: the JSON header's bytes after the 8-byte length
    metadata: dict[str, str]            # exactly as stored
    structure: Structure
    base_model: str | None              # sd-scripts' ss_base_model_version vocabulary
    base_model_source: str              # where base_model came from


@dataclass(frozen=True)
class HashCheck:
    stored: str | None                  # sshs_model_hash in the metadata
    computed: str                       # sha256 of file[8 + N:]

    @property
    def matches(self) -> bool | None:
        if not self.stored:
            return None
        return self.stored.strip().lower() == self.computed


class NotALora(HeaderError):
    """A valid .safetensors that holds no LoRA module: the message says what it looks like."""


def describe(path: str | Path) -> Inspection:
    """Header, metadata and structure; reads the header and the alphas' few bytes, not the tensors.
    A file without a single LoRA module is refused (NotALora), not described as an empty network."""
    path = Path(path)
    n, header = read_header(path)
    metadata = metadata_of(header)
    structure = structure_of(path, n, header, metadata)
    if not structure.modules:
        raise NotALora(f"{path}: not a LoRA: {what_it_is(list(tensor_entries(header)))}; the inspector reads "
                       "LoRA / LyCORIS files (lora_unet_… / lora_te_… modules)")
    version, source = base_model_version(metadata, structure.modules)
    return Inspection(path, path.stat().st_size, n, metadata, structure, version, source)


def check_hash(inspection: Inspection) -> HashCheck:
    """Streams the whole file through sha256 (1 MiB at a time) and compares with sshs_model_hash."""
    return HashCheck(inspection.metadata.get("sshs_model_hash"), model_hash_file(inspection.path))


def network_summary(structure: Structure) -> dict:
    return {"type": structure.type, "modules": len(structure.modules),
            "unet_modules": structure.count("unet"), "text_encoder_modules": structure.count("text_encoder"),
            "rank": structure.rank(), "alpha": structure.alpha()}


def to_json(inspection: Inspection, hash_check: HashCheck) -> dict:
    """The `workbench inspect --json` object; scripts depend on exactly these keys."""
    return {"file": str(inspection.path), "size_bytes": inspection.size_bytes,
            "metadata": dict(inspection.metadata),
            "network": network_summary(inspection.structure),
            "hash": {"stored": hash_check.stored, "computed": hash_check.computed, "matches": hash_check.matches}}


# ------------------------------------------------------------------ compare

@dataclass(frozen=True)
class Comparison:
    a: Inspection
    b: Inspection
    metadata_only_in_a: dict[str, str]
    metadata_only_in_b: dict[str, str]
    metadata_different: dict[str, tuple[str, str]]
    network_different: dict[str, tuple]              # summary field -> (A's, B's)
    modules_only_in_a: tuple[str, ...]
    modules_only_in_b: tuple[str, ...]
    rank_different: dict[str, tuple]                 # module in both -> (A's rank, B's rank)
    alpha_different: dict[str, tuple]

    @property
    def identical(self) -> bool:
        return not any((self.metadata_only_in_a, self.metadata_only_in_b, self.metadata_different,
                        self.network_different, self.modules_only_in_a, self.modules_only_in_b,
                        self.rank_different, self.alpha_different))


def structure_facts(inspection: Inspection) -> dict:
    """The network summary plus what else two files may differ in as a whole."""
    s = inspection.structure
    return {**network_summary(s), "rank_distribution": s.rank_distribution(),
            "alpha_distribution": s.alpha_distribution(), "dtypes": s.dtypes, "base_model": inspection.base_model}


def compare(a: Inspection, b: Inspection) -> Comparison:
    ma, mb = a.metadata, b.metadata
    fa, fb = structure_facts(a), structure_facts(b)
    mods_a = {m.name: m for m in a.structure.modules}
    mods_b = {m.name: m for m in b.structure.modules}
    both = sorted(mods_a.keys() & mods_b.keys())
    return Comparison(
        a, b,
        {k: ma[k] for k in sorted(ma.keys() - mb.keys())},
        {k: mb[k] for k in sorted(mb.keys() - ma.keys())},
        {k: (ma[k], mb[k]) for k in sorted(ma.keys() & mb.keys()) if ma[k] != mb[k]},
        {k: (fa[k], fb[k]) for k in fa if fa[k] != fb[k]},
        tuple(sorted(mods_a.keys() - mods_b.keys())),
        tuple(sorted(mods_b.keys() - mods_a.keys())),
        {n: (mods_a[n].rank, mods_b[n].rank) for n in both if mods_a[n].rank != mods_b[n].rank},
        {n: (mods_a[n].alpha, mods_b[n].alpha) for n in both if mods_a[n].alpha != mods_b[n].alpha})


def comparison_json(c: Comparison) -> dict:
    pairs = lambda d: {k: list(v) for k, v in d.items()}  # noqa: E731
    return {"a": str(c.a.path), "b": str(c.b.path), "identical": c.identical,
            "metadata": {"only_in_a": c.metadata_only_in_a, "only_in_b": c.metadata_only_in_b,
                         "different": pairs(c.metadata_different)},
            "network": {k: [_jsonable(x) for x in v] for k, v in c.network_different.items()},
            "modules": {"only_in_a": list(c.modules_only_in_a), "only_in_b": list(c.modules_only_in_b),
                        "rank_different": pairs(c.rank_different), "alpha_different": pairs(c.alpha_different)}}


def _jsonable(value):
    # distributions have number keys; JSON object keys are strings
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value
