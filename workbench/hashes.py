"""The hashes sd-scripts stores in a LoRA and A1111 shows (sshs_model_hash, sshs_legacy_hash).

sshs_model_hash is the sha256 of the bytes after the header (file[8 + N:]): the tensors only, so
writing the hash into the header's metadata does not change it. The trainer hashes the bytes it
is about to write; the inspector streams the file. Both go through these functions.
"""
from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path
from typing import BinaryIO

BLOCK = 1024 * 1024


def model_hash_stream(f: BinaryIO) -> str:
    """sha256 hex of everything after the safetensors header, read in 1 MiB blocks."""
    f.seek(0)
    (n,) = struct.unpack("<Q", f.read(8))
    f.seek(8 + n)
    digest = hashlib.sha256()
    for block in iter(lambda: f.read(BLOCK), b""):
        digest.update(block)
    return digest.hexdigest()


def legacy_hash_stream(f: BinaryIO) -> str:
    """sd-scripts' legacy hash: sha256 of the 64 KiB at offset 1 MiB, first 8 hex digits."""
    f.seek(0x100000)
    return hashlib.sha256(f.read(0x10000)).hexdigest()[:8]


def model_hash_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return model_hash_stream(f)


def hashes_of_bytes(data: bytes) -> tuple[str, str]:
    """(sshs_model_hash, sshs_legacy_hash) of serialized safetensors bytes."""
    f = io.BytesIO(data)
    return model_hash_stream(f), legacy_hash_stream(f)
