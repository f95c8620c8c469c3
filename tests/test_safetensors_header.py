"""The header reader and the sd-scripts hashes, on real files written with safetensors.

Expected values are computed here independently (struct + hashlib over the file's bytes), never
by calling the code under test twice."""
from __future__ import annotations

import hashlib
import json
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save, save_file

from workbench.lora.hashes import hashes_of_bytes, legacy_hash_stream, model_hash_file, model_hash_stream
from workbench.lora.header import HeaderError, metadata_of, read_header, read_scalars, shortest, tensor_entries

META = {"ss_tag_frequency": json.dumps({"5_猫": {"猫": 3, "café": 2}}, ensure_ascii=False), "ss_network_dim": "4"}


def small_file(path: Path, metadata=META) -> Path:
    tensors = {"lora_unet_a.lora_down.weight": np.arange(12, dtype=np.float16).reshape(3, 4),
               "lora_unet_a.alpha": np.array(2.0, dtype=np.float16)}
    save_file(tensors, str(path), metadata)
    return path


def header_length(data: bytes) -> int:
    return struct.unpack("<Q", data[:8])[0]


def test_header_read_without_tensors(tmp_path):
    path = small_file(tmp_path / "a.safetensors")
    n, header = read_header(path)
    data = path.read_bytes()
    assert n == header_length(data)
    assert metadata_of(header) == META
    assert tensor_entries(header)["lora_unet_a.lora_down.weight"] == {
        "dtype": "F16", "shape": [3, 4], "data_offsets": header["lora_unet_a.lora_down.weight"]["data_offsets"]}
    assert set(tensor_entries(header)) == {"lora_unet_a.lora_down.weight", "lora_unet_a.alpha"}


class UnpickleMarker:
    """Unpickling this creates a file: proof that a pickle was (or was not) loaded."""
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def write_bad(tmp_path: Path, kind: str) -> Path:
    good = small_file(tmp_path / "good.safetensors").read_bytes()
    marker = tmp_path / "unpickled"
    path = tmp_path / f"{kind}.safetensors"
    if kind == "missing":
        return path
    if kind == "folder":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "four_bytes":
        path.write_bytes(good[:4])
    elif kind == "length_past_end":
        path.write_bytes(struct.pack("<Q", len(good) * 10) + good[8:])
    elif kind == "header_cut":
        path.write_bytes(good[:8 + header_length(good) // 2])
    elif kind == "tensor_data_cut":
        path.write_bytes(good[:-5])
    elif kind == "not_json":
        path.write_bytes(struct.pack("<Q", 12) + b"{not json!!}")
    elif kind == "json_list":
        path.write_bytes(struct.pack("<Q", 6) + b"[1, 2]")
    elif kind == "bad_offsets":
        header = json.dumps({"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 3]}}).encode()
        path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    elif kind in ("pickle_ckpt", "pickle_renamed"):
        path = path.with_suffix(".ckpt") if kind == "pickle_ckpt" else path
        path.write_bytes(pickle.dumps(UnpickleMarker(marker), protocol=4))
    elif kind == "torch_zip_renamed":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", pickle.dumps(UnpickleMarker(marker), protocol=2))
    return path


BAD = {"missing": "file not found", "folder": "is a folder", "empty": "truncated (0 bytes)",
       "four_bytes": "truncated (4 bytes)", "length_past_end": "larger than the file",
       "header_cut": "larger than the file", "tensor_data_cut": "truncated: its tensors need",
       "not_json": "not valid JSON", "json_list": "not a JSON object", "bad_offsets": "do not match",
       "pickle_ckpt": "pickle checkpoint", "pickle_renamed": "pickle checkpoint",
       "torch_zip_renamed": "pickle checkpoint"}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_file_is_one_clear_line_and_never_unpickled(tmp_path, kind):
    path = write_bad(tmp_path, kind)
    with pytest.raises(HeaderError) as err:
        read_header(path)
    message = str(err.value)
    assert BAD[kind] in message and str(path) in message and "\n" not in message
    assert not (tmp_path / "unpickled").exists()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64", "int64"])
def test_scalars_read_from_their_own_bytes(tmp_path, dtype):
    import torch
    from safetensors.torch import save_file as save_torch
    torch_dtype = getattr(torch, dtype)
    stored = {"m.alpha": torch.tensor(0.1 if torch_dtype.is_floating_point else 3, dtype=torch_dtype),
              "m.big": torch.ones(3, 3, dtype=torch_dtype)}
    path = tmp_path / "s.safetensors"
    save_torch(stored, str(path))
    n, header = read_header(path)
    values = read_scalars(path, n, tensor_entries(header))
    assert values["m.big"] is None                 # not one element: no scalar
    # the decoded number, stored again in the same dtype, has the same bits
    assert torch.tensor(values["m.alpha"], dtype=torch_dtype).item() == stored["m.alpha"].item()
    assert values["m.alpha"] == (0.1 if torch_dtype.is_floating_point else 3.0)


def test_shortest_keeps_the_stored_bits():
    fp16_of_tenth = struct.unpack("<e", struct.pack("<e", 0.1))[0]
    assert fp16_of_tenth != 0.1 and shortest(fp16_of_tenth, "F16") == 0.1
    # fp16's largest: 7e4 and 6.6e4 overflow fp16 and are skipped; 65500 is stored as 65504
    assert shortest(65504.0, "F16") == 65500.0 and struct.pack("<e", 65500.0) == struct.pack("<e", 65504.0)
    assert shortest(1 / 3, "F64") == 1 / 3               # float64 is already exact


def test_model_hash_is_sha256_after_header_in_blocks(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"w": rng.standard_normal((3 * 1024 * 1024 // 4 + 7,)).astype(np.float32)}   # > 3 MiB, uneven
    path = tmp_path / "h.safetensors"
    save_file(tensors, str(path), {"k": "v"})
    data = path.read_bytes()
    expected = hashlib.sha256(data[8 + header_length(data):]).hexdigest()
    assert model_hash_file(path) == expected
    with open(path, "rb") as f:
        assert legacy_hash_stream(f) == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]


def test_hashes_of_bytes_match_the_written_file(tmp_path):
    data = save({"a": np.arange(10, dtype=np.float32)}, {"ss_x": "1"})
    path = tmp_path / "b.safetensors"
    path.write_bytes(data)
    model, legacy = hashes_of_bytes(data)
    assert model == hashlib.sha256(data[8 + header_length(data):]).hexdigest() == model_hash_file(path)
    assert legacy == hashlib.sha256(b"").hexdigest()[:8]       # under 1 MiB: nothing at the offset


def test_hash_of_too_short_stream_is_an_error(tmp_path):
    path = tmp_path / "short.bin"
    path.write_bytes(b"abc")
    with open(path, "rb") as f, pytest.raises(HeaderError, match="shorter than a safetensors header"):
        model_hash_stream(f)
