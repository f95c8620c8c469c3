"""Batches from the plan, one bucket at a time, and the latents they train on.

The order of an epoch is a pure function of (seed, epoch): each bucket's images (repeated as the
plan says) are shuffled, cut into batches, and the batches of all buckets shuffled together, as
sd-scripts' BucketManager does. So a resumed run sees exactly the batches the first run would have.

Latents are VAE samples × the family's scaling factor. With cache_latents every image is encoded
once (twice with flip_aug: as is and mirrored), in memory, and with cache_latents_to_disk also in a
.npz beside the image, reused while the image and its bucket are unchanged; without, each batch is
encoded as it comes.
"""
from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer import augment
from workbench.dataset.face_crop import face_crop_box, face_from_name
from workbench.dataset.images import UnreadableImage, open_image, pil_image
from workbench.dataset.scan import DatasetError
from workbench.fileio import write_bytes_atomic
from workbench.planning.buckets import crop_box, sdxl_crop_ltrb
from workbench.planning.plan import Plan, PlannedImage


@dataclass
class Batch:
    images: list[PlannedImage]            # one bucket
    index: int                            # position in the epoch (seeds its caption shuffling)

    @property
    def bucket(self) -> tuple[int, int]:
        return self.images[0].bucket


def epoch_batches(plan: Plan, seed: int, epoch: int) -> list[Batch]:
    """Every batch of one epoch, in training order."""
    uses = [(image, image.repeats) for image in plan.used_images]
    return bucket_batches(uses, plan.train_batch_size, random.Random(seed + epoch))


def validation_batches(plan: Plan, seed: int) -> list[Batch]:
    """The held-out images × their folder's repeats in batches, the same ones at every validation;
    the first plan.validation_batches of them (max_validation_steps)."""
    uses = [(image, image.subset.repeats) for image in plan.validation_images]
    return bucket_batches(uses, plan.train_batch_size, random.Random(seed))[:plan.validation_batches]


def bucket_batches(uses: list[tuple[PlannedImage, int]], size: int, rng: random.Random) -> list[Batch]:
    """(image, times used) cut into batches of one bucket each: each bucket's uses shuffled, then
    all batches shuffled together (sd-scripts' BucketManager)."""
    by_bucket: dict[tuple[int, int], list[PlannedImage]] = {}
    for image, times in uses:
        by_bucket.setdefault(image.bucket, []).extend([image] * times)
    chunks = []
    for bucket in sorted(by_bucket):
        images = by_bucket[bucket]
        rng.shuffle(images)
        chunks += [images[i:i + size] for i in range(0, len(images), size)]
    rng.shuffle(chunks)
    return [Batch(images, i) for i, images in enumerate(chunks)]


