"""The LoRA inspector on real .safetensors files written here (kohya LoRA, LoCon, LoHa, LoKr, SDXL,
other LyCORIS layouts), through the library and through the real CLI in a subprocess."""
from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.conftest import run_cli, write_checkpoint
from workbench.config.schema import TrainConfig
from workbench.lora.inspect import (
    MetadataError,
    bucket_info,
    check_hash,
    compare,
    config_from_metadata,
    dataset_dirs,
    describe,
    modules_by_block,
    norms_by_block,
    tag_frequency,
    training_parameters,
)

RNG = np.random.default_rng(0)
UNET = {  # kohya names of an SD1 UNet's modules: (out, in) of the layer
    "lora_unet_down_blocks_0_attentions_0_proj_in": (32, 32),       # SD1's proj_in is a 1×1 conv
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k": (32, 768),
    "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q": (64, 64),
    "lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_ff_net_2": (32, 128),
}
TEXT = {
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj": (48, 48),
    "lora_te_text_model_encoder_layers_2_mlp_fc1": (96, 48),
    "lora_te_text_model_encoder_layers_11_self_attn_out_proj": (48, 48),
}
TAGS = {"10_猫": {"猫": 12, "café": 12, "solo": 3}, "3_dog": {"solo": 20, "dog": 5}}
KOHYA_META = {
    "ss_network_module": "networks.lora", "ss_network_dim": "4", "ss_network_alpha": "2.0",
    "ss_learning_rate": "0.0001", "ss_unet_lr": "0.0002", "ss_text_encoder_lr": "5e-05",
    "ss_lr_scheduler": "cosine_with_restarts", "ss_lr_warmup_steps": "50",
    "ss_optimizer": "bitsandbytes.optim.adamw.AdamW8bit(weight_decay=0.01,betas=(0.9, 0.99))",
    "ss_resolution": "(768, 512)", "ss_num_epochs": "6", "ss_seed": "1234", "ss_clip_skip": "2",
    "ss_noise_offset": "0.05", "ss_min_snr_gamma": "5.0", "ss_mixed_precision": "bf16",
    "ss_network_args": json.dumps({"conv_dim": "4", "conv_alpha": "1"}), "ss_base_model_version": "sd_v1",
    "ss_sd_model_name": "v1-5-pruned.safetensors", "ss_multires_noise_iterations": "6",
    "ss_multires_noise_discount": "0.3", "ss_color_aug": "False", "ss_steps": "600",
    "ss_training_started_at": "1700000000.5", "ss_training_comment": "trigger word: zkz",
    "ss_tag_frequency": json.dumps(TAGS, ensure_ascii=False),
    "ss_dataset_dirs": json.dumps({"10_猫": {"n_repeats": 10, "img_count": 12},
                                   "3_dog": {"n_repeats": 3, "img_count": 20}}),
    "ss_reg_dataset_dirs": json.dumps({"1_person": {"n_repeats": 1, "img_count": 40}}),
    "ss_bucket_info": json.dumps({"buckets": {str(i): {"resolution": [512 + 64 * i, 512], "count": 10 + i}
                                              for i in range(11)}, "mean_img_ar_error": 0.0125}),
}


def lora_module(name: str, out_dim: int, in_dim: int, rank: int = 4, alpha: float = 2.0, kernel: int | None = None):
    """kohya tensors of one module; a 1×1 conv for the proj_in names, a k×k conv with `kernel`."""
    conv = kernel or (1 if name.endswith("proj_in") else None)
    down_shape = (rank, in_dim, conv, conv) if conv else (rank, in_dim)
    up_shape = (out_dim, rank, 1, 1) if conv else (out_dim, rank)
    return {f"{name}.lora_down.weight": RNG.standard_normal(down_shape).astype(np.float16),
            f"{name}.lora_up.weight": RNG.standard_normal(up_shape).astype(np.float16),
            f"{name}.alpha": np.array(alpha, dtype=np.float16)}


def kohya_tensors(rank: int = 4, alpha: float = 2.0) -> dict:
    tensors = {}
    for name, (out_dim, in_dim) in {**UNET, **TEXT}.items():
        tensors.update(lora_module(name, out_dim, in_dim, rank, alpha))
    return tensors


