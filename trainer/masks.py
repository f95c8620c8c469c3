"""Loss masks per use (masked_loss / alpha_mask, workbench/dataset/masks.py finds them): each image's mask
scaled, cut and mirrored exactly as its pixels were, as a (batch, H, W) tensor in [0, 1] at the
bucket's pixel size; the step shrinks it to the latent size by area averaging and multiplies the
loss by it (sd-scripts' apply_masked_loss). Masks of centre-cut uses are kept in memory (a bucket
of 1024² is 4 MB per mask in float32, so they are kept as 8-bit images)."""
from __future__ import annotations

import numpy as np
import torch

from trainer.data import resized_image
from workbench.dataset.masks import load_mask, mask_source
from workbench.planning.buckets import crop_box


class Masks:
    def __init__(self, cfg, device):
        self.cfg, self.device = cfg, device
        self.on = bool(mask_source(cfg))
        self.kept: dict = {}          # (path, flipped) -> uint8 (H, W), centre-cut uses only

    def for_images(self, images, flips: list[bool], geometries: list) -> torch.Tensor | None:
        """(batch, H, W) float masks, or None when the run has no masks."""
        if not self.on:
            return None
        rows = [self.one(im, flip, geo) for im, flip, geo in zip(images, flips, geometries)]
        return torch.from_numpy(np.stack(rows)).to(self.device, torch.float32) / 255.0

    def one(self, image, flipped: bool, geometry) -> np.ndarray:
        key = (image.info.path, flipped)
        if geometry is None and key in self.kept:
            return self.kept[key]
        resized, box = geometry or (image.resized, crop_box(image.resized, image.bucket))
        mask = load_mask(image.info.path, self.cfg)
        if mask is None:               # no mask (an image without alpha): learned everywhere
            row = np.full((box[3] - box[1], box[2] - box[0]), 255, dtype=np.uint8)
        else:
            cut = (mask if mask.size == resized else resized_image(mask, resized)).crop(box)
            row = np.asarray(cut)[:, ::-1].copy() if flipped else np.asarray(cut).copy()
        if geometry is None:
            self.kept[key] = row
        return row


def masked(loss: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """Elementwise loss (batch, C, h, w) × the masks area-shrunk to (h, w); unchanged without masks."""
    if masks is None:
        return loss
    small = torch.nn.functional.interpolate(masks[:, None].to(loss), size=loss.shape[2:], mode="area")
    return loss * small