def process_share(batches: list[Batch], index: int, count: int) -> list[Batch]:
    """This process's batches when `count` processes train together: every count-th one, so the
    shares of a round are disjoint. A last round that the batches do not fill is completed with the
    epoch's first batches (accelerate's even_batches, which sd-scripts' prepared DataLoader uses):
    every process then has a batch in every step, steps as often as the others and meets them in
    each gradient all-reduce. So ceil(batches / count) each, the count the plan divides by."""
    if count == 1:
        return batches
    per_process = -(-len(batches) // count)
    padded = (batches * count)[:per_process * count]
    return padded[index::count]


def accumulation_groups(batches: list[Batch], accumulation: int) -> list[list[Batch]]:
    """Batches per optimizer step; the last group of an epoch may be short and still steps."""
    return [batches[i:i + accumulation] for i in range(0, len(batches), accumulation)]


# ---------------------------------------------------------------- captions

def caption_of(image: PlannedImage, cfg, epoch: int, rng: random.Random, step: int = 0, total_steps: int = 0) -> str:
    """The caption trained on in 0-based `epoch` at optimizer step `step` (steps done before it),
    in sd-scripts' order (process_caption): caption_prefix / caption_suffix added; the whole caption
    dropped (caption_dropout_rate, or every caption_dropout_every_n_epochs-th epoch counted from 1);
    else the comma-separated tags split into the kept head (keep_tokens, or the part before
    keep_tokens_separator), the rest, and a kept tail (after a second separator); the rest cut by
    token warmup, shuffled (shuffle_caption), each tag left out with caption_tag_dropout_rate."""
    caption = with_prefix_and_suffix(image.info.caption, cfg)
    every = cfg.caption_dropout_every_n_epochs
    dropped = cfg.caption_dropout_rate > 0 and rng.random() < cfg.caption_dropout_rate
    if dropped or (every and (epoch + 1) % every == 0):
        return ""
    tag_dropout = cfg.caption_tag_dropout_rate
    if not (cfg.shuffle_caption or tag_dropout > 0 or cfg.token_warmup_step > 0):
        return caption
    head, rest, tail = kept_and_free_tags(caption, cfg)
    rest = warmed_up_tags(rest, cfg, step, total_steps)
    if cfg.shuffle_caption:
        rng.shuffle(rest)
    if tag_dropout > 0:
        rest = [tag for tag in rest if rng.random() >= tag_dropout]
    return ", ".join(head + rest + tail)


def fixed_captions(plan: Plan, cfg) -> list[str]:
    """Every caption a run whose captions do not change at random trains on (what
    cache_text_encoder_outputs encodes up front): each image's, the held-out images' (validation),
    and the empty one when caption_dropout_every_n_epochs drops them all in some epochs."""
    rng = random.Random(0)        # unused: validation keeps shuffling and random dropout out
    captions = [caption_of(im, cfg, 0, rng) for im in plan.used_images]
    held_out = [with_prefix_and_suffix(im.info.caption, cfg) for im in plan.validation_images]   # validation's
    return captions + held_out + ([""] if cfg.caption_dropout_every_n_epochs else [])


def with_prefix_and_suffix(caption: str, cfg) -> str:
    if cfg.caption_prefix:
        caption = f"{cfg.caption_prefix} {caption}"
    return f"{caption} {cfg.caption_suffix}" if cfg.caption_suffix else caption


def kept_and_free_tags(caption: str, cfg) -> tuple[list[str], list[str], list[str]]:
    """(tags kept first, tags free to move, tags kept last). keep_tokens_separator, where the
    caption has it, splits "head SEP free SEP tail"; otherwise the first keep_tokens are kept."""
    separator = cfg.keep_tokens_separator
    if separator and separator in caption:
        head, free = caption.split(separator, 1)
        free, tail = free.split(separator, 1) if separator in free else (free, "")
        return tuple([t.strip() for t in part.split(",") if t.strip()] for part in (head, free, tail))
    tags = [t.strip() for t in caption.strip().split(",")]
    return tags[:cfg.keep_tokens], tags[cfg.keep_tokens:], []


def warmed_up_tags(tags: list[str], cfg, step: int, total_steps: int) -> list[str]:
    """Token warmup: before step W (token_warmup_step; below 1 a fraction of the total steps) only
    ⌊step × (n − min) / W⌋ + min of the n free tags are used, growing to all of them at W."""
    warmup = cfg.token_warmup_step
    if warmup < 1:
        warmup = math.floor(warmup * total_steps)
    if not warmup or step >= warmup:
        return tags
    return tags[:math.floor(step * ((len(tags) - cfg.token_warmup_min) / warmup)) + cfg.token_warmup_min]


def batch_captions(batch: Batch, cfg, seed: int, epoch: int, step: int = 0, total_steps: int = 0) -> list[str]:
    rng = random.Random(f"{seed}/{epoch}/{batch.index}")
    return [caption_of(im, cfg, epoch, rng, step, total_steps) for im in batch.images]


# ---------------------------------------------------------------- pixels

def load_pixels(image: PlannedImage, flip: bool = False, rng: random.Random | None = None,
                random_crop: bool = False, color_aug: bool = False, face_range: tuple[float, float] | None = None,
                with_geometry: bool = False):
    """(3, H, W) in [-1, 1]: scaled to cover its bucket, centre-cropped (sd-scripts' transform);
    random_crop / color_aug / face_crop_aug_range (drawn from `rng`) change that at every use.
    with_geometry: also ((scaled w, h), crop box), so a mask can be cut the same way."""
    Image = pil_image()
    try:
        with open_image(image.info.path) as source:
            rgb = source.convert("RGB")
    except UnreadableImage as exc:
        raise DatasetError(str(exc)) from None
    resized, box = geometry(image, rng, random_crop, face_range)
    rgb = rgb.crop(box) if rgb.size == resized else resized_image(rgb, resized).crop(box)
    if flip:
        rgb = rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = augment.color_aug(np.asarray(rgb), rng) if color_aug else np.asarray(rgb)
    array = pixels.astype(np.float32) / 127.5 - 1.0
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    return (tensor, (resized, box)) if with_geometry else tensor


def resized_image(im, size: tuple[int, int]):
    """BOX when shrinking (sd-scripts' INTER_AREA), LANCZOS when growing."""
    Image = pil_image()
    return im.resize(size, Image.Resampling.BOX if size[0] < im.size[0] else Image.Resampling.LANCZOS)


def geometry(image: PlannedImage, rng: random.Random | None, random_crop: bool,
             face_range: tuple[float, float] | None) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """(size the image is scaled to, the box cut from it): a face crop when the file name has a
    face and face_crop_aug_range is on (sd-scripts: without buckets only), else cover-and-cut."""
    face = face_from_name(image.info.path) if face_range else None
    if face is not None:
        return face_crop_box(image.info.size, image.bucket, face, face_range, rng, random_crop)
    box = augment.random_crop_box(image.resized, image.bucket, rng) if random_crop else None
    return image.resized, box or crop_box(image.resized, image.bucket)


# ---------------------------------------------------------------- latents

class Latents:
    """Latents of a batch: from the cache, or encoded now. Unscaled VAE samples are what is cached
    (as sd-scripts does); the scaling factor is applied on the way out. With flip_aug each image
    is mirrored with p = 0.5 per use; cached runs encode both versions once (as sd-scripts does),
    so flipping works with cache_latents too, at twice the caching time."""

    def __init__(self, vae, scaling_factor: float, device, seed: int, cfg):
        self.vae, self.scaling, self.device = vae, scaling_factor, device
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.flip = cfg.flip_aug
        self.vae_batch = cfg.vae_batch_size
        # image-reading threads, used only while latents are not cached (nothing is read then)
        self.workers, self.persistent = cfg.max_data_loader_n_workers, cfg.persistent_data_loader_workers
        self.pool = None
        self.random_crop, self.color_aug = cfg.random_crop, cfg.color_aug     # only without a cache
        self.face_range = cfg.face_crop_range() if not cfg.enable_bucket else None    # sd-scripts: no buckets only
        self.last_geometry: list = []       # each image's (scaled size, box) of the last batch; None: centre cut
        self.to_disk = cfg.cache_latents_to_disk
        # path -> (latents, mirrored latents or None)
        self.cache: dict[Path, tuple[torch.Tensor, torch.Tensor | None]] | None = {} if cfg.cache_latents else None

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        posterior = self.vae.encode(pixels.to(self.device, self.vae.dtype)).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=self.generator).to(posterior.mean)
        return posterior.mean + posterior.std * noise

    def fill_cache(self, plan: Plan, log=print, images: list[PlannedImage] | None = None) -> None:
        """Encode every image the plan uses (or `images`), a bucket at a time; reuse valid .npz files."""
        if self.cache is None:
            return
        images = plan.used_images if images is None else images
        pending = []
        for image in images:
            cached = read_npz(image, self.flip) if self.to_disk else None
            if cached is not None:
                self.cache[image.info.path] = cached
            else:
                pending.append(image)
        by_bucket: dict[tuple[int, int], list[PlannedImage]] = {}
        for image in pending:
            by_bucket.setdefault(image.bucket, []).append(image)
        for bucket in sorted(by_bucket):
            group = by_bucket[bucket]
            for start in range(0, len(group), self.vae_batch):          # vae_batch_size images per VAE call
                self._cache_group(group[start:start + self.vae_batch])
        log(f"latents: {len(images)} images cached ({len(images) - len(pending)} from disk)"
            + (", mirrored too (flip_aug)" if self.flip else ""))

    def _cache_group(self, group: list[PlannedImage]) -> None:
        latents = self.encode(torch.stack([load_pixels(im) for im in group])).float().cpu()
        mirrored = (self.encode(torch.stack([load_pixels(im, flip=True) for im in group])).float().cpu()
                    if self.flip else [None] * len(group))
        for image, latent, flipped in zip(group, latents, mirrored):
            self.cache[image.info.path] = (latent, flipped)
            if self.to_disk:
                write_npz(image, latent, flipped)

    def read_use(self, use: tuple[PlannedImage, bool, random.Random]) -> torch.Tensor:
        image, flip, rng = use
        return load_pixels(image, flip, rng, self.random_crop, self.color_aug, self.face_range, with_geometry=True)

    def loader(self):
        """max_data_loader_n_workers threads reading and decoding uncached images; started on
        first use, and (unless persistent_data_loader_workers) again after each epoch ends."""
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="image-loader")
        return self.pool

    def epoch_done(self) -> None:
        if self.pool is not None and not self.persistent:
            self.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def for_batch(self, batch: Batch, rng: random.Random) -> tuple[torch.Tensor, list[bool]]:
        """(latents × scaling factor, which images are mirrored)."""
        flips = [self.flip and rng.random() < 0.5 for _ in batch.images]
        if self.cache is not None:
            entries = [self.cache[im.info.path] for im in batch.images]
            latents = torch.stack([e[1] if f else e[0] for e, f in zip(entries, flips)]).to(self.device)
            self.last_geometry = [None] * len(flips)
        else:
            # each image its own generator, drawn in order: the same pixels whichever thread reads it
            uses = [(im, f, random.Random(rng.random())) for im, f in zip(batch.images, flips)]
            read = list(self.loader().map(self.read_use, uses)) if self.workers else [self.read_use(u) for u in uses]
            pixels = torch.stack([r[0] for r in read])
            self.last_geometry = [r[1] for r in read]
            n = self.vae_batch          # vae_batch_size images per VAE call, as sd-scripts splits uncached batches
            latents = torch.cat([self.encode(pixels[i:i + n]) for i in range(0, len(pixels), n)]).float()
        return latents * self.scaling, flips