def tensor_sha256(path: Path) -> str:
    """sha256 of the bytes after the header, computed here without workbench code."""
    data = path.read_bytes()
    return hashlib.sha256(data[8 + struct.unpack("<Q", data[:8])[0]:]).hexdigest()


def write(path: Path, tensors: dict, metadata: dict | None = None, store_hash: bool = False) -> Path:
    save_file(tensors, str(path), metadata)
    if store_hash:   # the tensor bytes do not depend on the metadata: save again with their hash
        save_file(tensors, str(path), {**(metadata or {}), "sshs_model_hash": tensor_sha256(path)})
    return path


@pytest.fixture
def kohya(tmp_path) -> Path:
    return write(tmp_path / "kohya.safetensors", kohya_tensors(), KOHYA_META, store_hash=True)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", "inspect", *map(str, args)],
                          capture_output=True, text=True, encoding="utf-8")


# ------------------------------------------------------------------ structure

def test_kohya_lora_structure(kohya):
    i = describe(kohya)
    s = i.structure
    assert (s.type, len(s.modules), s.count("unet"), s.count("text_encoder")) == ("lora", 7, 4, 3)
    assert (s.rank(), s.alpha(), s.rank_distribution(), s.dtypes) == (4, 2.0, {4: 7}, {"F16": 21})
    assert (i.base_model, i.base_model_source) == ("sd_v1", "ss_base_model_version")
    assert i.metadata == {**KOHYA_META, "sshs_model_hash": tensor_sha256(kohya)}
    assert s.other_tensors == ()


def test_locon_needs_a_3x3_conv(tmp_path):
    conv = lora_module("lora_unet_down_blocks_0_resnets_0_conv1", 32, 32, kernel=3)
    assert describe(write(tmp_path / "locon.safetensors", {**kohya_tensors(), **conv})).structure.type == "locon"
    # the 1×1 proj_in conv of plain LoRA does not make it a LoCon
    assert describe(write(tmp_path / "lora.safetensors", kohya_tensors())).structure.type == "lora"


def test_loha(tmp_path):
    tensors = {}
    for name, (out_dim, in_dim) in UNET.items():
        tensors.update({f"{name}.hada_w1_a": np.ones((out_dim, 6), np.float32),
                        f"{name}.hada_w1_b": np.ones((6, in_dim), np.float32),
                        f"{name}.hada_w2_a": np.ones((out_dim, 6), np.float32),
                        f"{name}.hada_w2_b": np.ones((6, in_dim), np.float32),
                        f"{name}.alpha": np.array(3.0, np.float32)})
    s = describe(write(tmp_path / "loha.safetensors", tensors)).structure
    assert (s.type, len(s.modules), s.rank(), s.alpha(), s.dtypes) == ("loha", 4, 6, 3.0, {"F32": 20})


def test_lokr_rank_from_the_decomposed_factor(tmp_path):
    decomposed, full = list(UNET)[:3], list(UNET)[3]
    tensors = {f"{full}.lokr_w1": np.ones((4, 8), np.float16), f"{full}.lokr_w2": np.ones((8, 16), np.float16),
               f"{full}.alpha": np.array(1.0, np.float16)}
    for name in decomposed:
        tensors.update({f"{name}.lokr_w1": np.ones((4, 4), np.float16),
                        f"{name}.lokr_w2_a": np.ones((8, 5), np.float16),
                        f"{name}.lokr_w2_b": np.ones((5, 8), np.float16),
                        f"{name}.alpha": np.array(5.0, np.float16)})
    s = describe(write(tmp_path / "lokr.safetensors", tensors)).structure
    assert (s.type, len(s.modules), s.rank_distribution()) == ("lokr", 4, {5: 3})   # the full-matrix one: no rank
    assert s.alpha_distribution() == {5.0: 3, 1.0: 1}


LYCORIS_LAYOUTS = {
    "ia3": {"weight": (32,), "on_input": ()},
    "oft": {"oft_blocks": (4, 8, 8), "alpha": ()},
    "boft": {"oft_blocks": (2, 4, 8, 8), "alpha": ()},
    "glora": {"a1.weight": (32, 4), "a2.weight": (4, 32), "b1.weight": (32, 4), "b2.weight": (4, 32), "alpha": ()},
    "full": {"diff": (32, 32), "diff_b": (32,)},
    "norm": {"w_norm": (32,), "b_norm": (32,)},
}


