"""Tiny real captioning models built offline for the tests and the benchmark.

The WD14-format tagger is an ONNX graph over the image's mean colour: each tag's score is
sigmoid(w_b·B + w_g·G + w_r·R + bias), with B, G, R the channel means of the input in 0–1 units
(the graph divides the 0–255 input by 255), so a test can compute every expected score from the
colours it painted. With `slow_layers` it also runs a chain of 3×3 convolutions whose result is
multiplied by zero: the scores are unchanged, but each image costs real time, so a Stop or Ctrl-C
lands mid-run. The captioner is a BLIP with random weights and a 20-word vocabulary.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

SLOW_WIDTH = 32            # channels of the slow convolutions


@dataclass(frozen=True)
class TinyTag:
    name: str
    category: int                  # 9 rating, 4 character, 0 general
    weights: tuple[float, float, float]   # per B, G, R mean in 0–1
    bias: float


# red/green/blue themes go from 0.0025 (channel 0) through 0.5 (half) to 0.9975 (full)
TAGS = (
    TinyTag("general", 9, (0, 0, 0), 2.0),
    TinyTag("sensitive", 9, (0, 0, 0), 0.0),
    TinyTag("questionable", 9, (0, 0, 0), -1.0),
    TinyTag("explicit", 9, (0, 0, 0), -3.0),
    TinyTag("blue_hero", 4, (12, 0, 0), -6.0),
    TinyTag("red_theme", 0, (0, 0, 12), -6.0),
    TinyTag("green_theme", 0, (0, 12, 0), -6.0),
    TinyTag("blue_theme", 0, (12, 0, 0), -6.0),
    TinyTag("^_^", 0, (0, 12, 0), -7.0),
)


def build_tagger(folder: Path, tags=TAGS, side: int = 32, fixed_batch: int | None = None,
                 slow_layers: int = 0, slow_width: int = SLOW_WIDTH) -> Path:
    """model.onnx + selected_tags.csv in `folder`: input (batch, side, side, 3) NHWC float32."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    folder.mkdir(parents=True, exist_ok=True)
    weights = np.array([t.weights for t in tags], dtype=np.float32).T / 255.0      # (3, T), input in 0–255
    bias = np.array([t.bias for t in tags], dtype=np.float32)
    init = [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")]
    nodes = [helper.make_node("ReduceMean", ["input_1"], ["mean"], axes=[1, 2], keepdims=0),
             helper.make_node("MatMul", ["mean", "w"], ["logits"]),
             helper.make_node("Add", ["logits", "b"], ["shifted"])]
    if slow_layers:
        nodes, init = _slow_branch(nodes, init, side, slow_layers, slow_width)
    nodes.append(helper.make_node("Sigmoid", ["shifted"], ["predictions_sigmoid"]))
    batch = fixed_batch or "batch"
    graph = helper.make_graph(nodes, "tiny_wd14",
                              [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, [batch, side, side, 3])],
                              [helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT,
                                                             [batch, len(tags)])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, folder / "model.onnx")
    with open(folder / "selected_tags.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["tag_id", "name", "category", "count"])
        for i, tag in enumerate(tags):
            writer.writerow([1000 + i, tag.name, tag.category, 100])
    return folder


def _slow_branch(nodes, init, side: int, layers: int, width: int):
    """shifted + 0 · sum(tanh(conv(… tanh(conv(image)) …))): `layers` 3×3 convolutions of `width`
    channels over the input (one shared kernel, so the file stays small and loads fast) — real
    work that leaves the scores as they are."""
    import numpy as np
    from onnx import helper, numpy_helper
    rng = np.random.default_rng(0)
    init = init + [numpy_helper.from_array((rng.standard_normal((width, 3, 3, 3)) * 1e-3).astype(np.float32), "k0"),
                   numpy_helper.from_array((rng.standard_normal((width, width, 3, 3)) / (9 * width))
                                           .astype(np.float32), "k"),
                   numpy_helper.from_array(np.zeros((1,), dtype=np.float32), "zero")]
    nodes = nodes[:-1] + [helper.make_node("Transpose", ["input_1"], ["nchw"], perm=[0, 3, 1, 2]),
                          helper.make_node("Conv", ["nchw", "k0"], ["h0_in"], pads=[1, 1, 1, 1]),
                          helper.make_node("Tanh", ["h0_in"], ["h0"])]
    for i in range(layers):
        nodes += [helper.make_node("Conv", [f"h{i}", "k"], [f"h{i + 1}_in"], pads=[1, 1, 1, 1]),
                  helper.make_node("Tanh", [f"h{i + 1}_in"], [f"h{i + 1}"])]
    nodes += [helper.make_node("ReduceSum", [f"h{layers}"], ["work_all"], keepdims=0),
              helper.make_node("Mul", ["work_all", "zero"], ["nothing"]),
              helper.make_node("Add", ["logits", "b"], ["scores_only"]),
              helper.make_node("Add", ["scores_only", "nothing"], ["shifted"])]
    return nodes, init


def expected_scores(bgr_mean_255, tags=TAGS) -> dict[str, float]:
    """Each tag's score for an input whose B, G, R means (0–255) are given."""
    b, g, r = (c / 255.0 for c in bgr_mean_255)
    return {t.name: 1 / (1 + math.exp(-(t.weights[0] * b + t.weights[1] * g + t.weights[2] * r + t.bias)))
            for t in tags}


VOCAB = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "photo", "of", "red", "green", "blue",
         "cat", "dog", "sky", "grass", "the", "with", "and", "on")


def build_blip(folder: Path, image_side: int = 32, seed: int = 0) -> Path:
    """A BLIP image captioner with random weights, hidden size 32, one layer each, saved with its
    processor (BlipImageProcessor + a BertTokenizer on VOCAB)."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), bos_token="[DEC]")
    small = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}
    config = BlipConfig(text_config=dict(vocab_size=len(VOCAB), encoder_hidden_size=32,
                                         bos_token_id=VOCAB.index("[DEC]"), pad_token_id=0, sep_token_id=3,
                                         eos_token_id=3, **small),
                        vision_config=dict(image_size=image_side, patch_size=8, **small), projection_dim=32)
    torch.manual_seed(seed)
    BlipForConditionalGeneration(config).eval().save_pretrained(folder)
    processor = BlipProcessor(BlipImageProcessor(size={"height": image_side, "width": image_side}), tokenizer)
    processor.save_pretrained(folder)
    return folder


def build_git(folder: Path, image_side: int = 32, seed: int = 0) -> Path:
    """A GIT image captioner with random weights, hidden size 32, one layer each, saved with its
    processor (CLIPImageProcessor + a BertTokenizer on VOCAB)."""
    import torch
    from transformers import BertTokenizer, CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    small = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}
    config = GitConfig(vision_config={"image_size": image_side, "patch_size": 8, **small}, vocab_size=len(VOCAB),
                       max_position_embeddings=64, bos_token_id=VOCAB.index("[CLS]"),
                       eos_token_id=VOCAB.index("[SEP]"), pad_token_id=0, **small)
    torch.manual_seed(seed)
    GitForCausalLM(config).eval().save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_side},
                                         crop_size={"height": image_side, "width": image_side})
    GitProcessor(image_processor, BertTokenizer(str(folder / "vocab.txt"))).save_pretrained(folder)
    return folder
