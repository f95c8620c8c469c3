"""Inspector benchmark → benchmarks/out/inspect.json (measured, not asserted).

Writes an SDXL-shaped LoRA of about 1 GB to a temp folder (986 modules as sd-scripts names
them — 722 UNet, 72 + 192 text encoder — rank 192, fp16; the tensor bytes are a sparse
file of zeros apart from the real alphas, so it is written in milliseconds), then measures:

- describe: header + structure + the 986 alphas (what the Inspect page shows first), median of 5;
- hash: workbench's sshs_model_hash, sha256 of file[8 + N:] streamed in 1 MiB blocks;
- floor: a bare `hashlib.sha256` loop over the same bytes with f.read(1 MiB), in the same run;
  hash_vs_floor = hash seconds / floor seconds (1.0 = no overhead over the bare loop).
  Both are run 3 times, alternated, and the best of each is kept.

The file's holes read as zeros from memory, so both hash figures are the CPU's sha256 rate,
not the disk's.

Run: python benchmarks/bench_inspect.py [--gb 1.0]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

from workbench.fileio import write_json_atomic
from workbench.lora.hashes import BLOCK
from workbench.lora.inspect import check_hash, describe

OUT = Path(__file__).resolve().parent / "out" / "inspect.json"
MODULE_COUNTS = {"lora_unet_": 722, "lora_te1_": 72, "lora_te2_": 192}     # SDXL, sd-scripts' LoRA
RANK = 192
TRIES = 3
WIDTH = 1280                 # in and out features of every module (SDXL's widest attention)


def module_names() -> list[str]:
    names = []
    for prefix, count in MODULE_COUNTS.items():
        stem = "down_blocks_1_attentions_0_transformer_blocks" if prefix == "lora_unet_" else "text_model_encoder_layers"
        names += [f"{prefix}{stem}_{i}_attn1_to_q" for i in range(count)]
    return names


def write_sparse_lora(path: Path, rank: int) -> tuple[int, int]:
    """(file size, module count). The header is real; tensor bytes are zeros except the alphas."""
    entries, alphas, offset = {}, [], 0
    for name in sorted(module_names()):
        for role, shape, dtype, width in (("alpha", [], "F16", 2), ("lora_down.weight", [rank, WIDTH], "F16", 2),
                                          ("lora_up.weight", [WIDTH, rank], "F16", 2)):
            size = width * (shape[0] * shape[1] if shape else 1)
            entries[f"{name}.{role}"] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
            if role == "alpha":
                alphas.append(offset)
            offset += size
    entries["__metadata__"] = {"ss_network_dim": str(rank), "ss_network_alpha": str(rank / 2),
                               "ss_base_model_version": "sdxl_base_v1-0"}
    raw = json.dumps(entries).encode()
    raw += b" " * (-len(raw) % 8)                 # safetensors pads its header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for alpha_offset in alphas:
            f.seek(8 + len(raw) + alpha_offset)
            f.write(struct.pack("<e", rank / 2))
        f.truncate(8 + len(raw) + offset)
    return 8 + len(raw) + offset, len(module_names())


def bare_sha256(path: Path) -> str:
    """The floor: hashlib over file[8 + N:] read in 1 MiB blocks, nothing else."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        f.seek(8 + n)
        digest = hashlib.sha256()
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="approximate file size in GB (default 1)")
    args = parser.parse_args()
    rank = max(1, round(args.gb * 1e9 / (len(module_names()) * 4 * WIDTH)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sdxl-lora.safetensors"
        size, modules = write_sparse_lora(path, rank)
        describe(path)                               # warm the header into the page cache
        describe_s = statistics.median(timed(describe, path)[0] for _ in range(5))
        inspection = describe(path)
        # alternated and repeated, best of each: the machine is shared, single runs are noisy
        floors, hashes = [], []
        for _ in range(TRIES):
            floors.append(timed(bare_sha256, path))
            hashes.append(timed(check_hash, inspection))
    floor_s, hash_s = min(t for t, _ in floors), min(t for t, _ in hashes)
    assert hashes[0][1].computed == floors[0][1] and inspection.structure.count("text_encoder") == 264
    result = {
        "file_bytes": size, "modules": modules, "rank": rank, "header_bytes": inspection.header_length,
        "describe_s": round(describe_s, 4), "hash_s": round(hash_s, 3), "floor_sha256_s": round(floor_s, 3),
        "hash_gb_per_s": round(size / hash_s / 1e9, 3), "floor_gb_per_s": round(size / floor_s / 1e9, 3),
        "hash_vs_floor": round(hash_s / floor_s, 3), "tries": TRIES,
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%d"),
    }
    write_json_atomic(OUT, result)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
