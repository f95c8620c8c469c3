"""The Parameters page under AppTest on a small real dataset: every field has its widget, edits
reach current.toml at once, total steps and the LR chart follow them, findings sit beside their
field, the model family is read from a real checkpoint header, configs go in and out."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import make_image
from workbench import workspace
from workbench.config.schema import FIELDS, TrainConfig, load_toml, to_toml

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "app_pages" / "2_Parameters.py")


@pytest.fixture
def cfg(tmp_path):
    """12 images × 2 repeats in one bucket: 24 per epoch; 3 epochs."""
    for i in range(12):
        make_image(tmp_path / "train" / "2_sks" / f"{i}.png", (512, 512))
    cfg = TrainConfig(train_data_dir=str(tmp_path / "train"), output_dir=str(tmp_path / "out"),
                      max_train_epochs=3, train_batch_size=1, lr_scheduler="cosine", lr_warmup_steps=0.1,
                      save_every_n_epochs=1)
    workspace.save_current(cfg)
    return cfg


def run_page(**query) -> AppTest:
    """A new session (as a browser refresh), with the URL's query parameters."""
    at = AppTest.from_file(PAGE, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def text_of(elements) -> str:
    return " | ".join(e.value for e in elements)


def open_group(at, group: str) -> None:
    """Open a tab of fields, as a click on it does (only the open tab is drawn)."""
    if at.session_state["group"] != group:
        at.session_state["group"] = group
        at.run()


def widget(at, name):
    """Field `name`'s widget, its tab opened first."""
    open_group(at, FIELDS[name].metadata["group"])
    for kind in (at.text_input, at.number_input, at.checkbox, at.selectbox):
        found = [w for w in kind if w.key == f"param_{name}"]
        if found:
            return found[0]
    raise KeyError(name)


def test_every_config_field_has_a_widget_with_its_help(cfg):
    at = run_page()
    for name, f in FIELDS.items():
        if name == "lr_warmup_steps":
            open_group(at, f.metadata["group"])
            assert at.number_input(key="param_lr_warmup_pct").value == 10.0
            continue
        w = widget(at, name)
        assert w.help == f.metadata["help"], name
    assert widget(at, "optimizer_type").options == list(FIELDS["optimizer_type"].metadata["choices"])
    assert widget(at, "learning_rate").value == "0.0001"
    assert widget(at, "seed").value is None


def column_of(at, key: str) -> list[str]:
    """What the page column holding widget `key` shows, top to bottom: markdown text and widget keys."""
    for column in at.columns:
        shown = [getattr(e, "key", None) or getattr(e, "value", "") for e in column.children.values()]
        if key in shown:
            return shown
    raise KeyError(key)


def test_a_topic_draws_each_section_as_one_column_of_related_fields(cfg):
    at = run_page()
    open_group(at, "Network")
    assert column_of(at, "param_network_dim") == [
        "**Structure**", "param_network_module", "param_network_dim", "param_network_alpha", "param_network_args",
        "param_network_train_unet_only"]
    assert column_of(at, "param_network_weights") == [
        "**Continue from a LoRA**", "param_network_weights", "param_dim_from_weights"]
    assert widget(at, "network_dim").label == "Network rank (Dimension) `network_dim`"
    open_group(at, "Training")           # five sections: two rows of columns, each section whole
    assert column_of(at, "param_train_batch_size")[:4] == [
        "**Batches & length**", "param_train_batch_size", "param_max_train_epochs", "param_max_train_steps"]
    assert column_of(at, "param_gradient_checkpointing")[0] == "**Speed & memory**"
    # a checkbox label too long for one line keeps its key whole, on a line of its own
    assert widget(at, "cache_latents").label == "Cache latents `cache_latents`"
    assert widget(at, "cache_latents_to_disk").label == "Cache latents to disk  \n`cache_latents_to_disk`"


def test_train_batch_size_changes_total_steps_and_is_saved(cfg):
    at = run_page()
    assert metric(at, "Total steps") == "72"
    widget(at, "train_batch_size").set_value(4).run()
    assert metric(at, "Total steps") == "18"
    assert workspace.load_current().train_batch_size == 4
    refreshed = run_page(group="Training")       # a refresh: the URL names the open tab
    assert refreshed.number_input(key="param_train_batch_size").value == 4
    breakdown = text_of(at.markdown)
    assert "⌈24 / 4⌉ = 6 batches" in breakdown and "Total: 3 epochs × 6 = 18 steps" in breakdown


def test_invalid_value_shows_its_finding_beside_the_field(cfg):
    at = run_page()
    widget(at, "bucket_reso_steps").set_value(96).run()
    assert "not saved: bucket_reso_steps: 96 is not a multiple of 64" in text_of(at.error)
    assert workspace.load_current().bucket_reso_steps == 64          # a value that cannot run is never saved
    # a config loaded with it (a TOML from elsewhere): only the open tab is drawn, the line above
    # the tabs says where the finding is
    workspace.save_current(cfg.replace(bucket_reso_steps=96))
    assert "Buckets › Bucket sizes › Bucket resolution steps `bucket_reso_steps` (error)" in text_of(run_page().caption)
    widget(at, "network_alpha").set_value("16").run()
    assert "alpha 16 is above rank 8" in text_of(at.warning)


def test_loss_and_noise_options_are_edited_and_checked_beside_their_fields(cfg):
    at = run_page()
    assert widget(at, "loss_type").options == ["l2", "l1", "huber", "smooth_l1"]
    widget(at, "loss_type").set_value("huber").run()
    widget(at, "huber_scale").set_value("2.0").run()
    assert (workspace.load_current().loss_type, workspace.load_current().huber_scale) == ("huber", 2.0)
    assert "huber_scale: 2 is ignored by the snr schedule" in text_of(at.info)
    widget(at, "adaptive_noise_scale").set_value("0.01").run()
    assert "adaptive_noise_scale: needs noise_offset" in text_of(at.error)


def test_value_that_cannot_be_read_is_not_saved_and_says_why(cfg):
    at = run_page()
    widget(at, "learning_rate").set_value("fast").run()
    assert "not saved: learning_rate: 'fast' is not a number" in text_of(at.error)
    assert workspace.load_current().learning_rate == 1e-4
    assert widget(at, "learning_rate").value == "fast"            # what was typed stays visible
    widget(at, "learning_rate").set_value("3e-4").run()
    assert workspace.load_current().learning_rate == 3e-4 and "not saved" not in text_of(at.error)


def test_a_negative_learning_rate_is_never_saved(cfg):
    at = run_page()
    widget(at, "learning_rate").set_value("-1e-4").run()
    assert "not saved: learning_rate: -0.0001 is below the minimum 0.0" in text_of(at.error)
    assert workspace.load_current().learning_rate == 1e-4
    curves, _ = chart_data(at)
    assert curves.lr.min() >= 0                                       # the chart draws what is saved
    assert widget(at, "learning_rate").value == "-1e-4"               # what was typed stays visible


def test_list_and_optional_fields_round_trip(cfg):
    at = run_page()
    widget(at, "network_args").set_value("conv_dim=4 conv_alpha=1").run()
    widget(at, "unet_lr").set_value("5e-5").run()
    widget(at, "seed").set_value(42).run()
    saved = workspace.load_current()
    assert (saved.network_args, saved.unet_lr, saved.seed) == (["conv_dim=4", "conv_alpha=1"], 5e-5, 42)
    widget(at, "unet_lr").set_value("").run()
    assert workspace.load_current().unet_lr is None


def chart_data(at) -> list:
    """The data frames behind the page's one Altair chart, as the browser receives them."""
    from streamlit import dataframe_util
    [chart] = at.get("vega_lite_chart")
    return [dataframe_util.convert_arrow_bytes_to_pandas_df(d.data.data) for d in chart.proto.datasets]


def test_lr_chart_has_both_curves_and_marks_warmup_and_saves(cfg):
    at = run_page()
    curves, markers = chart_data(at)
    assert set(curves.curve) == {"UNet", "Text encoder"} and curves.step.max() == 72
    assert list(zip(markers.kind, markers.step)) == [("warmup", 7), ("save", 24), ("save", 48), ("save", 72)]
    assert metric(at, "Warmup steps") == "7"
    widget(at, "max_train_epochs").set_value(5).run()
    widget(at, "stop_text_encoder_training").set_value(50).run()
    curves, markers = chart_data(at)
    assert ("stop_te", 60) in set(zip(markers.kind, markers.step)) and curves.step.max() == 120


def test_coinciding_unet_and_text_encoder_curves_both_stay_visible(cfg):
    """Equal learning rates put the two curves on the same points: the UNet's is drawn first, wider
    and in another colour, the text encoder's thinner and dashed on top, so both show."""
    at = run_page()
    curves, _ = chart_data(at)
    unet, te = (curves[curves.curve == c].lr.tolist() for c in ("UNet", "Text encoder"))
    assert unet == te                                          # they coincide
    assert list(dict.fromkeys(curves.curve)) == ["UNet", "Text encoder"]     # the UNet's drawn first
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    line = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "line")["encoding"]
    widths = dict(zip(line["strokeWidth"]["scale"]["domain"], line["strokeWidth"]["scale"]["range"]))
    colours = dict(zip(line["color"]["scale"]["domain"], line["color"]["scale"]["range"]))
    assert widths["UNet"] > widths["Text encoder"] and colours["UNet"] != colours["Text encoder"]


