"""How a run's total steps come about, line by line, for the Parameters page.

Every number is read from workbench.planning.plan's Plan (or computed by its own count_steps), so the
breakdown can never disagree with the plan the trainer runs: images × repeats per subset, reg
balancing, per-bucket rounding to whole batches, processes and gradient accumulation, epochs,
then the warmup and stop-text-encoder steps those totals imply.
"""
from __future__ import annotations

from dataclasses import dataclass

from workbench.planning.plan import Plan, count_steps
from workbench.planning.schedules import has_warmup, stop_text_encoder_step, warmup_steps_for


@dataclass(frozen=True)
class SubsetSteps:
    folder: str
    is_reg: bool
    images: int
    repeats: int             # the folder's repeats
    used: int                # Σ effective repeats of its images (reg: after balancing)
    held_out: int = 0        # images held out for validation (validation_split)
    trains: int | None = None     # images that train, when some are held out

    @property
    def with_repeats(self) -> int:
        return (self.images if self.trains is None else self.trains) * self.repeats


@dataclass(frozen=True)
class BucketSteps:
    bucket: tuple[int, int]
    count: int               # images with repeats
    batches: int             # count rounded up to whole batches


@dataclass(frozen=True)
class StepBreakdown:
    subsets: list[SubsetSteps]
    buckets: list[BucketSteps]
    num_train_images: int
    num_reg_images: int      # before balancing
    reg_used: int            # after balancing
    batch_size: int
    batches_per_epoch: int
    num_processes: int
    grad_accum: int
    steps_per_epoch: int
    epochs: int
    epochs_given: bool       # True: max_train_epochs decides; False: max_train_steps does
    total_steps: int
    warmup_steps: int        # 0 when the scheduler has no warmup
    stop_te_step: int | None
    validation: str = ""     # the validation sentence, when images are held out

    def lines(self) -> list[str]:
        """The breakdown as short sentences, in the order the numbers are derived."""
        out = [_subset_line(s, self.num_train_images) for s in self.subsets]
        for b in self.buckets:
            out.append(f"Bucket {b.bucket[0]}×{b.bucket[1]}: {b.count} images → ⌈{b.count} / "
                       f"{self.batch_size}⌉ = {b.batches} batches")
        out.append(f"Batches per epoch: {self.batches_per_epoch} (each bucket rounds up to whole batches; "
                   "a batch never mixes buckets)")
        out.append(f"Steps per epoch: ⌈{self.batches_per_epoch} / {self.num_processes} process(es) / "
                   f"{self.grad_accum} accumulation⌉ = {self.steps_per_epoch}")
        out.append(self._total_line())
        if self.warmup_steps:
            out.append(f"Warmup: the first {self.warmup_steps} steps")
        if self.stop_te_step is not None:
            out.append(f"Text encoder stops learning after step {self.stop_te_step}")
        return out + ([self.validation] if self.validation else [])

    def _total_line(self) -> str:
        if self.epochs_given:
            return f"Total: {self.epochs} epochs × {self.steps_per_epoch} = {self.total_steps} steps"
        return (f"Total: max_train_steps = {self.total_steps} steps "
                f"(⌈{self.total_steps} / {self.steps_per_epoch}⌉ = {self.epochs} epochs)")


def _subset_line(s: SubsetSteps, num_train_images: int) -> str:
    counted = f"{s.folder}: {s.images} images × {s.repeats} repeats = {s.with_repeats}"
    if s.held_out:
        both = s.trains + s.held_out - s.images
        overlap = f"; {both} of them also trains (sd-scripts' rounding)" if both > 0 else ""
        counted = (f"{s.folder}: {s.images} images, {s.held_out} held out for validation{overlap} → "
                   f"{s.trains} × {s.repeats} repeats = {s.with_repeats}")
    if not s.is_reg:
        return counted
    return (f"Reg {counted}; balanced to the {num_train_images} training images: {s.used} used "
            "(reg images are repeated or left out until they match)")


def warmup_of(cfg, total_steps: int) -> int:
    """Warmup steps that actually happen (constant and adafactor ignore lr_warmup_steps)."""
    if not has_warmup(cfg.lr_scheduler):
        return 0
    return min(total_steps, warmup_steps_for(cfg.lr_warmup_steps, total_steps))


def validation_line(plan: Plan, cfg) -> str:
    """When and on what the validation loss is measured, or "" without held-out images."""
    if not plan.validation_images:
        return ""
    when = ("after every epoch" if cfg.validate_every_n_epochs is None
            else f"after every {cfg.validate_every_n_epochs} epochs")
    when += f" and every {cfg.validate_every_n_steps} steps" if cfg.validate_every_n_steps else ""
    seed = "drawn at start" if plan.split_seed is None else plan.split_seed
    return (f"Validation: {len(plan.validation_images)} held-out images × repeats = {plan.num_validation_images}; "
            f"{plan.validation_batches} batches × timesteps {', '.join(map(str, plan.validation_timesteps))} "
            f"{when} (images chosen by seed {seed}; they do not train)")


def _subset_steps(plan: Plan, s) -> SubsetSteps:
    mine = [im for im in plan.images if im.subset is s]
    held = sum(im.validates for im in mine)
    return SubsetSteps(s.name, s.is_reg, len(s.images), s.repeats, sum(im.repeats for im in mine), held,
                       sum(im.repeats > 0 for im in mine) if held else None)


def breakdown(plan: Plan, cfg) -> StepBreakdown:
    subsets = [_subset_steps(plan, s) for s in plan.dataset.subsets]
    buckets = [BucketSteps(reso, count, count_steps({reso: count}, plan.train_batch_size, 1, 1, 1, 0)[0])
               for reso, count in plan.buckets.items()]
    return StepBreakdown(
        subsets, buckets, plan.num_train_images, plan.num_reg_images,
        sum(s.used for s in subsets if s.is_reg), plan.train_batch_size, plan.batches_per_epoch,
        plan.num_processes, plan.gradient_accumulation_steps, plan.steps_per_epoch, plan.epochs,
        bool(cfg.max_train_epochs), plan.total_steps, warmup_of(cfg, plan.total_steps),
        stop_text_encoder_step(cfg, plan.total_steps), validation_line(plan, cfg))