@pytest.mark.parametrize("algo", sorted(LYCORIS_LAYOUTS))
def test_other_lycoris_algorithms(tmp_path, algo):
    name = list(UNET)[2]
    tensors = {f"{name}.{role}": np.ones(shape, np.float32) for role, shape in LYCORIS_LAYOUTS[algo].items()}
    s = describe(write(tmp_path / f"{algo}.safetensors", tensors)).structure
    assert (s.type, len(s.modules), s.count("unet")) == (algo, 1, 1)
    assert s.rank() == (4 if algo == "glora" else None)


def test_dylora_is_told_by_its_metadata(tmp_path):
    path = write(tmp_path / "dy.safetensors", kohya_tensors(), {"ss_network_module": "networks.dylora"})
    assert describe(path).structure.type == "dylora"


def test_peft_names(tmp_path):
    tensors = {}
    for name, (out_dim, in_dim) in {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k": (32, 768),
                                    "text_encoder.text_model.encoder.layers.3.self_attn.q_proj": (48, 48)}.items():
        tensors.update({f"{name}.lora_A.weight": np.ones((8, in_dim), np.float32),
                        f"{name}.lora_B.weight": np.ones((out_dim, 8), np.float32)})
    i = describe(write(tmp_path / "peft.safetensors", tensors))
    s = i.structure
    assert (s.type, s.count("unet"), s.count("text_encoder"), s.rank(), s.alpha()) == ("lora", 1, 1, 8, None)
    assert i.base_model == "sd_v1"
    assert [b.label for b in modules_by_block(s.modules)] == ["unet down_blocks_0", "te layer 3"]


def test_diffusers_pre_peft_names(tmp_path):
    # diffusers 0.1x: LoRACompatibleLinear's ".lora.down" and the attention processors' "to_k_lora.down"
    attn = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2"
    layers = {f"{attn}.processor.to_k_lora": (32, 768), f"{attn}.processor.to_q_lora": (32, 32),
              "text_encoder.text_model.encoder.layers.3.self_attn.q_proj.lora": (48, 48)}
    tensors = {}
    for name, (out_dim, in_dim) in layers.items():
        tensors.update({f"{name}.down.weight": np.ones((4, in_dim), np.float32),
                        f"{name}.up.weight": np.ones((out_dim, 4), np.float32)})
    s = describe(write(tmp_path / "old.safetensors", tensors)).structure
    assert (s.type, s.count("unet"), s.count("text_encoder"), s.rank(), s.other_tensors) == ("lora", 2, 1, 4, ())
    assert {m.name for m in s.modules} == {f"{attn}.processor.to_k", f"{attn}.processor.to_q",
                                           "text_encoder.text_model.encoder.layers.3.self_attn.q_proj"}
    assert [b.label for b in modules_by_block(s.modules)] == ["unet down_blocks_0", "te layer 3"]


def test_unknown_tensors_are_kept_apart(tmp_path):
    path = write(tmp_path / "u.safetensors", {**kohya_tensors(), "some.other.thing": np.ones(2, np.float32)})
    s = describe(path).structure
    assert (len(s.modules), s.other_tensors) == (7, ("some.other.thing",))


def test_sdxl_two_text_encoders(tmp_path):
    tensors = lora_module("lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k", 64, 2048)
    for prefix in ("lora_te1_", "lora_te2_"):
        for layer in (0, 1):
            tensors.update(lora_module(f"{prefix}text_model_encoder_layers_{layer}_self_attn_q_proj", 32, 32))
    i = describe(write(tmp_path / "xl.safetensors", tensors))
    assert (i.structure.count("unet"), i.structure.count("text_encoder")) == (1, 4)
    assert (i.base_model, i.base_model_source) == ("sdxl_base_v1-0", "key names (two text encoders)")
    labels = [b.label for b in modules_by_block(i.structure.modules)]
    assert labels == ["unet input_blocks_4", "te1 layer 0", "te1 layer 1", "te2 layer 0", "te2 layer 1"]


