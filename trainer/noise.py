"""The noise a training step adds and the weight each sample's loss gets: sd-scripts' options,
each in the order train_network.py applies them.

Noise: ε ~ N(0, I), plus noise_offset (one value per image and channel: darker darks, brighter
brights), then multi-resolution "pyramid" noise (multires_noise_iterations levels of coarser noise,
each discount× the last, rescaled to unit variance). Timesteps are uniform in [min_timestep,
max_timestep). ip_noise_gamma perturbs the noise the latents get, not the target.
Loss weights, by the signal-to-noise ratio SNR(t) = ᾱ_t / (1 − ᾱ_t): Min-SNR γ, v-prediction scaled
like ε-prediction, the v-prediction-like extra loss, debiased estimation.
"""
from __future__ import annotations

import random

import torch

SNR_CAP = 1000.0        # sd-scripts caps SNR here where it divides by it (t = 0 is ≈ 1175)


def training_noise(latents: torch.Tensor, cfg) -> torch.Tensor:
    noise = torch.randn_like(latents)                                            # ε ~ N(0, I)
    if cfg.noise_offset:
        noise += cfg.noise_offset * torch.randn(*latents.shape[:2], 1, 1, device=latents.device)
    if cfg.multires_noise_iterations:
        noise = pyramid_noise(noise, cfg.multires_noise_iterations, cfg.multires_noise_discount)
    return noise


def pyramid_noise(noise: torch.Tensor, iterations: int, discount: float) -> torch.Tensor:
    """Coarser and coarser noise upsampled onto `noise` (each level 2–4× smaller, at random), the
    sum rescaled to unit standard deviation (Whitaker's multi-resolution noise, as sd-scripts has it)."""
    batch, channels, height, width = noise.shape
    upsample = torch.nn.Upsample(size=(height, width), mode="bilinear")
    for level in range(iterations):
        ratio = random.random() * 2 + 2
        h, w = max(1, int(height / ratio**level)), max(1, int(width / ratio**level))
        noise = noise + upsample(torch.randn(batch, channels, h, w, device=noise.device)) * discount**level
        if h == 1 or w == 1:
            break
    return noise / noise.std()


def timesteps_for(latents: torch.Tensor, cfg) -> torch.Tensor:
    return torch.randint(cfg.min_timestep, cfg.max_timestep, (latents.shape[0],), device=latents.device)


def noisy_latents(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, cfg):
    """Forward diffusion q(x_t | x_0); ip_noise_gamma adds γ·N(0, I) to the noise put in only."""
    if cfg.ip_noise_gamma:
        noise = noise + cfg.ip_noise_gamma * torch.randn_like(latents)
    return scheduler.add_noise(latents, noise, timesteps)


def weighted(loss: torch.Tensor, snr: torch.Tensor, cfg) -> torch.Tensor:
    """Per-sample `loss` weighted by the SNR options that are on; `snr` is each sample's SNR(t)."""
    v = cfg.v_parameterization
    capped = torch.clamp(snr, max=SNR_CAP)
    if cfg.min_snr_gamma:                 # Min-SNR (Hang et al. 2023): min(SNR, γ) / SNR (v: SNR + 1)
        loss = loss * torch.clamp(snr, max=cfg.min_snr_gamma) / (snr + 1 if v else snr)
    if cfg.scale_v_pred_loss_like_noise_pred:
        loss = loss * capped / (capped + 1)
    if cfg.v_pred_like_loss:
        loss = loss + loss / (capped / (capped + 1)) * cfg.v_pred_like_loss
    if cfg.debiased_estimation_loss:      # 1 / √SNR (v: 1 / (SNR + 1))
        loss = loss / (capped + 1 if v else torch.sqrt(capped))
    return loss
