"""The hashes sd-scripts stores in a LoRA and A1111 shows (sshs_model_hash, sshs_legacy_hash).

sshs_model_hash is the sha256 of the bytes after the header (file[8 + N:]): the tensors only, so
writing the hash into the header's metadata does not change it. The trainer hashes the bytes it
is about to write; the inspector streams the file. Both go through these functions.

sshs_legacy_hash (sha256 of the 64 KiB at offset 1 MiB, first 8 hex digits) is taken by
sd-scripts over bytes serialized with the ss_* metadata only; the final file's header also holds
sshs_* and modelspec.* keys, which shifts its bytes, so the legacy hash of a saved file is not
expected to equal the stored one and is never "verified".
"""
from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path
from typing import BinaryIO

from workbench.lora.header import HeaderError

BLOCK = 1024 * 1024          # bytes read per step, as sd-scripts reads
LEGACY_OFFSET = 0x100000     # 1 MiB
LEGACY_LENGTH = 0x10000      # 64 KiB


def model_hash_stream(f: BinaryIO) -> str:
    """sha256 hex of everything after the safetensors header, read in 1 MiB blocks into one
    reused buffer (no new 1 MiB bytes object per block)."""
    f.seek(0)
    head = f.read(8)
    if len(head) < 8:
        raise HeaderError(f"{getattr(f, 'name', 'data')}: shorter than a safetensors header")
    (n,) = struct.unpack("<Q", head)
    f.seek(8 + n)
    digest = hashlib.sha256()
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    while read := f.readinto(buffer):
        digest.update(view[:read])
    return digest.hexdigest()


def legacy_hash_stream(f: BinaryIO) -> str:
    """sd-scripts' legacy hash: sha256 of the 64 KiB at offset 1 MiB, first 8 hex digits."""
    f.seek(LEGACY_OFFSET)
    return hashlib.sha256(f.read(LEGACY_LENGTH)).hexdigest()[:8]


def model_hash_file(path: str | Path) -> str:
    try:
        with open(path, "rb") as f:
            return model_hash_stream(f)
    except OSError as exc:
        raise HeaderError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def hashes_of_bytes(data: bytes) -> tuple[str, str]:
    """(sshs_model_hash, sshs_legacy_hash) of serialized safetensors bytes."""
    f = io.BytesIO(data)
    return model_hash_stream(f), legacy_hash_stream(f)
