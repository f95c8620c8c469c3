"""sd-scripts' loss types and huber schedules (library/train_util.py: get_huber_threshold_if_needed,
conditional_loss) and the later noise options, against values worked out by hand."""
from __future__ import annotations

import math

import pytest
import torch

from trainer import losses, noise
from workbench.config.schema import TrainConfig

# an error of 1 and of -0.5 between prediction and target, in one sample
PRED = torch.tensor([[[[1.0, -0.5]]]])
TARGET = torch.zeros_like(PRED)


def hand_huber(c: float, d: float) -> float:
    return 2 * c * (math.sqrt(d * d + c * c) - c)


@pytest.mark.parametrize("loss_type, expected", [
    ("l2", (1.0**2 + 0.5**2) / 2),
    ("l1", (1.0 + 0.5) / 2),
    ("huber", (hand_huber(0.2, 1.0) + hand_huber(0.2, -0.5)) / 2),
    ("smooth_l1", (hand_huber(0.2, 1.0) + hand_huber(0.2, -0.5)) / 2 / 0.2),
])
def test_each_loss_type_is_the_formula(loss_type, expected):
    cfg = TrainConfig(loss_type=loss_type, huber_schedule="constant", huber_c=0.1, huber_scale=2.0)
    threshold = losses.huber_threshold(cfg, torch.tensor([500]), torch.ones(1000))
    assert (threshold is None) == (loss_type in ("l1", "l2"))
    value = losses.elementwise_loss(PRED, TARGET, loss_type, threshold).mean().item()
    assert value == pytest.approx(expected, rel=1e-6)
    assert {"l2": 0.625, "l1": 0.75, "huber": 0.2316641, "smooth_l1": 1.1583205}[loss_type] == \
        pytest.approx(value, rel=1e-6)


def test_huber_threshold_schedules():
    t = torch.tensor([0, 500, 1000])
    exponential = TrainConfig(loss_type="huber", huber_schedule="exponential", huber_c=0.1, huber_scale=2.0)
    # scale · huber_c^(t/1000): 1 at t = 0, √0.1 half way, huber_c at the end (times the scale)
    assert losses.huber_threshold(exponential, t, torch.ones(1001)).tolist() == \
        pytest.approx([2.0, 2 * math.sqrt(0.1), 0.2], rel=1e-6)
    # snr: (1 − c)/(1 + σ)² + c, σ = √((1 − ᾱ)/ᾱ): ᾱ 0.8 → σ 0.5 → 0.5; ᾱ 0.5 → σ 1 → 0.325; scale ignored
    snr = TrainConfig(loss_type="smooth_l1", huber_schedule="snr", huber_c=0.1, huber_scale=2.0)
    alphas_cumprod = torch.tensor([0.8, 0.5, 0.2])
    assert losses.huber_threshold(snr, torch.tensor([0, 1]), alphas_cumprod).tolist() == \
        pytest.approx([0.5, 0.325], rel=1e-6)


def test_huber_is_quadratic_for_small_errors_and_linear_for_large():
    c = torch.tensor([0.1])
    small, large = torch.full((1, 1, 1, 1), 0.001), torch.full((1, 1, 1, 1), 100.0)
    zero = torch.zeros(1, 1, 1, 1)
    assert losses.elementwise_loss(small, zero, "huber", c).item() == pytest.approx(0.001**2, rel=1e-2)   # float32
    assert losses.elementwise_loss(large, zero, "huber", c).item() == pytest.approx(2 * 0.1 * 100, rel=1e-2)


# ---------------------------------------------------------------- noise

LATENTS = torch.stack([torch.full((4, 4), 2.0), torch.full((4, 4), -3.0)]).unsqueeze(0)   # channel means 2, −3


def test_noise_offset_random_strength_draws_one_strength_below_the_offset():
    cfg = TrainConfig(noise_offset=0.1, noise_offset_random_strength=True)
    torch.manual_seed(7)
    got = noise.training_noise(LATENTS, cfg)
    torch.manual_seed(7)
    eps, strength, offset = torch.randn_like(LATENTS), torch.rand(1), torch.randn(1, 2, 1, 1)
    assert torch.equal(got, eps + strength * 0.1 * offset)
    assert 0 <= strength.item() < 1


def test_adaptive_noise_scale_adds_to_the_offset_by_each_channels_mean():
    cfg = TrainConfig(noise_offset=0.1, adaptive_noise_scale=0.05)
    torch.manual_seed(3)
    got = noise.training_noise(LATENTS, cfg)
    torch.manual_seed(3)
    eps, offset = torch.randn_like(LATENTS), torch.randn(1, 2, 1, 1)
    per_channel = torch.tensor([0.1 + 0.05 * 2, 0.1 + 0.05 * 3]).view(1, 2, 1, 1)     # 0.2 and 0.25
    assert torch.allclose(got, eps + per_channel * offset)
    negative = TrainConfig(noise_offset=0.1, adaptive_noise_scale=-1.0)       # clamped at 0: no offset at all
    torch.manual_seed(3)
    assert torch.equal(noise.training_noise(LATENTS, negative), eps)


def test_ip_noise_gamma_random_strength_perturbs_by_a_drawn_fraction():
    from trainer.models import noise_scheduler
    scheduler = noise_scheduler(False)
    eps, t = torch.randn_like(LATENTS), torch.tensor([400])
    cfg = TrainConfig(ip_noise_gamma=0.1, ip_noise_gamma_random_strength=True)
    torch.manual_seed(11)
    got = noise.noisy_latents(scheduler, LATENTS, eps, t, cfg)
    torch.manual_seed(11)
    strength = torch.rand(1)
    assert torch.allclose(got, scheduler.add_noise(LATENTS, eps + strength * 0.1 * torch.randn_like(LATENTS), t))


def test_zero_terminal_snr_makes_the_last_step_pure_noise_and_keeps_the_first():
    from trainer.models import noise_scheduler
    scheduler = noise_scheduler(True)
    before = scheduler.alphas_cumprod.clone()
    noise.zero_terminal_snr(scheduler)
    after = scheduler.alphas_cumprod
    assert after[-1].item() == pytest.approx(0.0, abs=1e-12) and after[0].item() == pytest.approx(before[0].item())
    assert torch.allclose(torch.cumprod(1 - scheduler.betas, 0), after)
    assert bool((after[1:] <= after[:-1]).all())
    eps = torch.randn_like(LATENTS)
    assert torch.allclose(scheduler.add_noise(LATENTS, eps, torch.tensor([999])), eps, atol=1e-6)
    assert not torch.allclose(noise_scheduler(True).add_noise(LATENTS, eps, torch.tensor([999])), eps, atol=1e-3)
