"""The kohya-format LoRA network on real diffusers/transformers modules: names and counts on the
real SD1.5/SDXL configs (meta device), the module math, dropouts, max-norm, files, and
diffusers' own loader reading what we write."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from tests.kohya_naming import kohya_names
from workbench.config.schema import TrainConfig
from workbench.errors import UserError

TINY_SIZE = 8   # latent pixels of the tiny UNet


# ---------------------------------------------------------------- models (shared with test_lycoris)

def tiny_unet():
    from diffusers import UNet2DConditionModel
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), sample_size=TINY_SIZE)


def tiny_text_encoder(with_projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    config = CLIPTextConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                            vocab_size=1000, bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=32)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def unet_output(unet, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(2, 4, TINY_SIZE, TINY_SIZE, generator=g)
    context = torch.randn(2, 5, 32, generator=g)
    return unet(latents, torch.tensor([10, 500]), context).sample


def text_output(encoder) -> torch.Tensor:
    return encoder(torch.tensor([[0, 5, 17, 1], [0, 9, 1, 1]])).last_hidden_state


def saved_names(network) -> set[str]:
    return {key.split(".")[0] for key in network.kohya_state_dict()}


def config(**changes) -> TrainConfig:
    return TrainConfig(**{"network_dim": 4, "network_alpha": 2.0, **changes})


def make_network(cfg=None, text_encoders=None, unet=None):
    from trainer.network_registry import create_network
    unet = unet or tiny_unet()
    text_encoders = text_encoders or [tiny_text_encoder()]
    return create_network(cfg or config(), unet, text_encoders), unet, text_encoders


def randomise_up(network, seed: int = 3) -> None:
    """Give every module a non-zero ΔW, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.unet_modules + network.text_encoder_modules:
            module.lora_up.weight.copy_(torch.randn(module.lora_up.weight.shape, generator=g) * 0.1)


def save_lora(path, tensors: dict) -> str:
    from safetensors.torch import save_file
    save_file(tensors, str(path))
    return str(path)


# ---------------------------------------------------------------- real configs on the meta device

def sd15_models():
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    with init_empty_weights():
        unet = UNet2DConditionModel(
            block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
            layers_per_block=2, sample_size=64,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
        encoder = CLIPTextModel(CLIPTextConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                               intermediate_size=3072, hidden_act="quick_gelu"))
    return unet, [encoder]


def sdxl_models():
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    with init_empty_weights():
        unet = UNet2DConditionModel(
            sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048, addition_embed_type="text_time",
            addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
            attention_head_dim=(5, 10, 20), use_linear_projection=True)
        clip_l = CLIPTextModel(CLIPTextConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                              intermediate_size=3072, hidden_act="quick_gelu"))
        clip_big_g = CLIPTextModelWithProjection(CLIPTextConfig(
            hidden_size=1280, num_hidden_layers=32, num_attention_heads=20, intermediate_size=5120,
            projection_dim=1280, hidden_act="gelu"))
    return unet, [clip_l, clip_big_g]


def test_sd15_counts_and_names_match_kohya():
    unet, encoders = sd15_models()
    network, _, _ = make_network(TrainConfig(network_dim=1), encoders, unet)
    assert (len(network.unet_modules), len(network.text_encoder_modules)) == (192, 72)
    assert saved_names(network) == kohya_names(unet, encoders)
    # names A1111 and ComfyUI look up, spelled out
    assert {"lora_te_text_model_encoder_layers_0_self_attn_q_proj", "lora_te_text_model_encoder_layers_11_mlp_fc2",
            "lora_unet_down_blocks_0_attentions_0_proj_in",
            "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn2_to_out_0",
            "lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_0_proj"} <= saved_names(network)

    locon, _, _ = make_network(TrainConfig(network_dim=1, network_args=["conv_dim=1"]), encoders, unet)
    assert len(locon.unet_modules) == 278
    assert saved_names(locon) == kohya_names(unet, encoders, conv=True)
    assert {"lora_unet_down_blocks_0_resnets_0_conv1", "lora_unet_down_blocks_0_downsamplers_0_conv",
            "lora_unet_up_blocks_0_upsamplers_0_conv"} <= saved_names(locon)


