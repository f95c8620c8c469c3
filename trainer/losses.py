"""The per-element loss between the UNet's prediction and its target, sd-scripts' loss_type:
l2 (squared error), l1 (absolute error), and the pseudo-Huber pair — huber and smooth_l1 — whose
threshold c depends on the timestep through huber_schedule (sd-scripts' get_huber_threshold_if_needed
and conditional_loss in library/train_util.py). Elements, not means: the caller averages.

Pseudo-Huber with threshold c, for an error d:  huber = 2c(√(d² + c²) − c)  (≈ d² below c, ≈ 2c|d| above)
                                                smooth_l1 = 2(√(d² + c²) − c)   (the same divided by c)
"""
from __future__ import annotations

import math

import torch

NUM_TRAIN_TIMESTEPS = 1000      # sd-scripts' DDPM schedule (trainer/models.py's noise_scheduler)


def huber_threshold(cfg, timesteps: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor | None:
    """Each sample's c, or None for l1/l2. snr: (1 − huber_c) / (1 + σ_t)² + huber_c with σ_t = √((1 − ᾱ_t)/ᾱ_t),
    so c is near 1 at clean steps and huber_c at the noisiest (huber_scale is not used);
    exponential: huber_scale · exp(t · ln(huber_c) / 1000); constant: huber_c · huber_scale."""
    if cfg.loss_type not in ("huber", "smooth_l1"):
        return None
    if cfg.huber_schedule == "exponential":
        rate = -math.log(cfg.huber_c) / NUM_TRAIN_TIMESTEPS
        return torch.exp(-rate * timesteps) * cfg.huber_scale
    if cfg.huber_schedule == "snr":
        alpha_bar = alphas_cumprod.to(timesteps.device)[timesteps]
        sigma = ((1.0 - alpha_bar) / alpha_bar) ** 0.5
        return (1 - cfg.huber_c) / (1 + sigma) ** 2 + cfg.huber_c
    return torch.full(timesteps.shape, cfg.huber_c * cfg.huber_scale, device=timesteps.device)


def elementwise_loss(pred: torch.Tensor, target: torch.Tensor, loss_type: str,
                     threshold: torch.Tensor | None = None) -> torch.Tensor:
    """Loss of each element (same shape as pred); `threshold` is each sample's c (huber, smooth_l1)."""
    if loss_type == "l2":
        return torch.nn.functional.mse_loss(pred, target, reduction="none")
    if loss_type == "l1":
        return torch.nn.functional.l1_loss(pred, target, reduction="none")
    c = threshold.view(-1, *([1] * (pred.ndim - 1)))          # one c per sample, over its channels and pixels
    smooth = 2 * (torch.sqrt((pred - target) ** 2 + c**2) - c)
    return smooth * c if loss_type == "huber" else smooth
