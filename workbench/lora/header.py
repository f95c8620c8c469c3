"""Read a .safetensors header without touching its tensors: 8-byte little-endian length N,
then N bytes of JSON, then the tensor bytes (offsets in the JSON count from byte 8 + N).
A 2 GB file is described from its first kilobytes."""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from workbench.errors import UserError

MAX_HEADER = 100_000_000   # safetensors itself refuses headers above this (its MAX_HEADER_SIZE)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
# bytes per element of each dtype safetensors writes
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4,
               "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
# struct formats of the dtypes a scalar (an alpha) is decoded from; BF16 is handled apart
SCALAR_FORMATS = {"F64": "<d", "F32": "<f", "F16": "<e", "I64": "<q", "I32": "<i", "I16": "<h", "I8": "<b",
                  "U8": "<B", "BOOL": "<?"}


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
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = _header_length(path, head, size)
            raw = f.read(n)
    except OSError as exc:
        raise HeaderError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    header = _parse_json(path, head, raw)
    check_tensor_extents(path, header, size - 8 - n)
    return n, header


def _header_length(path: Path, head: bytes, size: int) -> int:
    if len(head) < 8:
        if _looks_pickled(head):
            raise _pickle_error(path)
        raise HeaderError(f"{path}: truncated ({size} bytes): not a safetensors file")
    (n,) = struct.unpack("<Q", head)
    if 8 + n > size:
        if _looks_pickled(head):
            raise _pickle_error(path)
        raise HeaderError(f"{path}: header length {n} is larger than the file ({size} bytes): "
                          "truncated or not a safetensors file")
    if n > MAX_HEADER:
        raise HeaderError(f"{path}: its header is {n:,} bytes, over the {MAX_HEADER:,}-byte limit safetensors "
                          "itself reads (100 MB), so no tool loads this file; re-save it with less metadata")
    return n


def _parse_json(path: Path, head: bytes, raw: bytes) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        if _looks_pickled(head):
            raise _pickle_error(path) from None
        raise HeaderError(f"{path}: header is not valid JSON: not a safetensors file or corrupted") from None
    if not isinstance(header, dict):
        raise HeaderError(f"{path}: header is not a JSON object: not a safetensors file")
    return header


def check_tensor_extents(path: Path, header: dict, data_bytes: int) -> None:
    """Every tensor entry names a dtype, a shape and offsets that fit its size and the file:
    a file cut short inside its tensor data is refused here, before anything reads it."""
    needed = max((_entry_offsets(path, name, entry)[1] for name, entry in header.items() if name != "__metadata__"),
                 default=0)
    if needed > data_bytes:
        raise HeaderError(f"{path}: truncated: its tensors need {needed} bytes after the header but the file "
                          f"holds only {data_bytes}")


def _entry_offsets(path: Path, name: str, entry) -> tuple[int, int]:
    ok = (isinstance(entry, dict) and isinstance(entry.get("dtype"), str)
          and isinstance(entry.get("shape"), list) and all(isinstance(d, int) and d >= 0 for d in entry["shape"])
          and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
          and all(isinstance(o, int) for o in entry["data_offsets"]))
    if not ok:
        raise HeaderError(f"{path}: tensor {name} has no valid dtype/shape/data_offsets: corrupted header")
    begin, end = entry["data_offsets"]
    width = DTYPE_BYTES.get(entry["dtype"])
    if begin < 0 or end < begin or (width and end - begin != width * math.prod(entry["shape"])):
        raise HeaderError(f"{path}: tensor {name}: data_offsets {entry['data_offsets']} do not match its "
                          f"{entry['dtype']} shape {entry['shape']}: corrupted header")
    return begin, end


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


def read_scalars(path: str | Path, header_length: int, entries: dict[str, dict]) -> dict[str, float | None]:
    """The value of each one-element tensor in `entries` (alphas), read from its own 1-8 bytes:
    nothing else of the file is read. None for a tensor that is not one element or of a dtype
    without a scalar decoding."""
    values: dict[str, float | None] = {}
    try:
        with open(path, "rb") as f:
            # in file order, so the reads go forward through the file
            for name, entry in sorted(entries.items(), key=lambda item: item[1]["data_offsets"][0]):
                begin, end = entry["data_offsets"]
                if math.prod(entry["shape"]) != 1:
                    values[name] = None
                    continue
                f.seek(8 + header_length + begin)
                values[name] = decode_scalar(entry["dtype"], f.read(end - begin))
    except OSError as exc:
        raise HeaderError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return values


def decode_scalar(dtype: str, raw: bytes) -> float | None:
    """The stored number, as the shortest decimal that reads back to the same bits in its dtype:
    an alpha of 0.1 saved in fp16 is 0.1, not 0.0999755859375."""
    if dtype == "BF16" and len(raw) == 2:
        # bfloat16 is the top half of a float32
        return shortest(struct.unpack("<f", b"\x00\x00" + raw)[0], dtype)
    fmt = SCALAR_FORMATS.get(dtype)
    if fmt is None or struct.calcsize(fmt) != len(raw):
        return None
    return shortest(float(struct.unpack(fmt, raw)[0]), dtype)


def shortest(value: float, dtype: str) -> float:
    if dtype not in ("F16", "BF16", "F32") or not math.isfinite(value):
        return value
    target = _bits(value, dtype)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        try:
            if _bits(candidate, dtype) == target:
                return candidate
        except OverflowError:
            continue
    return value


def _bits(value: float, dtype: str) -> int:
    if dtype == "F16":
        return struct.unpack("<H", struct.pack("<e", value))[0]
    bits = struct.unpack("<I", struct.pack("<f", value))[0]
    if dtype == "F32":
        return bits
    return (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16      # float32 -> bfloat16, round to nearest even
