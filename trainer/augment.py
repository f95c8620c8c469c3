"""Per-use image augmentations of sd-scripts (library/train_util.py): random_crop picks where an
image that covers its bucket is cut (instead of the centre), color_aug (AugHelper.color_aug) one
time in three shifts the hue by up to ±8 of OpenCV's 180 hue units or applies a gamma of
0.95–1.05 to the 0–255 pixel values. Both change an image at every use, which is why sd-scripts
refuses them with cached latents."""
from __future__ import annotations

import random

import numpy as np

HUE_SHIFT_LIMIT = 8          # OpenCV hue units (180 per turn)
COLOR_AUG_CHANCE = 0.33
GAMMA_RANGE = (0.95, 1.05)


def random_crop_box(resized: tuple[int, int], bucket: tuple[int, int], rng: random.Random) -> tuple[int, ...]:
    """(left, top, right, bottom) at a random offset in [0, overhang] on each axis."""
    left = rng.randint(0, resized[0] - bucket[0])
    top = rng.randint(0, resized[1] - bucket[1])
    return left, top, left + bucket[0], top + bucket[1]


def color_aug(rgb: np.ndarray, rng: random.Random) -> np.ndarray:
    """(H, W, 3) uint8 RGB, changed one time in three: half of those a hue shift, half a gamma."""
    if rng.random() > COLOR_AUG_CHANCE:
        return rgb
    if rng.random() > 0.5:
        return shifted_hue(rgb, rng.uniform(-HUE_SHIFT_LIMIT, HUE_SHIFT_LIMIT))
    gamma = rng.uniform(*GAMMA_RANGE)
    return np.clip(rgb.astype(np.float64) ** gamma, 0, 255).astype(np.uint8)


def shifted_hue(rgb: np.ndarray, shift: float) -> np.ndarray:
    """Rotate the hue by `shift` OpenCV units (PIL's HSV has 256 hue units per turn)."""
    from PIL import Image
    hsv = np.asarray(Image.fromarray(rgb).convert("HSV")).copy()
    hsv[..., 0] = ((hsv[..., 0].astype(np.float64) + shift * 256 / 180) % 256).astype(np.uint8)
    return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