def test_sdxl_counts_and_names_match_kohya():
    unet, encoders = sdxl_models()
    network, _, _ = make_network(TrainConfig(network_dim=1, sdxl=True), encoders, unet)
    names = saved_names(network)
    assert len(network.unet_modules) == 722
    assert sum(n.startswith("lora_te1_") for n in names) == 72
    assert sum(n.startswith("lora_te2_") for n in names) == 192
    assert names == kohya_names(unet, encoders)
    assert {"lora_te1_text_model_encoder_layers_0_self_attn_k_proj",
            "lora_te2_text_model_encoder_layers_31_mlp_fc1"} <= names


def test_sdxl_unet_names_are_sd_scripts_original_block_names():
    unet, encoders = sdxl_models()
    locon, _, _ = make_network(TrainConfig(network_dim=1, sdxl=True, network_args=["conv_dim=1"]), encoders, unet)
    names = saved_names(locon)
    assert names == kohya_names(unet, encoders, conv=True)
    # as they read in LoRAs that sdxl_train_network.py wrote (LoRA and LoCon)
    assert {"lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q", "lora_unet_middle_block_1_proj_in",
            "lora_unet_output_blocks_2_1_transformer_blocks_9_ff_net_2", "lora_unet_input_blocks_3_0_op",
            "lora_unet_output_blocks_2_2_conv", "lora_unet_middle_block_2_emb_layers_1",
            "lora_unet_output_blocks_8_0_skip_connection", "lora_unet_input_blocks_1_0_in_layers_2"} <= names
    assert not any("down_blocks" in n or "up_blocks" in n or "mid_block" in n for n in names)


def test_an_sdxl_file_with_diffusers_path_names_still_continues(tmp_path):
    # what the workbench wrote for SDXL before it used sd-scripts' names
    unet, encoders = sdxl_models()
    name = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"
    old = save_lora(tmp_path / "old.safetensors", {f"{name}.lora_down.weight": torch.full((1, 640), 0.5),
                                                   f"{name}.lora_up.weight": torch.zeros(640, 1),
                                                   f"{name}.alpha": torch.tensor(1.0)})
    network, _, _ = make_network(TrainConfig(network_dim=1, network_alpha=1.0, sdxl=True, network_weights=old),
                                 encoders, unet)
    loaded = network.kohya_state_dict()["lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight"]
    assert torch.equal(loaded, torch.full((1, 640), 0.5))


# ---------------------------------------------------------------- training behaviour

@pytest.mark.slow
def test_apply_keeps_output_then_a_step_changes_only_lora_weights():
    network, unet, (encoder,) = make_network()
    before_unet, before_text = unet_output(unet), text_output(encoder)
    base_weights = {k: v.clone() for k, v in {**unet.state_dict(), **encoder.state_dict()}.items()}
    network.apply_to()
    assert torch.equal(unet_output(unet), before_unet)      # up = 0: nothing changes yet
    assert torch.equal(text_output(encoder), before_text)
    lora_before = {k: v.clone() for k, v in network.state_dict().items()}

    optimizer = torch.optim.AdamW(network.param_groups(1e-3, 1e-3))
    (unet_output(unet).pow(2).mean() + text_output(encoder).pow(2).mean()).backward()
    optimizer.step()

    assert not torch.allclose(unet_output(unet), before_unet)
    assert not torch.allclose(text_output(encoder), before_text)
    after = {**unet.state_dict(), **encoder.state_dict()}
    assert all(torch.equal(after[k], v) for k, v in base_weights.items())
    assert all(not p.requires_grad for p in unet.parameters())
    changed = [k for k, v in network.state_dict().items() if not torch.equal(v, lora_before[k])]
    assert changed and all(k.endswith("lora_up.weight") or k.endswith("lora_down.weight") for k in changed)