def npz_path(image: PlannedImage) -> Path:
    return image.info.path.with_suffix(".npz")


def _source_key(image: PlannedImage) -> str:
    """What a cached latent depends on: the image file (size, mtime) and its bucket and resize."""
    stat = image.info.path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}:{image.bucket}:{image.resized}"


def read_npz(image: PlannedImage, mirrored: bool = False) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(latents, mirrored latents) from a valid cache file; None when it is missing, stale, or
    lacks the mirrored latents that flip_aug needs."""
    path = npz_path(image)
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["workbench_source"]) != _source_key(image):
                return None
            flipped = torch.from_numpy(data["latents_flipped"].copy()) if mirrored else None
            return torch.from_numpy(data["latents"].copy()), flipped
    except (OSError, KeyError, ValueError):
        return None


def write_npz(image: PlannedImage, latent: torch.Tensor, flipped: torch.Tensor | None = None) -> None:
    """sd-scripts' cache layout (latents, original_size, crop_ltrb, latents_flipped with flip_aug)
    plus the key it is valid for."""
    buffer = io.BytesIO()
    arrays = {"latents": latent.numpy(), "original_size": np.array(image.info.size),
              "crop_ltrb": np.array(sdxl_crop_ltrb(image.info.size, image.bucket), dtype=np.int64),
              "workbench_source": np.array(_source_key(image))}
    if flipped is not None:
        arrays["latents_flipped"] = flipped.numpy()
    np.savez(buffer, **arrays)
    try:
        write_bytes_atomic(npz_path(image), buffer.getvalue())
    except OSError as exc:
        raise DatasetError(f"{npz_path(image)}: cannot write the latent cache ({exc.strerror}); make the folder "
                           "writable or turn off cache_latents_to_disk") from None
