"""Aspect-ratio buckets, with sd-scripts' rules (library/model_util.py and BucketManager).

Sizes are (width, height) in pixels. A bucket is the size a batch is trained at; an image is
scaled to cover its bucket and centre-cropped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


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
        return cls(cfg.resolution_wh(), cfg.enable_bucket, cfg.min_bucket_reso,
                   cfg.max_bucket_reso, cfg.bucket_reso_steps, cfg.bucket_no_upscale)


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
    """Assigns image sizes to buckets. Build once per plan: the bucket list is precomputed."""

    def __init__(self, spec: BucketSpec):
        self.spec = spec
        if not spec.enable_bucket:
            self.resos = [spec.resolution]
        elif spec.no_upscale:
            self.resos = []
        else:
            self.resos = make_bucket_resolutions(spec.resolution, spec.min_reso, spec.max_reso, spec.steps)
        self.reso_set = set(self.resos)
        self.aspects = [w / h for w, h in self.resos]

    def assign(self, width: int, height: int) -> Assignment:
        if self.spec.enable_bucket and self.spec.no_upscale:
            return self._assign_no_upscale(width, height)
        reso = (width, height) if (width, height) in self.reso_set else self._nearest_aspect(width / height)
        return Assignment(reso, cover_size(width, height, reso))

    def _nearest_aspect(self, aspect: float) -> tuple[int, int]:
        # smallest |bucket aspect − image aspect|; ties go to the first bucket in sorted order
        errors = [abs(a - aspect) for a in self.aspects]
        return self.resos[errors.index(min(errors))]

    def _round_to_steps(self, x: float) -> int:
        x = int(x + 0.5)
        return x - x % self.spec.steps

    def _assign_no_upscale(self, width: int, height: int) -> Assignment:
        area, steps = self.spec.area, self.spec.steps
        aspect = width / height
        if width * height > area:
            rw = math.sqrt(area * aspect)
            rh = area / rw
            bw = self._round_to_steps(rw)
            r1 = bw / self._round_to_steps(bw / aspect)
            bh = self._round_to_steps(rh)
            r2 = self._round_to_steps(bh * aspect) / bh
            if abs(r1 - aspect) < abs(r2 - aspect):
                resized = (bw, int(bw / aspect + 0.5))
            else:
                resized = (int(bh * aspect + 0.5), bh)
        else:
            resized = (width, height)
        bucket = (resized[0] - resized[0] % steps, resized[1] - resized[1] % steps)
        return Assignment(bucket, resized)


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
