"""The validation loss (sd-scripts' validation_split): the held-out images' diffusion loss, with
no gradient and the LoRA's dropouts off, at each of the plan's fixed timesteps, from the same noise
every time (the RNG is seeded with the split seed and put back afterwards), so two validations
differ only by what the LoRA learned in between.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterable

import torch

from trainer import saving


def validation_loss(stepper, batches: Iterable, make_micro_batch: Callable, timesteps: Iterable[int],
                    seed: int, autocast) -> float:
    """Mean loss over every (batch, timestep) pair; the training RNG state is left as it was."""
    state = saving.rng_state()
    torch.manual_seed(seed)
    random.seed(seed)
    stepper.network.eval()
    losses = []
    try:
        with torch.no_grad():
            for batch in batches:
                micro = make_micro_batch(batch)
                for timestep in timesteps:
                    with autocast():
                        losses.append(float(stepper.loss(micro, fixed_timestep=timestep)))
    finally:
        stepper.network.train()
        saving.set_rng_state(state)
    return sum(losses) / len(losses)
