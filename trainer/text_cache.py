"""cache_text_encoder_outputs: every caption the run trains on is put through the frozen text
encoder(s) once at setup, and each step reads its rows instead of running the encoders again.

Keyed by the caption text, so what a step trains on is exactly what encoding it would give: a
caption the setup pass did not foresee (none, with the options validation allows) is encoded when
first met and kept. Rows live on the training device: 77 × 768 floats per SD1 caption (~0.2 MB in
fp32), 77 × 2048 + 1280 for SDXL."""
from __future__ import annotations

import torch

from trainer.models import Conditioning

ENCODE_BATCH = 32         # captions per encoder call while filling the cache


class TextCache:
    def __init__(self, encode):
        """encode(captions) -> Conditioning: the encoders as the step would call them."""
        self.encode = encode
        self.rows: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def fill(self, captions) -> int:
        """Encode the captions not cached yet, ENCODE_BATCH at a time; returns how many were new."""
        new = [c for c in dict.fromkeys(captions) if c not in self.rows]
        for start in range(0, len(new), ENCODE_BATCH):
            chunk = new[start:start + ENCODE_BATCH]
            with torch.no_grad():
                cond = self.encode(chunk)
            for i, caption in enumerate(chunk):
                pooled = cond.pooled[i] if cond.pooled is not None else None
                self.rows[caption] = (cond.hidden[i], pooled)
        return len(new)

    def conditioning(self, captions: list[str]) -> Conditioning:
        self.fill(captions)
        hidden = torch.stack([self.rows[c][0] for c in captions])
        pooled = [self.rows[c][1] for c in captions]
        return Conditioning(hidden, torch.stack(pooled) if pooled[0] is not None else None)
