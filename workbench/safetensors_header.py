"""Read a .safetensors header without touching its tensors: 8-byte little-endian length N,
then N bytes of JSON. A 2 GB file is described from its first kilobytes."""
from __future__ import annotations

import json
import struct
from pathlib import Path

from workbench.errors import UserError

MAX_HEADER = 100 * 1024 * 1024   # safetensors itself refuses headers above 100 MB
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


class HeaderError(UserError):
    pass


def read_header(path: str | Path) -> tuple[int, dict]:
    """(N, header dict) of a safetensors file; HeaderError with one clear line otherwise.
    Never unpickles: a pickle file is refused by its suffix or its first bytes."""
    path = Path(path)
    if not path.exists():
        raise HeaderError(f"{path}: file not found")
    if path.is_dir():
        raise HeaderError(f"{path}: is a folder, not a .safetensors file")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise _pickle_error(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise HeaderError(f"{path}: truncated ({size} bytes): not a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER or 8 + n > size:
            if _looks_pickled(head):
                raise _pickle_error(path)
            raise HeaderError(f"{path}: header length {n} is larger than the file ({size} bytes): "
                              "truncated or not a safetensors file")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        if _looks_pickled(head):
            raise _pickle_error(path) from None
        raise HeaderError(f"{path}: header is not valid JSON: not a safetensors file or corrupted") from None
    if not isinstance(header, dict):
        raise HeaderError(f"{path}: header is not a JSON object: not a safetensors file")
    return n, header


def _looks_pickled(head: bytes) -> bool:
    # pickle protocol 2-5 opcode, or the zip container torch.save writes
    return (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")) or head[:4] == b"PK\x03\x04"


def _pickle_error(path: Path) -> HeaderError:
    return HeaderError(f"{path}: a pickle checkpoint (.ckpt/.pt), not safetensors; it is not opened "
                       "because unpickling can run code — convert it to .safetensors")


def tensor_entries(header: dict) -> dict[str, dict]:
    """name -> {"dtype", "shape", "data_offsets"}; the __metadata__ entry left out."""
    return {k: v for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}


def metadata_of(header: dict) -> dict[str, str]:
    meta = header.get("__metadata__") or {}
    return {str(k): v for k, v in meta.items()} if isinstance(meta, dict) else {}
