"""weighted_captions in the text encoder: sd-scripts' way (strategy_base._get_weighted_input_ids,
strategy_sd/strategy_sdxl.encode_tokens_with_weights). Each weighted run of the caption is tokenized
on its own, the tokens joined and cut to max_token_length, each token carrying its run's weight;
after encoding, every token's output row is multiplied by its weight (BOS, EOS and padding by 1).
The prompt syntax itself is parsed in workbench/dataset/prompt_weights.py."""
from __future__ import annotations

import torch

from workbench.dataset.prompt_weights import weighted_runs


def weighted_ids(tokenizer, caption: str, max_tokens: int) -> tuple[list[int], list[float]]:
    """(ids, weights), both 2 + max_tokens long: BOS, the tokens, EOS, padding."""
    tokens: list[int] = []
    weights: list[float] = []
    for text, weight in weighted_runs(caption):
        ids = tokenizer(text).input_ids[1:-1]          # without its own BOS/EOS
        tokens += ids
        weights += [weight] * len(ids)
    tokens, weights = tokens[:max_tokens], weights[:max_tokens]
    pad = max_tokens - len(tokens)
    ids = [tokenizer.bos_token_id, *tokens, tokenizer.eos_token_id] + [tokenizer.pad_token_id] * pad
    return ids, [1.0, *weights] + [1.0] * (pad + 1)


def batch_ids(tokenizer, captions: list[str], max_tokens: int) -> torch.Tensor:
    return torch.tensor([weighted_ids(tokenizer, c, max_tokens)[0] for c in captions])


def batch_weights(tokenizer, captions: list[str], max_tokens: int) -> torch.Tensor:
    """(batch, 2 + max_tokens): the row of each position of the joined encoder output."""
    return torch.tensor([weighted_ids(tokenizer, c, max_tokens)[1] for c in captions])