def test_warmup_as_percent_or_steps(cfg):
    at = run_page(group="Learning rate & schedule")
    at.number_input(key="param_lr_warmup_pct").set_value(25.0).run()
    assert workspace.load_current().lr_warmup_steps == 0.25
    assert metric(at, "Warmup steps") == "18"
    at.radio(key="param_lr_warmup_mode").set_value("steps").run()
    assert workspace.load_current().lr_warmup_steps == 18               # int(0.25 × 72)
    at.number_input(key="param_lr_warmup_steps").set_value(30).run()
    assert workspace.load_current().lr_warmup_steps == 30
    assert metric(at, "Warmup steps") == "30"


def test_model_family_from_checkpoint_and_flag_fix(cfg, tmp_path):
    import numpy as np
    from safetensors.numpy import save_file
    model = tmp_path / "xl.safetensors"
    save_file({"conditioner.embedders.1.model.ln_final.weight": np.zeros(2, np.float32),
               "model.diffusion_model.out.0.weight": np.zeros(2, np.float32)}, str(model))
    workspace.save_current(cfg.replace(pretrained_model_name_or_path=str(model)))
    at = run_page()
    assert "Model:** SDXL" in text_of(at.markdown)
    assert "is an SDXL model but the config says SD 1.x" in text_of(at.warning)
    at.button(key="params_match_flags").click().run()
    assert workspace.load_current().sdxl is True
    assert "config says" not in text_of(at.warning)
    assert widget(at, "sdxl").value is True