def test_base_model_from_modelspec_or_context_width(tmp_path):
    sd2 = lora_module("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", 32, 1024)
    assert describe(write(tmp_path / "sd2.safetensors", sd2)).base_model == "sd_v2"
    spec = write(tmp_path / "spec.safetensors", sd2, {"modelspec.architecture": "stable-diffusion-v2-768-v/lora"})
    assert (describe(spec).base_model, describe(spec).base_model_source) == ("sd_v2_v", "modelspec.architecture")
    bare = lora_module("lora_unet_mid_block_attentions_0_proj_out", 32, 32)
    assert describe(write(tmp_path / "bare.safetensors", bare)).base_model is None


def test_rank_and_alpha_that_vary(tmp_path):
    tensors = kohya_tensors(rank=8, alpha=8.0)
    tensors.update(lora_module(list(UNET)[1], 32, 768, rank=4, alpha=0.1))    # replaces one rank-8 module
    path = write(tmp_path / "mixed.safetensors", tensors)
    s = describe(path).structure
    assert (s.rank(), s.rank_distribution(), s.alpha_distribution()) == (8, {8: 6, 4: 1}, {8.0: 6, 0.1: 1})
    out = cli(path).stdout
    assert "8 (most common); 8 ×6, 4 ×1" in out and "0.1 ×1" in out


def test_modules_grouped_by_block_in_model_order(kohya):
    blocks = modules_by_block(describe(kohya).structure.modules)
    assert [(b.label, len(b.modules)) for b in blocks] == [
        ("unet down_blocks_0", 2), ("unet mid_block", 1), ("unet up_blocks_1", 1),
        ("te layer 0", 1), ("te layer 2", 1), ("te layer 11", 1)]
    assert blocks[0].rank_distribution() == {4: 2}


def test_norms_per_block_equal_the_full_update_norm(tmp_path):
    import torch
    from safetensors.torch import load_file
    conv = lora_module("lora_unet_down_blocks_0_resnets_0_conv1", 16, 8, rank=3, alpha=1.5, kernel=3)
    path = write(tmp_path / "n.safetensors", {**kohya_tensors(alpha=2.0), **conv})
    loaded = load_file(str(path))

    def update_norm(name: str) -> float:      # ‖up·down·alpha/rank‖ with ΔW built in full
        down, up = loaded[f"{name}.lora_down.weight"].double(), loaded[f"{name}.lora_up.weight"].double()
        delta = up.flatten(1) @ down.flatten(1) * (float(loaded[f"{name}.alpha"]) / down.shape[0])
        return float(torch.linalg.norm(delta))

    by_label = {b.label: b for b in norms_by_block(path)}
    down0 = [update_norm(n) for n in (*list(UNET)[:2], "lora_unet_down_blocks_0_resnets_0_conv1")]
    assert by_label["unet down_blocks_0"].modules == 3
    assert by_label["unet down_blocks_0"].max == pytest.approx(max(down0), rel=1e-9)
    assert by_label["unet down_blocks_0"].mean == pytest.approx(sum(down0) / 3, rel=1e-9)
    assert by_label["te layer 11"].mean == pytest.approx(update_norm(list(TEXT)[2]), rel=1e-9)


def test_norms_through_the_cli_match_the_library(kohya):
    """The Inspect page runs `inspect --norms --json` in a subprocess (the app never imports torch)."""
    done = cli(str(kohya), "--norms", "--json")
    assert done.returncode == 0, done.stderr
    expected = [{"label": b.label, "modules": b.modules, "mean": b.mean, "max": b.max} for b in norms_by_block(kohya)]
    assert json.loads(done.stdout) == expected
    text = cli(str(kohya), "--norms")
    assert text.returncode == 0 and all(b["label"] in text.stdout for b in expected)


# ------------------------------------------------------------------ hash

def test_hash_verifies_when_right(kohya):
    check = check_hash(describe(kohya))
    assert (check.stored, check.computed, check.matches) == (tensor_sha256(kohya), tensor_sha256(kohya), True)


