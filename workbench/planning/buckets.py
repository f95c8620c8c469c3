"""Aspect-ratio buckets, with sd-scripts' rules (library/model_util.py and BucketManager).

Sizes are (width, height) in pixels. A bucket is the size a batch is trained at; an image is
scaled to cover its bucket and centre-cropped.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from workbench.errors import UserError


class BucketError(UserError):
    """An image size no bucket can hold; the plan adds the file name."""


@dataclass(frozen=True)
class BucketSpec:
    resolution: tuple[int, int]
    enable_bucket: bool = True
    min_reso: int = 256
    max_reso: int = 1024
    steps: int = 64
    no_upscale: bool = False

    @property
    def area(self) -> int:
        return self.resolution[0] * self.resolution[1]

    @classmethod
    def from_config(cls, cfg) -> "BucketSpec":
        low, high = bucket_range(cfg.min_bucket_reso, cfg.max_bucket_reso, cfg.bucket_reso_steps)
        return cls(cfg.resolution_wh(), cfg.enable_bucket, low, high, cfg.bucket_reso_steps, cfg.bucket_no_upscale)


def bucket_range(min_reso: int, max_reso: int, steps: int) -> tuple[int, int]:
    """sd-scripts makes min/max bucket reso multiples of bucket_reso_steps: min rounded down,
    max rounded up (200, 1000 with steps 64 -> 192, 1024)."""
    if steps <= 0:            # refused by validation; don't divide by it here
        return min_reso, max_reso
    return min_reso - min_reso % steps, max_reso + (-max_reso % steps)


@dataclass(frozen=True)
class Assignment:
    bucket: tuple[int, int]
    resized: tuple[int, int]

    @property
    def crop(self) -> tuple[int, int]:
        """Pixels cut away (width, height), split evenly between both sides."""
        return self.resized[0] - self.bucket[0], self.resized[1] - self.bucket[1]


def make_bucket_resolutions(resolution: tuple[int, int], min_size: int, max_size: int,
                            divisible: int) -> list[tuple[int, int]]:
    """The predefined bucket list: the square of the same area, then every (w, h) and (h, w)
    with w in [min, max] stepping by `divisible` and h the largest multiple that keeps w·h ≤ area."""
    area = resolution[0] * resolution[1]
    side = int(math.sqrt(area) // divisible) * divisible
    resos = {(side, side)}
    for width in range(min_size, max_size + 1, divisible):
        height = min(max_size, int((area // width) // divisible) * divisible)
        if height >= min_size:
            resos.add((width, height))
            resos.add((height, width))
    return sorted(resos)


class Bucketer:
    """Assigns image sizes to buckets. Build once per plan: the bucket list and its aspect
    ratios are precomputed, and each distinct image size is assigned once (datasets repeat sizes)."""

    def __init__(self, spec: BucketSpec):
        self.spec = spec
        if not spec.enable_bucket:
            self.resos = [spec.resolution]
        elif spec.no_upscale:
            self.resos = []
        else:
            self.resos = make_bucket_resolutions(spec.resolution, spec.min_reso, spec.max_reso, spec.steps)
        self.reso_set = set(self.resos)
        self._by_aspect = _first_bucket_per_aspect(self.resos)
        self._aspects = [aspect for aspect, _, _ in self._by_aspect]
        self._memo: dict[tuple[int, int], Assignment] = {}

    def assign(self, width: int, height: int) -> Assignment:
        key = (width, height)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self._assign(width, height)
        return found

    def _assign(self, width: int, height: int) -> Assignment:
        if self.spec.enable_bucket and self.spec.no_upscale:
            return self._assign_no_upscale(width, height)
        reso = (width, height) if (width, height) in self.reso_set else self._nearest_aspect(width / height)
        return Assignment(reso, cover_size(width, height, reso))

    def _nearest_aspect(self, aspect: float) -> tuple[int, int]:
        """The bucket with the smallest |bucket aspect − aspect|; ties go to the first bucket in
        sorted order (numpy's argmin in sd-scripts). Only the two aspects around `aspect` can win."""
        i = bisect.bisect_left(self._aspects, aspect)
        candidates = [self._by_aspect[j] for j in (i - 1, i) if 0 <= j < len(self._by_aspect)]
        _, _, reso = min(candidates, key=lambda c: (abs(c[0] - aspect), c[1]))
        return reso

    def _round_to_steps(self, x: float) -> int:
        x = int(x + 0.5)
        return x - x % self.spec.steps

    def _assign_no_upscale(self, width: int, height: int) -> Assignment:
        area, steps = self.spec.area, self.spec.steps
        aspect = width / height
        resized = (width, height)
        if width * height > area:
            rw = math.sqrt(area * aspect)
            rh = area / rw
            bw, bh = self._round_to_steps(rw), self._round_to_steps(rh)
            if bh == 0 or self._round_to_steps(bw / aspect) == 0:
                raise BucketError(f"{width}×{height} is too narrow for bucket_no_upscale: a side rounds "
                                  f"to 0 at {steps} px steps (sd-scripts divides by zero here); crop it")
            r1 = bw / self._round_to_steps(bw / aspect)
            r2 = self._round_to_steps(bh * aspect) / bh
            if abs(r1 - aspect) < abs(r2 - aspect):
                resized = (bw, int(bw / aspect + 0.5))
            else:
                resized = (int(bh * aspect + 0.5), bh)
        bucket = (resized[0] - resized[0] % steps, resized[1] - resized[1] % steps)
        if min(bucket) == 0:
            raise BucketError(f"{width}×{height} has a side below bucket_reso_steps ({steps} px), so its "
                              "bucket would be empty; remove the image or turn bucket_no_upscale off")
        return Assignment(bucket, resized)


def _first_bucket_per_aspect(resos: list[tuple[int, int]]) -> list[tuple[float, int, tuple[int, int]]]:
    """[(aspect, index in sorted order, bucket)] sorted by aspect, one per distinct aspect: the
    first bucket in sorted order, which is the one a tie goes to."""
    first: dict[float, tuple[int, tuple[int, int]]] = {}
    for index, (w, h) in enumerate(resos):
        first.setdefault(w / h, (index, (w, h)))
    return sorted((aspect, index, reso) for aspect, (index, reso) in first.items())


def cover_size(width: int, height: int, bucket: tuple[int, int]) -> tuple[int, int]:
    """Scale (width, height) so it covers the bucket: match heights when the image is wider
    than the bucket, else widths; rounded half up as sd-scripts does."""
    if width / height > bucket[0] / bucket[1]:
        scale = bucket[1] / height
    else:
        scale = bucket[0] / width
    return int(width * scale + 0.5), int(height * scale + 0.5)


def crop_box(resized: tuple[int, int], bucket: tuple[int, int]) -> tuple[int, int, int, int]:
    """The centre crop (left, top, right, bottom) of a resized image down to its bucket."""
    left = (resized[0] - bucket[0]) // 2
    top = (resized[1] - bucket[1]) // 2
    return left, top, left + bucket[0], top + bucket[1]


def sdxl_crop_ltrb(image_size: tuple[int, int], bucket: tuple[int, int]) -> tuple[float, float, float, float]:
    """The crop box sd-scripts reports to SDXL (and stores in its latent cache): where the image
    would sit scaled to FIT inside the bucket and centred, "as Stability AI's preprocessing" — not
    the pixels the cover-crop really cut. (left, top, right, bottom) in bucket pixels."""
    (w, h), (bucket_w, bucket_h) = image_size, bucket
    aspect = w / h
    if bucket_w / bucket_h > aspect:        # the bucket is wider: fit the height
        fit_w, fit_h = bucket_h * aspect, bucket_h
    else:
        fit_w, fit_h = bucket_w, bucket_w / aspect
    left, top = (bucket_w - fit_w) // 2, (bucket_h - fit_h) // 2
    return left, top, left + fit_w, top + fit_h
