"""Model family from real .safetensors headers and diffusers folder configs, without loading weights."""
from __future__ import annotations

import json

import pytest

from tests.conftest import write_checkpoint
from workbench.config.schema import TrainConfig
from workbench.models.modelinfo import ModelError, contradiction, model_info

UNET_KEY = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
SD1 = {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (8, 4), UNET_KEY: (320, 768)}
SD2 = {"cond_stage_model.model.token_embedding.weight": (8, 4), UNET_KEY: (320, 1024)}
SDXL = {"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": (8, 4),
        "conditioner.embedders.1.model.token_embedding.weight": (8, 4), UNET_KEY: (320, 2048)}


@pytest.mark.parametrize("tensors,family", [(SD1, "sd1"), (SD2, "sd2"), (SDXL, "sdxl"),
                                            ({UNET_KEY: (320, 1024)}, "sd2"), ({UNET_KEY: (320, 768)}, "sd1")])
def test_single_file_family_from_tensor_names_and_widths(tmp_path, tensors, family):
    info = model_info(write_checkpoint(tmp_path / "m.safetensors", tensors))
    assert (info.family, info.layout, info.v_prediction) == (family, "single_file", None)


def diffusers_folder(root, class_name="StableDiffusionPipeline", te_act="quick_gelu", cross=768, prediction="epsilon",
                     unet_extra=None):
    for sub, config in {"unet": {"cross_attention_dim": cross, **(unet_extra or {})},
                        "text_encoder": {"hidden_act": te_act},
                        "scheduler": {"prediction_type": prediction}}.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        name = "scheduler_config.json" if sub == "scheduler" else "config.json"
        (root / sub / name).write_text(json.dumps(config))
    (root / "model_index.json").write_text(json.dumps({"_class_name": class_name}))
    return root


def test_diffusers_folder_families_and_prediction(tmp_path):
    assert model_info(diffusers_folder(tmp_path / "a")).family == "sd1"
    sd2 = model_info(diffusers_folder(tmp_path / "b", te_act="gelu", cross=1024, prediction="v_prediction"))
    assert (sd2.family, sd2.v_prediction, sd2.layout) == ("sd2", True, "diffusers")
    assert model_info(diffusers_folder(tmp_path / "c", "StableDiffusionXLPipeline", cross=2048)).family == "sdxl"
    tiny_xl = diffusers_folder(tmp_path / "d", "DiffusionPipeline", cross=32, unet_extra={"addition_embed_type": "text_time"})
    assert model_info(tiny_xl).family == "sdxl"


def test_contradiction_says_which_flag_to_set(tmp_path):
    info = model_info(write_checkpoint(tmp_path / "xl.safetensors", SDXL))
    assert contradiction(info, TrainConfig(sdxl=True)) is None
    message = contradiction(info, TrainConfig())
    assert "is an SDXL model but the config says SD 1.x; set sdxl = true" in message


def test_what_cannot_be_told_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="model not found"):
        model_info(tmp_path / "none.safetensors")
    (tmp_path / "old.ckpt").write_bytes(b"\x80\x02 pickle")
    with pytest.raises(ModelError, match="only known once loaded"):
        model_info(tmp_path / "old.ckpt")
    with pytest.raises(ModelError, match="not a Stable Diffusion checkpoint"):
        model_info(write_checkpoint(tmp_path / "other.safetensors", {"encoder.layer.0.weight": (2, 2)}))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a diffusers model folder"):
        model_info(tmp_path / "empty")


def test_an_incomplete_diffusers_folder_names_what_is_missing(tmp_path):
    from tests.conftest import diffusers_stub
    from workbench.models.modelinfo import missing_components
    folder = diffusers_stub(tmp_path / "m")
    assert missing_components(folder, "sd1") == []
    (folder / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    (folder / "vae" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"")   # a variant counts
    assert missing_components(folder, "sd1") == []
    (folder / "vae" / "diffusion_pytorch_model.fp16.safetensors").unlink()
    assert missing_components(folder, "sd1") == ["vae/ weights"]
    assert missing_components(folder, "sdxl") == ["vae/ weights", "text_encoder_2/config.json",
                                                  "text_encoder_2/ weights", "tokenizer_2/"]