def test_gradients_reach_the_lora_under_gradient_checkpointing():
    # The base is frozen and the latents need no grad: a reentrant checkpoint would give no gradient.
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        network, unet, _ = make_network()
        if checkpointing:
            unet.enable_gradient_checkpointing()
        unet.train()
        network.apply_to()
        network.param_groups(1e-3, 1e-3)
        unet_output(unet).pow(2).mean().backward()
        grads.append(torch.cat([m.lora_up.weight.grad.flatten() for m in network.unet_modules]))
    assert grads[1].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_module_init_and_delta_is_up_down_alpha_over_rank():
    network, unet, _ = make_network(config(network_dim=4, network_alpha=2.0))
    module = next(m for m in network.unet_modules if m.lora_name.endswith("attn1_to_q"))
    fan_in = module.lora_down.weight.shape[1]
    # kaiming_uniform_(a=√5) draws from ±1/√fan_in
    assert module.lora_down.weight.abs().max() <= 1 / fan_in ** 0.5
    assert module.lora_down.weight.abs().max() > 0.5 / fan_in ** 0.5
    assert not module.lora_up.weight.any()
    assert float(network.state_dict()[f"{module.lora_name}.alpha"]) == 2.0
    randomise_up(network)
    network.apply_to()
    x = torch.randn(3, 32)
    expected = x @ (module.lora_up.weight @ module.lora_down.weight).T * (2.0 / 4)
    org = module.org[0]
    assert torch.allclose(org(x) - torch.nn.functional.linear(x, org.weight, org.bias), expected, atol=1e-6)
    assert module.delta_norm().item() == pytest.approx((expected_delta(module)).norm().item(), rel=1e-5)


def test_alpha_zero_means_alpha_equals_rank():
    network, _, _ = make_network(config(network_dim=4, network_alpha=0.0))
    module = network.unet_modules[0]
    assert module.scale == 1.0
    assert float(network.kohya_state_dict()[f"{module.lora_name}.alpha"]) == 4.0


def expected_delta(module) -> torch.Tensor:
    """ΔW = up · down · alpha / rank, formed in full: (out, in) or (out, in, kh, kw)."""
    product = module.lora_up.weight.flatten(1) @ module.lora_down.weight.flatten(1)
    return product.reshape(module.org[0].weight.shape) * module.alpha_value / module.rank


def identity_module(**network_args):
    """A LoRA on a zero Linear(4, 4) whose down and up are identities and scale 1: the output is
    the input times whatever the dropouts leave, so the masks can be read off it exactly."""
    from trainer.network import LoRAModule, parse_lora_args
    org = torch.nn.Linear(4, 4)
    cfg = config(network_dim=4, network_alpha=4.0, **network_args)
    module = LoRAModule("lora_unet_x", org, 4, 4.0, parse_lora_args(cfg))
    with torch.no_grad():
        org.weight.zero_()
        org.bias.zero_()
        module.lora_down.weight.copy_(torch.eye(4))
        module.lora_up.weight.copy_(torch.eye(4))
    module.apply_to()
    return module, org


def delta(org, x: torch.Tensor) -> torch.Tensor:
    return org(x)   # the base layer is zero: all of the output is the LoRA's


def test_rank_dropout_masks_per_sample_and_rank_and_rescales():
    module, org = identity_module(network_args=["rank_dropout=0.5"])
    x = torch.ones(16, 3, 4)   # 16 samples, 3 tokens, 4 features = ranks
    torch.manual_seed(0)
    d = delta(org, x)
    values = set(d.flatten().tolist())
    assert values == {0.0, 2.0}               # dropped, or kept and scaled by 1/(1-0.5)
    assert torch.equal(d, d[:, :1, :].expand_as(d))   # the same mask for every token of a sample
    module.eval()
    assert torch.equal(delta(org, x), x)      # eval: no dropout, no rescaling


def test_network_dropout_acts_on_each_rank_activation_in_training_only():
    module, org = identity_module(network_dropout=0.5)
    x = torch.ones(16, 3, 4)
    torch.manual_seed(0)
    d = delta(org, x)
    assert set(d.flatten().tolist()) == {0.0, 2.0}
    assert not torch.equal(d, d[:, :1, :].expand_as(d))   # element-wise, not per sample
    module.eval()
    assert torch.equal(delta(org, x), x)


