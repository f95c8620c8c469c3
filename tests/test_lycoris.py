"""LyCORIS (lycoris-lora) behind the trainer's Network interface, on the real tiny models."""
from __future__ import annotations

import pytest
import torch

from tests.kohya_naming import kohya_names
from tests.test_network import make_network, save_lora, saved_names, text_output, tiny_text_encoder, unet_output
from workbench.config.schema import TrainConfig
from workbench.errors import UserError

# The tensors each algorithm writes per module, in the names A1111 / ComfyUI read.
ALGO_TENSORS = {
    "locon": {"alpha", "lora_down.weight", "lora_up.weight"},
    "loha": {"alpha", "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"},
    "lokr": {"alpha", "lokr_w1", "lokr_w2"},
}


def lycoris_config(*network_args: str, **changes) -> TrainConfig:
    return TrainConfig(**{"network_module": "lycoris.kohya", "network_dim": 4, "network_alpha": 2.0,
                          "network_args": list(network_args), **changes})


def tensor_kinds(network) -> set[str]:
    return {key.split(".", 1)[1] for key in network.kohya_state_dict()}


def lycoris_class_state() -> dict:
    from lycoris.kohya import LycorisNetworkKohya

    from trainer.lycoris_network import PRESET_ATTRIBUTES
    return {name: getattr(LycorisNetworkKohya, name) for name in PRESET_ATTRIBUTES}


def test_default_preset_puts_modules_where_kohya_does():
    network, unet, encoders = make_network(lycoris_config("algo=locon"))
    assert saved_names(network) == kohya_names(unet, encoders)
    assert "lora_te_text_model_encoder_layers_1_self_attn_out_proj" in saved_names(network)
    assert not any("time_embedding" in name for name in saved_names(network))

    with_conv, unet, encoders = make_network(lycoris_config("algo=locon", "conv_dim=2", "conv_alpha=1"))
    assert saved_names(with_conv) == kohya_names(unet, encoders, conv=True)
    conv = with_conv.state_dict()["lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight"]
    assert conv.shape[0] == 2 and conv.shape[2:] == (3, 3)


def test_lycoris_full_preset_is_refused_with_a_clear_message():
    # lycoris-lora 4.1.3: "full" targets the TimestepEmbedding block and time_embedding.linear_1 by
    # name, and stops with "duplicated lora name" on a diffusers UNet.
    with pytest.raises(UserError, match="preset=full: LyCORIS refused it.*duplicated lora name"):
        make_network(lycoris_config("preset=full"))


def test_builtin_preset_can_be_chosen_and_lycoris_state_is_restored():
    before = lycoris_class_state()
    network, _, _ = make_network(lycoris_config("preset=attn-mlp"))
    # attn-mlp also takes the TimestepEmbedding block, which kohya's targets leave out
    assert "lora_unet_time_embedding_linear_1" in saved_names(network)
    assert lycoris_class_state() == before
    # ia3's preset (which also sets lycoris' name_algo_map) names modules by bare names such as
    # "to_k", which never match a diffusers UNet's full module paths
    with pytest.raises(UserError, match="algo=ia3 with this preset puts no module on the UNet"):
        make_network(lycoris_config("preset=ia3", "algo=ia3"))
    assert lycoris_class_state() == before
    make_network(lycoris_config("algo=locon"))
    assert lycoris_class_state() == before


def test_sdxl_text_encoder_names_have_the_text_model_part():
    encoders = [tiny_text_encoder(), tiny_text_encoder(with_projection=True)]
    network, unet, _ = make_network(lycoris_config("algo=loha", sdxl=True), encoders)
    names = saved_names(network)
    assert names == kohya_names(unet, encoders)
    assert {"lora_te1_text_model_encoder_layers_0_mlp_fc1", "lora_te2_text_model_encoder_layers_1_mlp_fc2"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["locon", "loha", "lokr"])