def test_altered_tensor_bytes_fail_the_hash(kohya, tmp_path):
    data = bytearray(kohya.read_bytes())
    data[-3] ^= 0xFF
    altered = tmp_path / "altered.safetensors"
    altered.write_bytes(bytes(data))
    result = json.loads(cli(altered, "--json").stdout)["hash"]
    assert result == {"stored": tensor_sha256(kohya), "computed": tensor_sha256(altered), "matches": False}
    assert "MISMATCH" in cli(altered).stdout


def test_no_stored_hash_is_null(tmp_path):
    path = write(tmp_path / "nohash.safetensors", kohya_tensors(), {"ss_network_dim": "4"})
    assert json.loads(cli(path, "--json").stdout)["hash"] == {
        "stored": None, "computed": tensor_sha256(path), "matches": None}


# ------------------------------------------------------------------ CLI

def test_json_has_exactly_the_contract_keys(kohya):
    run = cli(kohya, "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert list(out) == ["file", "size_bytes", "metadata", "network", "hash"]
    assert out["file"] == str(kohya) and out["size_bytes"] == kohya.stat().st_size
    assert out["metadata"] == {**KOHYA_META, "sshs_model_hash": tensor_sha256(kohya)}      # as stored: 猫, café
    assert out["network"] == {"type": "lora", "modules": 7, "unet_modules": 4, "text_encoder_modules": 3,
                              "rank": 4, "alpha": 2.0}
    assert list(out["hash"]) == ["stored", "computed", "matches"] and out["hash"]["matches"] is True


def test_readable_report(kohya):
    run = cli(kohya)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("Tag frequency"))
    tag_rows = [line.split() for line in lines[start + 1:] if line.startswith("  ") and line.split()[0].isdigit()]
    assert tag_rows[:4] == [["23", "solo"], ["12", "café"], ["12", "猫"], ["5", "dog"]]
    out = run.stdout
    assert "Training comment: trigger word: zkz" in out
    assert "10_猫" in out and "10 repeats ×    12 images = 120" in out and "1_person" in out
    assert "Buckets (11, mean aspect-ratio error 0.0125)" in out and "1152 × 512" in out
    assert "sshs_model_hash verified" in out and "lora: 7 modules (4 UNet, 3 text encoder)" in out
    assert "training_started_at" in out and "2023-11-14 22:13:20 UTC" in out


def test_malformed_metadata_section_does_not_stop_the_report(tmp_path):
    path = write(tmp_path / "m.safetensors", kohya_tensors(), {"ss_tag_frequency": "{broken"})
    run = cli(path)
    assert run.returncode == 0 and "Tag frequency: ss_tag_frequency: not valid JSON" in run.stdout


