"""The noise a training step adds and the weight each sample's loss gets: sd-scripts' options,
each in the order train_network.py applies them.

Noise: ε ~ N(0, I), plus noise_offset (one value per image and channel: darker darks, brighter
brights; noise_offset_random_strength draws it in [0, offset), adaptive_noise_scale adds
to it in proportion to each latent channel's mean), then multi-resolution "pyramid" noise (multires_noise_iterations levels of coarser noise,
each discount× the last, rescaled to unit variance). Timesteps are uniform in [min_timestep,
max_timestep). ip_noise_gamma perturbs the noise the latents get, not the target (at a random
strength with ip_noise_gamma_random_strength). zero_terminal_snr rescales the schedule itself.
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
        offset = random_strength(cfg.noise_offset, cfg.noise_offset_random_strength, latents.device)
        if cfg.adaptive_noise_scale is not None:       # brighter/darker latents get more offset, never below 0
            mean = latents.mean(dim=(2, 3), keepdim=True).abs()
            offset = torch.clamp(offset + cfg.adaptive_noise_scale * mean, min=0.0)
        noise = noise + offset * torch.randn(*latents.shape[:2], 1, 1, device=latents.device)
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


def random_strength(value: float, randomised: bool, device) -> float | torch.Tensor:
    """`value`, or with *_random_strength one uniform draw in [0, value) for the whole batch."""
    return torch.rand(1, device=device) * value if randomised else value


def zero_terminal_snr(scheduler) -> None:
    """Lin et al. 2023 (arXiv 2305.08891): shift and rescale √ᾱ_t so that the last step's is 0
    (pure noise) and the first's unchanged, then rebuild betas, alphas and ᾱ from it, in place."""
    root = scheduler.alphas_cumprod.sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * first / (first - last)
    alphas_cumprod = root**2
    alphas = torch.cat([alphas_cumprod[:1], alphas_cumprod[1:] / alphas_cumprod[:-1]])
    scheduler.betas, scheduler.alphas = 1 - alphas, alphas
    scheduler.alphas_cumprod = torch.cumprod(alphas, dim=0)


def timesteps_for(latents: torch.Tensor, cfg) -> torch.Tensor:
    return torch.randint(cfg.min_timestep, cfg.max_timestep, (latents.shape[0],), device=latents.device)


def noisy_latents(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, cfg):
    """Forward diffusion q(x_t | x_0); ip_noise_gamma adds γ·N(0, I) to the noise put in only."""
    if cfg.ip_noise_gamma:
        strength = random_strength(cfg.ip_noise_gamma, cfg.ip_noise_gamma_random_strength, latents.device)
        noise = noise + strength * torch.randn_like(latents)
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
