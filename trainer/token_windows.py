"""Captions longer than CLIP's 75 tokens, sd-scripts' way (max_token_length 150 or 225).

The caption is tokenized to 2 + n·75 ids (BOS, n·75 tokens, EOS/padding), cut into n windows of
77 (BOS + 75 tokens + the sequence's last id) that the text encoder reads as a batch of n, and the
n outputs are joined back into one sequence of 2 + n·75: the first BOS, each window's 75 tokens,
the last window's final token. With a tokenizer whose padding is not EOS (SD2, SDXL's second), a
window that ends inside the text gets an EOS at its end, and an empty window starts with one.
"""
from __future__ import annotations

import torch

CLIP_WINDOW = 75        # tokens a CLIP text encoder reads between its BOS and EOS


def windows(ids: torch.Tensor, tokenizer) -> torch.Tensor:
    """(batch, 2 + n·75) ids -> (batch·n, 77), each caption's windows next to each other."""
    count = (ids.shape[1] - 2) // CLIP_WINDOW
    bos, last = ids[:, :1], ids[:, -1:]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    out = []
    for k in range(count):
        window = torch.cat([bos, ids[:, 1 + k * CLIP_WINDOW:1 + (k + 1) * CLIP_WINDOW], last], dim=1)
        if pad != eos:
            window[(window[:, -2] != eos) & (window[:, -2] != pad), -1] = eos     # cut inside the text
            window[window[:, 1] == pad, 1] = eos                                 # nothing left for this window
        out.append(window)
    return torch.stack(out, dim=1).reshape(-1, CLIP_WINDOW + 2)


def joined(hidden: torch.Tensor, count: int) -> torch.Tensor:
    """(batch·n, 77, width) encoder outputs -> (batch, 2 + n·75, width)."""
    if count == 1:
        return hidden
    length = hidden.shape[1]
    flat = hidden.reshape(hidden.shape[0] // count, count * length, hidden.shape[2])
    parts = [flat[:, :1]] + [flat[:, 1 + k * length:1 + k * length + CLIP_WINDOW] for k in range(count)]
    return torch.cat(parts + [flat[:, -1:]], dim=1)


def first_window(pooled: torch.Tensor, count: int) -> torch.Tensor:
    """SDXL's pooled embedding: the first window's, as sd-scripts takes it."""
    return pooled[::count]