def test_module_dropout_skips_the_whole_delta_in_training_only():
    module, org = identity_module(network_args=["module_dropout=1.0"])
    x = torch.ones(2, 4)
    assert not delta(org, x).any()            # p = 1: always skipped while training
    module.eval()
    assert torch.equal(delta(org, x), x)


def test_dropout_values_are_checked():
    from trainer.network import parse_lora_args
    with pytest.raises(UserError, match="rank_dropout"):
        parse_lora_args(config(network_args=["rank_dropout=1.0"]))
    with pytest.raises(UserError, match="module_dropout"):
        parse_lora_args(config(network_args=["module_dropout=1.5"]))
    with pytest.raises(UserError, match="conv_dim"):
        parse_lora_args(config(network_args=["conv_dim=four"]))
    with pytest.raises(UserError, match='"algo" is not an argument of networks.lora'):
        parse_lora_args(config(network_args=["algo=loha"]))


def test_max_norm_scales_a_large_module_to_exactly_the_max():
    network, _, _ = make_network(config(network_args=["conv_dim=2"]))
    big = next(m for m in network.unet_modules if m.lora_name.endswith("resnets_0_conv1"))
    small = network.unet_modules[0]
    with torch.no_grad():
        for module in network.unet_modules + network.text_encoder_modules:
            module.lora_up.weight.zero_()
        big.lora_up.weight.fill_(1.0)
        small.lora_up.weight.fill_(1e-4)
    big_norm, small_norm = expected_delta(big).norm().item(), expected_delta(small).norm().item()
    max_norm = (big_norm + small_norm) / 2
    small_before = small.lora_down.weight.clone()

    scaled, mean_norm, top = network.apply_max_norm(max_norm, "cpu")

    assert scaled == 1
    assert expected_delta(big).norm().item() == pytest.approx(max_norm, rel=1e-5)
    assert torch.equal(small.lora_down.weight, small_before)
    assert top == pytest.approx(max_norm, rel=1e-5)
    assert mean_norm == pytest.approx((max_norm + small_norm) / (len(network.unet_modules)
                                                                 + len(network.text_encoder_modules)), rel=1e-4)
    assert network.apply_max_norm(max_norm, "cpu")[0] == 0   # already at the max: not scaled again


# ---------------------------------------------------------------- parameter groups

def test_param_groups_split_unet_and_text_encoder():
    network, _, _ = make_network()
    groups = network.param_groups(1e-4, 5e-5)
    assert [(g["name"], g["lr"]) for g in groups] == [("unet", 1e-4), ("text_encoder", 5e-5)]
    unet_ids = {id(p) for m in network.unet_modules for p in m.parameters()}
    assert {id(p) for p in groups[0]["params"]} == unet_ids
    assert len(groups[1]["params"]) == 2 * len(network.text_encoder_modules)


def test_loraplus_puts_each_parts_lora_up_weights_in_a_group_at_ratio_times_its_lr():
    cfg = config(network_args=["loraplus_lr_ratio=16", "loraplus_text_encoder_lr_ratio=4"])
    network, _, _ = make_network(cfg)
    groups = network.param_groups(1e-4, 5e-5, cfg.loraplus_ratios())
    assert [(g["name"], g["lr"]) for g in groups] == [
        ("unet", 1e-4), ("unet plus", pytest.approx(16 * 1e-4)),
        ("text_encoder", 5e-5), ("text_encoder plus", pytest.approx(4 * 5e-5))]
    by_name = {g["name"]: {id(p) for p in g["params"]} for g in groups}
    assert by_name["unet plus"] == {id(m.lora_up.weight) for m in network.unet_modules}
    assert by_name["unet"] == {id(m.lora_down.weight) for m in network.unet_modules}
    assert by_name["text_encoder plus"] == {id(m.lora_up.weight) for m in network.text_encoder_modules}
    optimizer = torch.optim.AdamW(groups)            # the optimizer steps the groups at their own LRs
    assert [g["lr"] for g in optimizer.param_groups] == [g["lr"] for g in groups]