def test_algorithm_trains_saves_and_reloads(algo, tmp_path):
    cfg = lycoris_config(f"algo={algo}", "conv_dim=2", "factor=4")
    network, unet, (encoder,) = make_network(cfg)
    assert network.algo == algo
    before_unet, before_text = unet_output(unet), text_output(encoder)
    network.apply_to()
    assert torch.equal(unet_output(unet), before_unet)
    optimizer = torch.optim.AdamW(network.param_groups(1e-2, 1e-2))
    (unet_output(unet).pow(2).mean() + text_output(encoder).pow(2).mean()).backward()
    optimizer.step()
    assert not torch.allclose(unet_output(unet), before_unet)
    assert not torch.allclose(text_output(encoder), before_text)
    assert network.apply_max_norm(1e-3, "cpu")[0] > 0

    tensors = network.kohya_state_dict(torch.float16)
    assert ALGO_TENSORS[algo] <= tensor_kinds(network)
    assert all(not key.startswith("lora_te_encoder") for key in tensors)
    path = save_lora(tmp_path / f"{algo}.safetensors", tensors)
    continued, _, _ = make_network(lycoris_config(f"algo={algo}", "conv_dim=2", "factor=4", network_weights=path))
    reloaded = continued.kohya_state_dict(torch.float16)
    assert reloaded.keys() == tensors.keys()
    assert all(torch.equal(reloaded[key], tensors[key]) for key in tensors)


def test_lycoris_files_without_the_text_model_part_load(tmp_path):
    network, _, _ = make_network(lycoris_config("algo=locon"))
    with torch.no_grad():
        for module in network.text_encoder_modules:
            module.lora_up.weight.fill_(0.5)
    # what lycoris' own save_weights writes for a transformers-5 CLIPTextModel
    old_style = {key.replace("lora_te_text_model_", "lora_te_"): value
                 for key, value in network.kohya_state_dict().items()}
    path = save_lora(tmp_path / "lycoris-own.safetensors", old_style)
    continued, _, _ = make_network(lycoris_config("algo=locon", network_weights=path))
    key = "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight"
    assert torch.equal(continued.state_dict()[key], network.state_dict()[key])


def test_lycoris_dim_from_weights(tmp_path):
    source, _, _ = make_network(lycoris_config("algo=loha", network_dim=2, network_alpha=1.0))
    path = save_lora(tmp_path / "loha.safetensors", source.kohya_state_dict())
    network, _, _ = make_network(lycoris_config("algo=loha", network_dim=16, dim_from_weights=True,
                                                network_weights=path))
    assert (network.rank, network.alpha) == (2, 1.0)
    assert all(torch.equal(network.state_dict()[k], v) for k, v in source.kohya_state_dict().items())


def test_unet_only_and_param_groups():
    network, _, _ = make_network(lycoris_config("algo=lokr", network_train_unet_only=True))
    assert network.text_encoder_modules == []
    assert [g["name"] for g in network.param_groups(1e-4, 1e-4)] == ["unet"]
    both, _, _ = make_network(lycoris_config("algo=lokr"))
    assert [(g["name"], g["lr"]) for g in both.param_groups(1e-4, 2e-5)] == [("unet", 1e-4), ("text_encoder", 2e-5)]


def test_bad_lycoris_arguments_are_named():
    with pytest.raises(UserError, match='algo="lorra" is not a LyCORIS algorithm'):
        make_network(lycoris_config("algo=lorra"))
    with pytest.raises(UserError, match='preset="attn-mpl" is neither a LyCORIS preset'):
        make_network(lycoris_config("preset=attn-mpl"))


def test_sdxl_unet_modules_get_sd_scripts_original_block_names():
    from diffusers import UNet2DConditionModel
    unet = UNet2DConditionModel(       # SDXL's layout in miniature (as the demo's)
        sample_size=16, block_out_channels=(32, 64, 64), layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1, 2), attention_head_dim=(2, 4, 8), use_linear_projection=True,
        cross_attention_dim=64, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32, norm_num_groups=32)
    encoders = [tiny_text_encoder(), tiny_text_encoder(with_projection=True)]
    network, _, _ = make_network(lycoris_config("algo=locon", "conv_dim=2", "conv_alpha=1", sdxl=True), encoders, unet)
    names = saved_names(network)
    assert names == kohya_names(unet, encoders, conv=True)
    assert {"lora_unet_input_blocks_4_1_proj_in", "lora_unet_output_blocks_2_2_conv"} <= names
