"""Block-wise ranks and learning rates of networks.lora, against sd-scripts' networks/lora.py:
the block of each module name, the ranks in the saved shapes, the LR of each block's group,
presets, checks and the kohya_ss GUI keys."""
from __future__ import annotations

import json
import math

import pytest
import torch

from tests.test_network import config, make_network
from workbench.config.kohya import import_file
from workbench.config.schema import ConfigError, TrainConfig
from workbench.config.validate import validate
from workbench.lora.blocks import block_count, block_index, lr_weights, parse_blocks


def test_block_index_of_sd_and_sdxl_names():
    assert block_index("lora_unet_down_blocks_0_attentions_1_proj_in", False) == 2          # 1 + 3·0 + 1
    assert block_index("lora_unet_down_blocks_2_downsamplers_0_conv", False) == 9           # 1 + 3·2 + 2
    assert block_index("lora_unet_mid_block_attentions_0_proj_out", False) == 12
    assert block_index("lora_unet_up_blocks_1_attentions_2_proj_in", False) == 18           # 13 + 3·1 + 2
    assert block_index("lora_unet_input_blocks_4_1_proj_in", True) == 5
    assert block_index("lora_unet_middle_block_1_proj_in", True) == 11
    assert block_index("lora_unet_output_blocks_0_1_proj_in", True) == 13
    assert (block_count(False), block_count(True)) == (25, 23)


def test_lr_weight_presets_and_lists_are_sd_scripts():
    weights = lr_weights({"down_lr_weight": "cosine+0.1", "mid_lr_weight": "2", "up_lr_weight": "0,0.5"}, False)
    down = [math.sin(math.pi * (i / 11) / 2) + 0.1 for i in reversed(range(12))]
    assert weights[:12] == pytest.approx(down) and weights[12] == 2.0
    assert weights[13:15] == [0.0, 0.5] and weights[15:] == [1.0] * 10          # short lists padded with 1
    cut = lr_weights({"up_lr_weight": "0.05,0.5", "block_lr_zero_threshold": "0.1"}, False)
    assert cut[13:15] == [0.0, 0.5] and cut[:13] == [1.0] * 13                   # threshold: given weights only
    sdxl = lr_weights({"mid_lr_weight": "0.5,0.5,0.5"}, True)
    assert len(sdxl) == 23 and sdxl[0] == sdxl[22] == 1.0 and sdxl[10:13] == [0.5] * 3
    with pytest.raises(ConfigError, match="cosine, sine, linear"):
        lr_weights({"down_lr_weight": "0.5"}, False)


def test_block_dims_need_one_value_per_block():
    with pytest.raises(ConfigError, match="has 3 values; this model family has 25 blocks"):
        parse_blocks({"block_dims": "4,4,4"}, False, 8, 1.0, None, 1.0)
    # the weights count from block 0 (IN00, which holds no LoRA), as block_dims do
    zero_lr = parse_blocks({"down_lr_weight": "1,0"}, False, 8, 4.0, 2, 1.0)
    assert zero_lr.dims[1] == 0 and zero_lr.conv_dims[1] == 0 and zero_lr.dims[2] == 8 and zero_lr.alphas[2] == 4.0
    findings = {f.field: f.message for f in validate(TrainConfig(max_train_epochs=1, network_args=["block_dims=4"]))}
    assert "has 1 values" in findings["network_args"]


def per_block(values: dict[int, int]) -> str:
    return ",".join(str(values.get(i, 4)) for i in range(25))


def ranks_by_block(network) -> dict[int, set]:
    by_block: dict[int, set] = {}
    for key, tensor in network.kohya_state_dict().items():
        if key.endswith(".lora_down.weight") and key.startswith("lora_unet_"):
            by_block.setdefault(block_index(key.split(".")[0], False), set()).add(tensor.shape[0])
    return by_block


def test_block_ranks_are_the_saved_shapes_and_zero_leaves_a_block_out():
    first, second, third = sorted(ranks_by_block(make_network(config(network_dim=4))[0]))[:3]   # the tiny UNet's
    dims = {first: 2, second: 6, third: 0}
    cfg = config(network_dim=4, network_alpha=4.0, network_args=[f"block_dims={per_block(dims)}",
                                                                  f"block_alphas={per_block({second: 3})}"])
    network, _, _ = make_network(cfg)
    by_block = ranks_by_block(network)
    assert by_block[first] == {2} and by_block[second] == {6}
    assert third not in by_block                                                # rank 0: no modules there
    assert all(ranks == {4} for block, ranks in by_block.items() if block not in (first, second))
    state = network.kohya_state_dict()
    alphas = {key.split(".")[0]: float(v) for key, v in state.items() if key.endswith(".alpha")}
    assert {alphas[k] for k in alphas if k.startswith("lora_unet_") and block_index(k, False) == second} == {3.0}
    assert any(k.startswith("lora_te") for k in alphas)                           # the text encoder keeps its rank


def test_block_lr_weights_make_one_group_per_block_at_weight_times_the_lr():
    cfg = config(network_args=["down_lr_weight=0.5,0.25", "up_lr_weight=zeros+0.1", "loraplus_unet_lr_ratio=4"])
    network, _, _ = make_network(cfg)
    groups = network.param_groups(1e-3, 1e-4, cfg.loraplus_ratios())
    lrs = {g["name"]: g["lr"] for g in groups}
    present = {network.block_lr[m.lora_name][0] for m in network.unet_modules}
    weights = lr_weights(cfg.network_args_dict(), False)
    for block in present:
        assert lrs[f"unet_block{block}"] == pytest.approx(1e-3 * weights[block])
        assert lrs[f"unet_block{block} plus"] == pytest.approx(4e-3 * weights[block])
    assert lrs["text_encoder"] == 1e-4 and "unet" not in lrs
    optimizer = torch.optim.AdamW(groups)
    assert len(optimizer.param_groups) == len(groups)


def test_the_guis_block_keys_become_network_args_for_standard_lora(tmp_path):
    dims = ",".join(["4"] * 25)
    path = tmp_path / "gui.json"
    path.write_text(json.dumps({"epoch": 1, "LoRA_type": "Standard", "block_dims": dims, "block_alphas": "",
                                "down_lr_weight": "1,1,0.5", "mid_lr_weight": "", "block_lr_zero_threshold": ""}))
    cfg = import_file(path).config
    assert cfg.network_args == ["down_lr_weight=1,1,0.5", f"block_dims={dims}"]
    lycoris = tmp_path / "lycoris.json"
    lycoris.write_text(json.dumps({"epoch": 1, "LoRA_type": "LyCORIS/LoHa", "block_dims": dims}))
    result = import_file(lycoris)
    assert not any(a.startswith("block_dims") for a in result.config.network_args)
    assert any(r.key == "block_dims" and r.status == "ignored" for r in result.report)


def test_the_lr_chart_draws_the_weighted_blocks():
    from workbench.views.schedule_chart import chart_frames
    cfg = TrainConfig(learning_rate=1e-4, lr_scheduler="constant", lr_warmup_steps=0,
                      network_args=["down_lr_weight=1,0.5,0.5,0.25"])
    curves, _ = chart_frames(cfg, total_steps=10, steps_per_epoch=5, epochs=2)
    names = set(curves["curve"])
    assert {"UNet ×0.5 (blocks 1, 2)", "UNet ×0.25 (blocks 3)"} <= names
    half = curves[curves.curve == "UNet ×0.5 (blocks 1, 2)"]
    assert list(half.lr) == pytest.approx([0.5e-4] * 10)
