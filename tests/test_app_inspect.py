"""AppTest of the Inspect page on real safetensors LoRAs written here (kohya key names, ss_*
metadata, the frozen workbench config): metadata and structure shown, hash verified or not, a
bad file as one line (the CLI's sentence), compare, upload, and "use these settings"."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from workbench import workspace
from workbench.config.schema import TrainConfig
from workbench.lora.hashes import model_hash_file

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
UNET = ["lora_unet_down_blocks_0_attentions_0_proj_in",
        "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k",
        "lora_unet_up_blocks_1_attentions_0_proj_out"]
TE = ["lora_te_text_model_encoder_layers_0_self_attn_q_proj", "lora_te_text_model_encoder_layers_0_mlp_fc1"]


def write_lora(path: Path, rank: int = 4, alpha: float = 2.0, trained: TrainConfig | None = None,
               with_hash: bool = True) -> Path:
    """A kohya-format LoRA: lora_down/lora_up/alpha per module, sd-scripts-style metadata."""
    from safetensors.numpy import save_file
    rng = np.random.default_rng(0)
    tensors = {}
    for name in UNET + TE:
        tensors[f"{name}.lora_down.weight"] = rng.standard_normal((rank, 32)).astype(np.float16)
        tensors[f"{name}.lora_up.weight"] = rng.standard_normal((32, rank)).astype(np.float16)
        tensors[f"{name}.alpha"] = np.array(alpha, dtype=np.float16)
    trained = trained or TrainConfig(network_dim=rank, network_alpha=alpha, learning_rate=3e-4, output_name="catlora")
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": str(alpha),
            "ss_learning_rate": "0.0003", "ss_num_epochs": "4", "ss_base_model_version": "sd_v1",
            "ss_training_comment": "trigger word: wbcat",
            "ss_tag_frequency": json.dumps({"2_cat": {"wbcat": 12, "猫": 7, "café": 3}}, ensure_ascii=False),
            "ss_dataset_dirs": json.dumps({"2_cat": {"n_repeats": 2, "img_count": 12}}),
            "ss_bucket_info": json.dumps({"buckets": {"0": {"resolution": [512, 512], "count": 24}},
                                          "mean_img_ar_error": 0.0}),
            "workbench_config": json.dumps(trained.to_dict())}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    if with_hash:      # the hash covers the tensor bytes only, so adding it keeps it true
        save_file(tensors, str(path), metadata={**meta, "sshs_model_hash": model_hash_file(path)})
    return path


@pytest.fixture(autouse=True)
def current_config(tmp_path):
    cfg = TrainConfig(pretrained_model_name_or_path=str(tmp_path / "base-model"), train_data_dir=str(tmp_path / "data"))
    workspace.save_current(cfg)
    return cfg


def inspect_page(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = str(value)
    at.switch_page("app_pages/4_Inspect.py").run()
    assert not at.exception, at.exception
    return at


def chart_rows(chart) -> list[dict]:
    """The rows Streamlit sends with a Vega-Lite chart (Arrow IPC bytes)."""
    import pyarrow as pa
    data = chart.proto.datasets[0].data.data if chart.proto.datasets else chart.proto.data.data
    return pa.ipc.open_stream(data).read_all().to_pylist()


def frames(at: AppTest) -> list:
    return [d.value for d in at.dataframe]


def test_no_file_chosen_shows_the_three_ways_to_choose():
    at = inspect_page()
    assert any("Choose a LoRA" in i.value for i in at.info)
    assert len(at.selectbox) == 1 and len(at.text_input) == 1 and len(at.get("file_uploader")) == 1


def test_metadata_structure_and_hash_of_a_real_lora(tmp_path):
    lora = write_lora(tmp_path / "catlora.safetensors")
    at = inspect_page(file=lora)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Network": "lora", "Modules": "5", "Rank": "4", "Alpha": "2", "Base model": "sd_v1"}
    assert any("Hash verified" in s.value for s in at.success)
    assert any("trigger word: wbcat" in m.value for m in at.markdown)
    params = next(f for f in frames(at) if "parameter" in f.columns)      # the tab open by default
    assert dict(zip(params.parameter, params.value))["network_dim"] == "4"
    folders = next(f for f in frames(open_section(at, "Dataset & buckets")) if "folder" in f.columns)
    assert folders.to_dict("records") == [{"folder": "2_cat", "repeats": 2, "images": 12, "images × repeats": 24}]
    blocks = next(f for f in frames(open_section(at, "Structure")) if "block" in f.columns)
    assert list(blocks.block) == ["unet down_blocks_0", "unet mid_block", "unet up_blocks_1", "te layer 0"]
    assert list(blocks.modules) == [1, 1, 1, 2]
    (tag_chart,) = [c for c in open_section(at, "Tags").get("vega_lite_chart") if '"tag"' in c.proto.spec]
    assert chart_rows(tag_chart) == [{"tag": "wbcat", "count": 12}, {"tag": "猫", "count": 7},
                                     {"tag": "café", "count": 3}]
    everything = next(f for f in frames(open_section(at, "All metadata")) if {"key", "value"} <= set(f.columns))
    assert "ss_tag_frequency" in set(everything.key)


def open_section(at: AppTest, name: str) -> AppTest:
    """Open a tab, as a click on it does (only the open tab is drawn)."""
    at.session_state["section"] = name
    return at.run()


def test_altered_tensor_bytes_fail_the_hash(tmp_path):
    lora = write_lora(tmp_path / "catlora.safetensors")
    data = bytearray(lora.read_bytes())
    data[-3] ^= 0xFF                       # one byte of the last tensor
    lora.write_bytes(bytes(data))
    at = inspect_page(file=lora)
    assert any("Hash MISMATCH" in e.value for e in at.error)


@pytest.mark.parametrize("content", [b"\x01\x02", b"\xff" * 8 + b"{}",
                                     (20).to_bytes(8, "little") + b"not json at all!!!!!"])
def test_a_bad_file_shows_the_clis_one_line(tmp_path, content):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    at = inspect_page(file=bad)
    (error,) = at.error
    assert "\n" not in error.value and str(bad) in error.value
    cli = subprocess.run([sys.executable, "-m", "workbench", "inspect", str(bad)], capture_output=True, text=True)
    assert cli.returncode != 0 and cli.stderr.strip().endswith(error.value)
    assert not at.metric                  # nothing else rendered


def test_the_runs_loras_are_offered_and_choosing_one_opens_it(tmp_path):
    lora = write_lora(tmp_path / "out" / "catlora.safetensors")
    run = workspace.runs_dir() / "20260101-000000-catlora"
    run.mkdir(parents=True)
    (run / "config.toml").write_text("")
    (run / "status.json").write_text(json.dumps({"state": "finished", "outputs": [str(lora)]}))
    at = inspect_page()
    assert str(lora) in at.selectbox[0].options
    at.selectbox[0].select(str(lora)).run()
    assert at.query_params["file"] in (str(lora), [str(lora)])
    assert {m.label: m.value for m in at.metric}["Modules"] == "5"


def test_upload_is_written_into_the_workspace_and_inspected(tmp_path):
    data = write_lora(tmp_path / "elsewhere" / "up.safetensors").read_bytes()
    at = inspect_page()
    at.get("file_uploader")[0].set_value(("my lora.safetensors", data, "application/octet-stream"))
    at.run()
    saved = workspace.home() / "uploads" / "my_lora.safetensors"
    assert saved.read_bytes() == data
    assert {m.label: m.value for m in at.metric}["Network"] == "lora"


def test_compare_two_loras(tmp_path):
    a = write_lora(tmp_path / "a.safetensors", rank=4)
    b = write_lora(tmp_path / "b.safetensors", rank=8)
    at = inspect_page(file=a, compare=b, section="Compare")        # a link that opens the Compare tab
    tables = frames(at)
    rank_rows = next(f for f in tables if "module" in f.columns)
    assert len(rank_rows) == 5 and set(rank_rows.A) == {4} and set(rank_rows.B) == {8}
    meta_rows = next(f for f in tables if list(f.columns) == ["key", "A", "B"])
    assert dict(zip(meta_rows.key, zip(meta_rows.A, meta_rows.B)))["ss_network_dim"] == ("4", "8")


def test_use_these_settings_loads_the_training_config_into_parameters(tmp_path, current_config):
    trained = TrainConfig(network_dim=16, network_alpha=8.0, learning_rate=2e-4, lr_scheduler="linear",
                          output_name="catlora")
    lora = write_lora(tmp_path / "catlora.safetensors", trained=trained)
    at = inspect_page(file=lora)
    at.button(key="use-settings").click().run()
    cfg = workspace.load_current()
    assert (cfg.network_dim, cfg.network_alpha, cfg.learning_rate, cfg.lr_scheduler) == (16, 8.0, 2e-4, "linear")
    # the LoRA keeps no paths: the current model and data folder stay
    assert cfg.pretrained_model_name_or_path == current_config.pretrained_model_name_or_path
    assert cfg.train_data_dir == current_config.train_data_dir
    # Parameters opens saying so, and the config it replaced is one click away
    assert "Loaded the training settings of catlora.safetensors" in " ".join(t.value for t in at.toast)
    restore = at.button(key="config_restore")
    assert "Used the settings of catlora.safetensors" in restore.label
    restore.click().run()
    assert workspace.load_current() == current_config


def test_a_file_without_training_settings_offers_none_to_use(tmp_path, current_config):
    """A UNet or any non-LoRA .safetensors: the page says it is not a LoRA and what it looks like, and
    offers nothing to use (it would reset the config to the defaults)."""
    from safetensors.numpy import save_file
    unet = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file({"conv_in.weight": np.zeros((4, 4), np.float32), "down_blocks.0.resnets.0.conv1.weight":
               np.zeros((4, 4), np.float32), "time_embedding.linear_1.weight": np.zeros((4, 4), np.float32)},
              str(unet))
    at = inspect_page(file=unet)
    assert "use-settings" not in [b.key for b in at.button]
    assert any("not a LoRA: it looks like a diffusers UNet" in e.value for e in at.error)
    assert workspace.load_current() == current_config


@pytest.mark.slow
def test_norms_per_block_are_computed_in_a_subprocess(tmp_path):
    lora = write_lora(tmp_path / "catlora.safetensors")
    at = inspect_page(file=lora, section="Structure")
    at.toggle(key=f"norms-{lora}").set_value(True).run()
    assert not at.exception and not at.warning
    (norms,) = [c for c in at.get("vega_lite_chart") if '"mean"' in c.proto.spec]
    rows = chart_rows(norms)
    assert [r["label"] for r in rows] == ["unet down_blocks_0", "unet mid_block", "unet up_blocks_1", "te layer 0"]
    # ‖up·down‖·alpha/rank of the file's own tensors, computed here with numpy
    from safetensors.numpy import load_file
    t = load_file(str(lora))
    name = UNET[0]
    delta = t[f"{name}.lora_up.weight"].astype(np.float64) @ t[f"{name}.lora_down.weight"].astype(np.float64)
    assert rows[0]["mean"] == pytest.approx(np.linalg.norm(delta) * 2.0 / 4, rel=1e-6)