def test_save_refuses_to_overwrite_then_load_replaces_the_config(cfg, tmp_path):
    target = tmp_path / "saved.toml"
    at = run_page()
    at.text_input(key="io_path").set_value(str(target))
    at.button(key="io_save").click().run()
    assert load_toml(target)[0] == workspace.load_current()
    widget(at, "network_dim").set_value(32).run()
    at.button(key="io_save").click().run()
    assert "saved.toml: already exists" in text_of(at.error)
    assert load_toml(target)[0].network_dim == 8
    at.button(key="io_load").click().run()
    assert workspace.load_current().network_dim == 8
    assert widget(at, "network_dim").value == 8                          # the widget follows the disk


def test_upload_and_download(cfg):
    at = run_page()
    uploaded = to_toml(cfg.replace(network_dim=64, output_name="uploaded")) + 'mystery_key = 1\n'
    at.file_uploader(key="io_upload").set_value(("mine.toml", uploaded.encode(), "application/toml")).run()
    assert workspace.load_current().network_dim == 64
    assert "unknown keys ignored: mystery_key" in text_of(at.warning)
    assert at.download_button(key="io_download").proto.label == "Download config.toml"


def test_upload_of_bad_toml_is_one_clear_error(cfg):
    at = run_page()
    at.file_uploader(key="io_upload").set_value(("bad.toml", b"network_dim = 'many'", "application/toml")).run()
    assert "network_dim: 'many' is not a whole number" in text_of(at.error)
    # named as the user knows it, not as the temporary copy the page read
    assert text_of(at.error).startswith("bad.toml: ")
    assert workspace.load_current().network_dim == 8


def test_kohya_json_import_with_its_report(cfg, tmp_path):
    gui = {"train_data_dir": cfg.train_data_dir, "max_resolution": "768,768", "optimizer": "AdamW", "epoch": 4,
           "max_train_steps": "", "lr_warmup": 10, "LoRA_type": "Standard", "network_dim": 16,
           "wandb_api_key": "do-not-copy-me", "xformers": "xformers"}
    at = run_page()
    at.file_uploader(key="io_kohya_upload").set_value(("gui.json", json.dumps(gui).encode(), "application/json"))
    at.run()
    saved = workspace.load_current()
    assert (saved.resolution, saved.max_train_epochs, saved.lr_warmup_steps) == ("768,768", 4, 0.1)
    assert saved.network_dim == 16
    assert "do-not-copy-me" not in workspace.current_config_path().read_text()
    report = next(d.value for d in at.dataframe if "detail" in d.value.columns)
    status = dict(zip(report.key, report.status))
    assert status["max_resolution"] == "mapped" and status["wandb_api_key"] == "dropped"
    assert status["xformers"] == "mapped" and saved.xformers and not saved.sdpa    # the GUI's CrossAttention menu
    assert widget(at, "network_dim").value == 16 and widget(at, "optimizer_type").value == "AdamW"
    # the config the import replaced was never saved to a file: it is kept, and comes back
    at.button(key="config_restore").click().run()
    assert workspace.load_current() == cfg
    assert widget(at, "network_dim").value == cfg.network_dim
    assert "config_restore" not in [b.key for b in at.button]


def test_export_shows_the_sd_scripts_command(cfg):
    at = run_page()
    command = next(c.value for c in at.code if "accelerate launch" in c.value)
    assert "train_network.py --config_file last.sd-scripts.toml" in command
    widget(at, "sdxl").check().run()
    assert any("sdxl_train_network.py" in c.value for c in at.code)