BAD_INPUTS = {
    "truncated": lambda good, p: p.write_bytes(good.read_bytes()[:-100]),
    "header_length_past_end": lambda good, p: p.write_bytes(struct.pack("<Q", 10**9) + good.read_bytes()[8:]),
    "header_not_json": lambda good, p: p.write_bytes(struct.pack("<Q", 9) + b"\xff{oops}\xfe\x00"),
    "pickle": lambda good, p: p.with_suffix(".ckpt").write_bytes(b"\x80\x04\x95" + b"\0" * 40),
    "missing": lambda good, p: None,
    "directory": lambda good, p: p.mkdir(),
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_bad_input_exits_with_one_line(kohya, tmp_path, kind):
    path = tmp_path / f"{kind}.safetensors"
    BAD_INPUTS[kind](kohya, path)
    path = path.with_suffix(".ckpt") if kind == "pickle" else path
    for args in ((path,), (path, "--json")):
        run = cli(*args)
        assert run.returncode != 0 and run.stdout == ""
        assert len(run.stderr.splitlines()) == 1 and "Traceback" not in run.stderr
        assert run.stderr.startswith("workbench inspect: error: ") and str(path) in run.stderr


def test_compare_two_loras(kohya, tmp_path):
    tensors = kohya_tensors()
    tensors.update(lora_module(list(UNET)[1], 32, 768, rank=8))
    tensors.update(lora_module("lora_unet_up_blocks_2_attentions_0_proj_out", 32, 32))
    meta = {k: v for k, v in KOHYA_META.items() if k != "ss_seed"}
    other = write(tmp_path / "other.safetensors", tensors, {**meta, "ss_num_epochs": "8", "extra_key": "x"})
    run = cli(kohya, other, "--compare")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    for expected in ("Metadata only in A (2)", "ss_seed", "sshs_model_hash", "Metadata only in B (1)", "extra_key",
                     "Metadata different (1)", "ss_num_epochs", "A: 6", "B: 8", "Modules only in B (1)",
                     "lora_unet_up_blocks_2_attentions_0_proj_out", "Rank differs in 1 modules",
                     "modules              7  →  8"):
        assert expected in out, expected
    result = json.loads(cli(kohya, other, "--compare", "--json").stdout)
    assert result["metadata"]["different"] == {"ss_num_epochs": ["6", "8"]}
    assert result["modules"]["rank_different"] == {list(UNET)[1]: [4, 8]}
    assert result["network"]["rank_distribution"] == [{"4": 7}, {"4": 7, "8": 1}]
    assert result["identical"] is False
    assert compare(describe(kohya), describe(kohya)).identical


@pytest.mark.parametrize("args", [("{a}", "--compare"), ("{a}", "{a}"), ("{a}", "{a}", "{a}", "--compare")])
def test_compare_needs_exactly_two_files(kohya, args):
    run = cli(*[a.format(a=kohya) for a in args])
    assert run.returncode == 1 and "give one FILE, or two FILEs with --compare" in run.stderr


def test_top_limits_the_tags_shown(kohya):
    out = cli(kohya, "--top", "2").stdout
    assert "  … 2 more (--top N shows more, --json all)" in out and "dog" not in out.split("Tag frequency")[1]
    run = cli(kohya, "--top", "0")
    assert run.returncode == 1 and "--top 0: give the number of tags" in run.stderr


def test_header_path_reads_little_and_imports_no_torch(tmp_path):
    """describe() on a 64 MiB file reads its header and alpha only (bytes counted by the kernel in
    /proc/self/io), and neither it nor the hash imports torch, diffusers, transformers or streamlit."""
    path = tmp_path / "big.safetensors"
    big = 16 * 1024 * 1024          # F32 elements: 64 MiB of (sparse, zero) tensor data
    header = {"lora_unet_mid_block_attn1_to_q.alpha": {"dtype": "F16", "shape": [], "data_offsets": [0, 2]},
              "lora_unet_mid_block_attn1_to_q.lora_down.weight": {"dtype": "F32", "shape": [4, big // 4],
                                                                   "data_offsets": [2, 2 + 4 * big]}}
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + struct.pack("<e", 16.0))
        f.truncate(8 + len(raw) + 2 + 4 * big)
    script = f"""
import sys
def rchar():
    return int(next(l for l in open("/proc/self/io") if l.startswith("rchar")).split()[1])
from workbench.lora.inspect import describe, check_hash
before = rchar()
inspection = describe({str(path)!r})
described = rchar() - before
check_hash(inspection)
hashed = rchar() - before - described
heavy = sorted(m for m in ("torch", "diffusers", "transformers", "streamlit") if m in sys.modules)
print(described, hashed, inspection.structure.alpha(), heavy)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    described, hashed, alpha, heavy = run.stdout.split(maxsplit=3)
    assert int(described) < 64 * 1024 and int(hashed) >= 4 * big
    assert (float(alpha), heavy.strip()) == (16.0, "[]")


# ------------------------------------------------------------------ decoding helpers

def test_tag_frequency_totals_and_per_folder(kohya):
    freq = tag_frequency(describe(kohya).metadata)
    assert freq.total == [("solo", 23), ("café", 12), ("猫", 12), ("dog", 5)]
    assert freq.per_dir == {"10_猫": [("café", 12), ("猫", 12), ("solo", 3)], "3_dog": [("solo", 20), ("dog", 5)]}
    assert tag_frequency({}) is None


def test_dataset_dirs_and_buckets(kohya):
    meta = describe(kohya).metadata
    assert [(d.name, d.n_repeats, d.img_count, d.images_times_repeats) for d in dataset_dirs(meta)] == [
        ("10_猫", 10, 12, 120), ("3_dog", 3, 20, 60)]
    assert [d.name for d in dataset_dirs(meta, "ss_reg_dataset_dirs")] == ["1_person"]
    info = bucket_info(meta)
    # indices sorted as numbers: bucket 10 (1152 px) comes after bucket 9, not after bucket 1
    assert [(b.width, b.count) for b in info.buckets][-2:] == [(1088, 19), (1152, 20)]
    assert info.mean_img_ar_error == 0.0125
    assert bucket_info({"ss_bucket_info": "None"}) is None


def test_buckets_of_a_dataset_config_run_are_merged():
    datasets = [{"bucket_info": {"buckets": {"0": {"resolution": [512, 512], "count": 4}}, "mean_img_ar_error": 0.1}},
                {"bucket_info": {"buckets": {"0": {"resolution": [512, 512], "count": 6},
                                             "1": {"resolution": [448, 576], "count": 2}}, "mean_img_ar_error": 0.3}}]
    info = bucket_info({"ss_datasets": json.dumps(datasets)})
    assert [(b.width, b.height, b.count) for b in info.buckets] == [(448, 576, 2), (512, 512, 10)]
    assert info.mean_img_ar_error == pytest.approx(0.2)


@pytest.mark.parametrize("key, value, decode", [
    ("ss_tag_frequency", '{"a": 3}', tag_frequency),
    ("ss_tag_frequency", '{"a": {"t": "many"}}', tag_frequency),
    ("ss_dataset_dirs", "[1, 2]", dataset_dirs),
    ("ss_bucket_info", '{"buckets": {"0": {"resolution": 512, "count": 1}}}', bucket_info),
    ("ss_bucket_info", "{oops", bucket_info)])
def test_malformed_values_name_their_key(key, value, decode):
    with pytest.raises(MetadataError, match=key):
        decode({key: value})


def test_training_parameters_grouped(kohya):
    groups = dict(training_parameters(describe(kohya).metadata))
    assert list(groups) == ["Network", "Learning rate", "Steps", "Images", "Loss", "Model", "Run"]
    assert ("network_dim", "4") in groups["Network"]
    assert ("optimizer", KOHYA_META["ss_optimizer"]) in groups["Learning rate"]
    assert ("training_started_at", "2023-11-14 22:13:20 UTC") in groups["Run"]
    assert training_parameters({"modelspec.title": "x"}) == []


# ------------------------------------------------------------------ use these settings

def test_config_from_the_frozen_workbench_config():
    cfg = TrainConfig(network_dim=16, network_alpha=8.0, optimizer_type="Prodigy", optimizer_args=["d_coef=2"],
                      resolution="768,512", sdxl=True, seed=7, unet_lr=3e-4, lr_warmup_steps=0.05)
    rebuilt, notes = config_from_metadata({"workbench_config": json.dumps(cfg.to_dict()), "ss_network_dim": "99"})
    assert rebuilt == cfg and notes == []


def test_config_best_effort_from_ss_keys(kohya):
    cfg, notes = config_from_metadata(describe(kohya).metadata)
    assert (cfg.network_dim, cfg.network_alpha, cfg.learning_rate, cfg.unet_lr, cfg.text_encoder_lr) == (
        4, 2.0, 1e-4, 2e-4, 5e-5)
    assert (cfg.optimizer_type, cfg.optimizer_args) == ("AdamW8bit", ["weight_decay=0.01", "betas=(0.9, 0.99)"])
    assert (cfg.resolution, cfg.max_train_epochs, cfg.seed, cfg.clip_skip) == ("768,512", 6, 1234, 2)
    assert (cfg.lr_scheduler, cfg.lr_warmup_steps, cfg.mixed_precision) == ("cosine_with_restarts", 50, "bf16")
    assert (cfg.noise_offset, cfg.min_snr_gamma, cfg.network_args) == (0.05, 5.0, ["conv_dim=4", "conv_alpha=1"])
    assert (cfg.sdxl, cfg.v2, cfg.training_comment) == (False, False, "trigger word: zkz")
    assert (cfg.multires_noise_iterations, cfg.multires_noise_discount) == (6, 0.3)
    # a note for each setting that has no workbench field; none for options that were off or at the default
    assert [n.split(" = ")[0] for n in notes] == ["ss_sd_model_name",
                                                 "train_data_dir: a LoRA keeps only its folders' names; choose the "
                                                 "dataset folder"]


@pytest.mark.parametrize("meta, expected, note", [
    ({"ss_optimizer": "torch.optim.sgd.SGD(momentum=0.9)"}, {"optimizer_type": "SGDNesterov",
                                                           "optimizer_args": ["momentum=0.9"]}, None),
    ({"ss_optimizer": "came_pytorch.CAME.CAME"}, {"optimizer_type": "AdamW8bit"}, "CAME is not an optimizer"),
    ({"ss_lr_scheduler": "adafactor:0.0001"}, {"lr_scheduler": "adafactor"}, None),
    ({"ss_lr_scheduler": "rex"}, {"lr_scheduler": "cosine"}, "lr_scheduler has no choice 'rex'"),
    ({"ss_network_dim": "eight"}, {"network_dim": 8}, "ss_network_dim = eight"),
    ({"ss_network_module": "networks.dylora"}, {"network_module": "networks.lora"}, "no choice 'networks.dylora'"),
    ({"ss_base_model_version": "sd_v2_v"}, {"v2": True, "v_parameterization": True}, None),
    ({"ss_base_model_version": "sd_v1_v"}, {"v2": False, "v_parameterization": True}, None),
    ({"ss_network_args": json.dumps({"conv_dim": "4", "dropout": "0.1"})}, {"network_args": ["conv_dim=4"]}, None),
    ({"ss_base_model_version": "sdxl_base_v1-0"}, {"sdxl": True}, None),
    ({"ss_unet_lr": "None", "ss_seed": "None"}, {"unet_lr": None, "seed": None}, None),
    ({"ss_datasets": json.dumps([{"resolution": [640, 640], "batch_size_per_device": 3,
                                  "subsets": [{"flip_aug": True, "keep_tokens": 1}]}])},
     {"resolution": "640,640", "train_batch_size": 3, "flip_aug": True, "keep_tokens": 1}, None),
    ({"workbench_config": "{not json"}, {}, "workbench_config: unreadable"),
    ({"ss_max_token_length": "225", "ss_caption_tag_dropout_rate": "0.1"},
     {"max_token_length": 225, "caption_tag_dropout_rate": 0.1}, None),
    ({"ss_max_token_length": "None"}, {"max_token_length": 75}, None),
])
def test_config_from_single_ss_keys(meta, expected, note):
    cfg, notes = config_from_metadata(meta)
    assert {k: getattr(cfg, k) for k in expected} == expected
    assert any(note in n for n in notes) if note else notes == []


# ---------------------------------------------------------------- not a LoRA, huge headers

@pytest.mark.parametrize("tensors, looks_like", [
    ({}, "it holds no tensors"),
    ({"model.diffusion_model.input_blocks.0.0.weight": (4, 4), "first_stage_model.encoder.conv_in.weight": (4, 4),
      "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (4, 4)},
     "a full Stable Diffusion checkpoint"),
    ({"down_blocks.0.resnets.0.conv1.weight": (4, 4), "time_embedding.linear_1.weight": (4, 4)}, "a diffusers UNet"),
    ({"emb_params": (2, 768)}, "a textual-inversion embedding"),
    ({"clip_l": (2, 768), "clip_g": (2, 1280)}, "a textual-inversion embedding"),
    ({"some.weight": (4, 4)}, "none of them a LoRA module (e.g. some.weight)"),
])
def test_a_safetensors_that_is_not_a_lora_is_refused_saying_what_it_looks_like(tmp_path, tensors, looks_like):
    path = tmp_path / "file.safetensors"
    if tensors:
        write_checkpoint(path, tensors)
    else:
        path.write_bytes(struct.pack("<Q", 2) + b"{}")
    done = run_cli("inspect", path)
    assert done.returncode == 1 and done.stdout == ""
    line, = done.stderr.strip().splitlines()
    assert f"{path}: not a LoRA:" in line and looks_like in line


def test_a_header_over_safetensors_limit_says_so_and_not_that_the_file_is_short(tmp_path):
    n = 125_829_122
    path = tmp_path / "big-header.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", n) + b"{" + b" " * (n - 2) + b"}")
    line, = run_cli("inspect", path).stderr.strip().splitlines()
    assert "125,829,122 bytes, over the 100,000,000-byte limit" in line and "larger than the file" not in line