def test_text_encoder_lr_zero_or_unet_only_trains_the_unet_alone():
    network, _, _ = make_network()
    groups = network.param_groups(1e-4, 0.0)
    assert [g["name"] for g in groups] == ["unet"]
    assert not any(p.requires_grad for m in network.text_encoder_modules for p in m.parameters())

    unet_only, _, _ = make_network(config(network_train_unet_only=True))
    assert unet_only.text_encoder_modules == []
    assert [g["name"] for g in unet_only.param_groups(1e-4, 1e-4)] == ["unet"]
    assert not any(name.startswith("lora_te") for name in saved_names(unet_only))
    with pytest.raises(UserError, match="nothing would train"):
        unet_only.param_groups(0.0, 1e-4)


@pytest.mark.slow
def test_stopping_text_encoder_training_freezes_it_while_the_unet_goes_on():
    network, unet, (encoder,) = make_network()
    network.apply_to()
    optimizer = torch.optim.AdamW(network.param_groups(1e-3, 1e-3))

    def step():
        optimizer.zero_grad(set_to_none=True)
        (unet_output(unet).pow(2).mean() + text_output(encoder).pow(2).mean()).backward()
        optimizer.step()

    step()
    network.set_text_encoder_trainable(False)
    te_before = {k: v.clone() for k, v in network.state_dict().items() if k.startswith("lora_te")}
    unet_before = {k: v.clone() for k, v in network.state_dict().items() if k.startswith("lora_unet")}
    step()
    now = network.state_dict()
    assert all(torch.equal(now[k], v) for k, v in te_before.items())
    assert any(not torch.equal(now[k], v) for k, v in unet_before.items())


# ---------------------------------------------------------------- files

def test_save_then_continue_from_the_file(tmp_path):
    network, _, _ = make_network(config(network_args=["conv_dim=2", "conv_alpha=1"]))
    randomise_up(network)
    tensors = network.kohya_state_dict(torch.float16)
    assert all(t.dtype == torch.float16 and t.device.type == "cpu" and t.is_contiguous() for t in tensors.values())
    assert tensors["lora_unet_down_blocks_0_resnets_0_conv1.alpha"].dim() == 0
    path = save_lora(tmp_path / "run.safetensors", tensors)

    continued, _, _ = make_network(config(network_args=["conv_dim=2", "conv_alpha=1"], network_weights=path))
    reloaded = continued.kohya_state_dict(torch.float16)
    assert reloaded.keys() == tensors.keys()
    assert all(torch.equal(reloaded[k], tensors[k]) for k in tensors)


def test_files_without_the_text_model_part_still_load(tmp_path):
    network, _, _ = make_network()
    randomise_up(network)
    old_style = {k.replace("lora_te_text_model_", "lora_te_"): v for k, v in network.kohya_state_dict().items()}
    assert "lora_te_encoder_layers_0_mlp_fc1.lora_up.weight" in old_style
    path = save_lora(tmp_path / "old.safetensors", old_style)
    continued, _, _ = make_network()
    continued.load_kohya_weights(path)
    assert torch.equal(continued.state_dict()["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"],
                       network.state_dict()["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"])


def test_unet_only_run_keeps_the_text_encoder_part_of_a_continued_lora(tmp_path):
    network, _, _ = make_network()
    randomise_up(network)
    path = save_lora(tmp_path / "full.safetensors", network.kohya_state_dict())
    continued, _, _ = make_network(config(network_train_unet_only=True, network_weights=path))
    assert saved_names(continued) == saved_names(network)          # nothing of the file is lost
    assert [g["name"] for g in continued.param_groups(1e-4, 1e-4)] == ["unet"]


def test_dim_from_weights_takes_rank_and_alpha_from_the_file(tmp_path):
    source, _, _ = make_network(TrainConfig(network_dim=2, network_alpha=1.0, network_args=["conv_dim=3"]))
    randomise_up(source)
    path = save_lora(tmp_path / "r2.safetensors", source.kohya_state_dict())

    network, _, _ = make_network(config(network_dim=16, network_alpha=16.0, dim_from_weights=True,
                                        network_weights=path))
    assert (network.rank, network.alpha) == (2, 1.0)
    assert saved_names(network) == saved_names(source)   # the file's modules, conv ones included
    conv = next(m for m in network.unet_modules if m.lora_name.endswith("resnets_0_conv1"))
    assert conv.rank == 3 and conv.scale == pytest.approx(1 / 3)
    assert all(torch.equal(network.state_dict()[k], v) for k, v in source.state_dict().items())


