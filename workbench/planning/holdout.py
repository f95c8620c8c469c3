"""The validation split, as sd-scripts makes it (library/train_util.py split_train_val): each
training folder's images, in path order, are shuffled by the validation seed; the training run
keeps the first ceil(n × (1 − validation_split)) and validation takes the last
round(n × validation_split). Regularisation folders are never split. Python's round() halves to
even and ceil rounds up, so where both round towards each other one image both trains and
validates (n = 7, split 0.5: 4 train, 4 validate) — sd-scripts' counts, kept and reported.

Validation then runs max_validation_steps batches (all when empty) at 4 fixed timesteps spread
evenly between min_timestep and max_timestep (200, 400, 600, 800 by default).
"""
from __future__ import annotations

import math
import random

VALIDATION_TIMESTEPS = 4      # sd-scripts' NUM_VALIDATION_TIMESTEPS


def split_seed(cfg, run_seed: int | None = None) -> int | None:
    """validation_seed, else the run's seed (sd-scripts' rule); None while neither is known (a
    random seed is drawn when the run starts)."""
    if cfg.validation_seed is not None:
        return cfg.validation_seed
    return run_seed if run_seed is not None else cfg.seed


def split_counts(n: int, split: float) -> tuple[int, int]:
    """(images that train, images that validate) of a folder of n images."""
    if split <= 0:
        return n, 0
    return math.ceil(n * (1 - split)), round(n * split)


def split_paths(paths: list, split: float, seed: int | None) -> tuple[set, set]:
    """(paths that train, paths that validate) of one training folder; shuffled by `seed`, in path
    order without one."""
    train_count, validation_count = split_counts(len(paths), split)
    order = list(paths)
    if seed is not None and validation_count:
        random.Random(seed).shuffle(order)
    return set(order[:train_count]), set(order[len(order) - validation_count:]) if validation_count else set()


def validation_timesteps(min_timestep: int, max_timestep: int) -> list[int]:
    """numpy.linspace(min, max, 6, dtype=int)[1:-1], as sd-scripts picks them."""
    step = (max_timestep - min_timestep) / (VALIDATION_TIMESTEPS + 1)
    return [int(i * step + min_timestep) for i in range(1, VALIDATION_TIMESTEPS + 1)]


def validation_batches(batches: int, max_validation_steps: int | None) -> int:
    """Batches each validation runs (each at every validation timestep)."""
    return batches if max_validation_steps is None else min(max_validation_steps, batches)


def validates_after_epoch(cfg, epoch: int) -> bool:
    """sd-scripts validates after every epoch unless validate_every_n_epochs says otherwise."""
    return cfg.validate_every_n_epochs is None or epoch % cfg.validate_every_n_epochs == 0


def validates_after_step(cfg, step: int) -> bool:
    return bool(cfg.validate_every_n_steps) and step % cfg.validate_every_n_steps == 0
