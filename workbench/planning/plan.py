"""The one plan: buckets, repeats, reg balancing and step counts, as sd-scripts computes them.

The trainer, the CLI and the app all call `make_plan`; the number the app shows is the number the
trainer runs. A "step" is an optimizer step everywhere.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from workbench.dataset.scan import Dataset, ImageInfo, Subset, scan_config
from workbench.errors import UserError
from workbench.planning import holdout
from workbench.planning.buckets import Bucketer, BucketError, BucketSpec


class PlanError(UserError):
    """A plan that cannot be made: the message names the field or folder."""


@dataclass
class PlannedImage:
    info: ImageInfo
    subset: Subset
    bucket: tuple[int, int]
    resized: tuple[int, int]
    repeats: int                    # effective, after reg balancing (0: unused reg image or held out only)
    validates: bool = False         # held out for validation (validation_split), × its folder's repeats

    @property
    def is_reg(self) -> bool:
        return self.subset.is_reg


@dataclass
class Plan:
    dataset: Dataset
    images: list[PlannedImage]      # every image, unused reg images too (repeats 0)
    buckets: dict[tuple[int, int], int]   # bucket -> image count with repeats, sorted
    num_train_images: int           # Σ train images × repeats
    num_reg_images: int             # Σ reg images × folder repeats, before balancing
    train_batch_size: int
    gradient_accumulation_steps: int
    num_processes: int
    batches_per_epoch: int
    steps_per_epoch: int
    epochs: int
    total_steps: int
    split_seed: int | None = None   # the seed that chose the validation images (None: drawn at start)
    validation_batches: int = 0     # batches one validation runs (max_validation_steps applied)
    validation_timesteps: tuple[int, ...] = ()     # each batch's loss is taken at each of these

    @property
    def used_images(self) -> list[PlannedImage]:
        return [im for im in self.images if im.repeats > 0]

    @property
    def validation_images(self) -> list[PlannedImage]:
        return [im for im in self.images if im.validates]

    @property
    def num_validation_images(self) -> int:
        """Σ held-out images × their folder's repeats (sd-scripts' ss_num_validation_images)."""
        return sum(im.subset.repeats for im in self.validation_images)

    def batch_shapes(self) -> set[tuple[int, int, int]]:
        """(width, height, images) of every batch an epoch holds: each bucket's whole batches and
        its remainder (the shapes torch.compile compiles once each)."""
        size, shapes = self.train_batch_size, set()
        for (width, height), count in self.buckets.items():
            shapes |= {(width, height, n) for n in (min(count, size), count % size) if n}
        return shapes

    def to_json(self) -> dict:
        """The `workbench plan --json` object; scripts depend on its exact keys ("validation" is
        added only when images are held out)."""
        out = {
            "num_train_images": self.num_train_images,
            "num_reg_images": self.num_reg_images,
            "subsets": [{"dir": str(s.dir), "repeats": s.repeats, "class_tokens": s.class_tokens,
                         "is_reg": s.is_reg, "images": len(s.images)} for s in self.dataset.subsets],
            "images": [{"path": str(im.info.path), "size": list(im.info.size), "bucket": list(im.bucket),
                        "resized": list(im.resized), "repeats": im.repeats, "is_reg": im.is_reg,
                        "caption": im.info.caption} for im in self.used_images],
            "buckets": [{"resolution": list(reso), "count": count} for reso, count in self.buckets.items()],
            "batches_per_epoch": self.batches_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "epochs": self.epochs,
            "total_steps": self.total_steps,
        }
        if self.validation_images:
            out["validation"] = {"num_validation_images": self.num_validation_images,
                                 "images": [str(im.info.path) for im in self.validation_images],
                                 "batches": self.validation_batches, "timesteps": list(self.validation_timesteps),
                                 "seed": self.split_seed}
        return out


def balance_reg_repeats(reg_images: list[tuple[int, int]], target: int) -> list[int]:
    """sd-scripts' reg balancing. `reg_images` is [(index, folder repeats)] in order; returns
    the effective repeats. Take images with their repeats until the running total reaches
    `target`; if still short, add 1 repeat per image round-robin until it does."""
    repeats = [0] * len(reg_images)
    if not reg_images or target <= 0:
        return repeats
    total = 0
    for i, (_, folder_repeats) in enumerate(reg_images):
        repeats[i] = folder_repeats
        total += folder_repeats
        if total >= target:
            return repeats
    while total < target:
        for i in range(len(reg_images)):
            repeats[i] += 1
            total += 1
            if total >= target:
                break
    return repeats


def count_steps(buckets: dict, batch_size: int, grad_accum: int, num_processes: int,
                max_train_epochs: int | None, max_train_steps: int) -> tuple[int, int, int, int]:
    """(batches_per_epoch, steps_per_epoch, epochs, total_steps). Each bucket rounds up to whole
    batches; accumulation and processes divide the batches into optimizer steps."""
    batches = sum(math.ceil(count / batch_size) for count in buckets.values())
    steps_per_epoch = math.ceil(batches / num_processes / grad_accum)
    if batches == 0:
        return 0, 0, 0, 0
    if max_train_epochs:
        return batches, steps_per_epoch, max_train_epochs, max_train_epochs * steps_per_epoch
    if max_train_steps <= 0:
        raise PlanError("max_train_epochs / max_train_steps: set one of them (epochs is the usual choice)")
    return batches, steps_per_epoch, math.ceil(max_train_steps / steps_per_epoch), max_train_steps


def assign_image(bucketer: Bucketer, info: ImageInfo):
    try:
        return bucketer.assign(*info.size)
    except BucketError as exc:
        raise PlanError(f"{info.path}: {exc}") from None


def plan_dataset(dataset: Dataset, cfg, num_processes: int = 1, seed: int | None = None) -> Plan:
    """`seed`: the run's seed, which picks the validation images when validation_seed is empty."""
    bucketer = Bucketer(BucketSpec.from_config(cfg))
    images: list[PlannedImage] = []
    chosen = holdout.split_seed(cfg, seed)
    for subset in dataset.subsets:
        split = 0.0 if subset.is_reg else cfg.validation_split       # reg folders are never split
        trains, validates = holdout.split_paths([info.path for info in subset.images], split, chosen)
        for info in subset.images:
            a = assign_image(bucketer, info)
            images.append(PlannedImage(info, subset, a.bucket, a.resized,
                                       subset.repeats if info.path in trains else 0, info.path in validates))
    num_train = sum(im.repeats for im in images if not im.is_reg)
    reg = [(i, im.repeats) for i, im in enumerate(images) if im.is_reg]
    num_reg = sum(r for _, r in reg)
    for (i, _), repeats in zip(reg, balance_reg_repeats(reg, num_train)):
        images[i].repeats = repeats
    counts = Counter()
    for im in images:
        counts[im.bucket] += im.repeats
    buckets = {reso: counts[reso] for reso in sorted(counts) if counts[reso] > 0}
    batches, per_epoch, epochs, total = count_steps(
        buckets, cfg.train_batch_size, cfg.gradient_accumulation_steps, num_processes,
        cfg.max_train_epochs, cfg.max_train_steps)
    plan = Plan(dataset, images, buckets, num_train, num_reg, cfg.train_batch_size,
                cfg.gradient_accumulation_steps, num_processes, batches, per_epoch, epochs, total, chosen)
    if plan.validation_images:
        held = Counter()
        for im in plan.validation_images:
            held[im.bucket] += im.subset.repeats
        every = sum(math.ceil(count / cfg.train_batch_size) for count in held.values())
        plan.validation_batches = holdout.validation_batches(every, cfg.max_validation_steps)
        plan.validation_timesteps = tuple(holdout.validation_timesteps(cfg.min_timestep, cfg.max_timestep))
    return plan


def make_plan(cfg, num_processes: int = 1, dataset: Dataset | None = None, seed: int | None = None) -> Plan:
    """Scan the config's folders (unless a scanned dataset is given) and plan the run; `seed` is
    the run's drawn seed where the config has none (it may pick the validation images)."""
    dataset = dataset if dataset is not None else scan_config(cfg)
    if not any(s.images for s in dataset.train):
        where = Path(cfg.train_data_dir)
        raise PlanError(f"train_data_dir {where}: no training images in any <repeats>_<name> folder")
    return plan_dataset(dataset, cfg, num_processes, seed)