def test_a_file_that_does_not_fit_is_refused_by_name(tmp_path):
    source, _, _ = make_network(TrainConfig(network_dim=2, network_alpha=1.0))
    path = save_lora(tmp_path / "r2.safetensors", source.kohya_state_dict())
    with pytest.raises(UserError, match=r"r2.safetensors: lora_.*has shape \[2, .*dim_from_weights"):
        make_network(config(network_dim=4, network_alpha=1.0, network_weights=path))
    with pytest.raises(UserError, match="alpha"):
        make_network(TrainConfig(network_dim=2, network_alpha=2.0, network_weights=path))
    foreign = save_lora(tmp_path / "foreign.safetensors",
                        {"lora_unet_input_blocks_1_1_proj_in.alpha": torch.tensor(1.0)})
    with pytest.raises(UserError, match="no module in this network.*lora_unet_input_blocks_1_1_proj_in"):
        make_network(config(network_weights=foreign))
    with pytest.raises(UserError, match="missing.safetensors: file not found"):
        make_network(config(network_weights=str(tmp_path / "missing.safetensors")))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(UserError, match="not a readable LoRA file"):
        make_network(config(network_weights=str(broken)))
    with pytest.raises(UserError, match="dim_from_weights: set network_weights"):
        make_network(config(dim_from_weights=True))


# ---------------------------------------------------------------- diffusers reads our file

def tiny_tokenizer(folder):
    """A CLIP BPE tokenizer written offline: letters, letters at a word end, no merges."""
    from transformers import CLIPTokenizer
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in [*letters, *(c + "</w>" for c in letters)]:
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)


def tiny_pipeline(unet, encoder, folder):
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline
    vae = AutoencoderKL(block_out_channels=(8,), down_block_types=("DownEncoderBlock2D",),
                        up_block_types=("UpDecoderBlock2D",), latent_channels=4, norm_num_groups=8)
    return StableDiffusionPipeline(vae=vae, text_encoder=encoder, tokenizer=tiny_tokenizer(folder), unet=unet,
                                   scheduler=DDPMScheduler(steps_offset=1, clip_sample=False),
                                   safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def peft_layer_count(model) -> int:
    return sum(1 for name, _ in model.named_modules() if name.endswith(".lora_A"))


def test_diffusers_loads_our_file_and_computes_what_we_compute(tmp_path):
    torch.manual_seed(0)
    unet, encoder = tiny_unet(), tiny_text_encoder()
    pipe = tiny_pipeline(copy.deepcopy(unet), copy.deepcopy(encoder), tmp_path)
    network, _, _ = make_network(config(network_args=["conv_dim=2", "conv_alpha=1"]), [encoder], unet)
    randomise_up(network)
    save_lora(tmp_path / "ours.safetensors", network.kohya_state_dict())
    before_unet, before_text = unet_output(pipe.unet), text_output(pipe.text_encoder)

    pipe.load_lora_weights(str(tmp_path), weight_name="ours.safetensors")
    network.apply_to()

    # every module found its layer (the text_model_ names included), none was left over
    assert peft_layer_count(pipe.unet) == len(network.unet_modules)
    assert peft_layer_count(pipe.text_encoder) == len(network.text_encoder_modules)
    # and diffusers computes the same model: same ranks, alphas and weights
    loaded_unet, loaded_text = unet_output(pipe.unet), text_output(pipe.text_encoder)
    assert not torch.allclose(loaded_unet, before_unet) and not torch.allclose(loaded_text, before_text)
    assert torch.allclose(loaded_unet, unet_output(unet), atol=1e-5)
    assert torch.allclose(loaded_text, text_output(encoder), atol=1e-5)
