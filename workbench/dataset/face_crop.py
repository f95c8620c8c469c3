"""face_crop_aug_range: sd-scripts' crop around a face (library/train_util.py, crop_target), pure.

The face comes from the file name: `<anything>_<centre x>_<centre y>_<width>_<height>.<ext>`, in
pixels of the original image. The image is scaled so the face's larger side is between
resolution_side / high and resolution_side / low (drawn at random between the two; never above
1, never so small the image no longer covers the resolution), then cut to the resolution with the
face at the centre, moved a little at random (or a lot with random_crop) and kept inside the image.
Only without buckets, as in sd-scripts; an image without face info is cut as usual.
"""
from __future__ import annotations

import random
from pathlib import Path


def face_from_name(path: Path) -> tuple[int, int, int, int] | None:
    """(centre x, centre y, width, height) from the last four "_"-parts of the stem, or None."""
    parts = Path(path).stem.split("_")
    if len(parts) < 5:
        return None
    try:
        cx, cy, w, h = (int(p) for p in parts[-4:])
    except ValueError:
        return None
    return (cx, cy, w, h) if cx > 0 else None       # sd-scripts: a centre x of 0 means no face


def face_scale(size: tuple[int, int], target: tuple[int, int], face_side: int,
               face_range: tuple[float, float], rng: random.Random) -> float:
    """The resize factor: the face's side becomes about min(target) / range, within [cover, 1]."""
    (w, h), (tw, th) = size, target
    short = min(tw, th)
    cover = max(th / h, tw / w)                # the smallest factor that still covers the target
    low = min(1.0, max(cover, short / (face_side * face_range[1])))
    high = min(1.0, max(low, short / (face_side * face_range[0])))
    return low if low >= high else rng.uniform(low, high)


def face_crop_box(size: tuple[int, int], target: tuple[int, int], face: tuple[int, int, int, int],
                  face_range: tuple[float, float], rng: random.Random,
                  random_crop: bool = False) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """((scaled width, scaled height), (left, top, right, bottom) in the scaled image)."""
    if tuple(size) == tuple(target):
        return tuple(size), (0, 0, *size)
    cx, cy, fw, fh = face
    face_side = max(fw, fh, 1)
    scale = face_scale(size, target, face_side, face_range, rng)
    scaled = (int(size[0] * scale + 0.5), int(size[1] * scale + 0.5))
    centre = (int(cx * scale + 0.5), int(cy * scale + 0.5))
    starts = []
    for axis in (1, 0):                       # sd-scripts draws height first, then width
        length, wanted, at = scaled[axis], target[axis], centre[axis]
        start = at - wanted // 2
        if random_crop:                        # off the centre now and then, to show more background
            reach = max(length - at, at)
            start += rng.randint(0, reach) + rng.randint(0, reach) - reach
        elif face_range[0] != face_range[1] and face_side > min(target) // 10 and face_side >= 40:
            start += rng.randint(-face_side // 20, face_side // 20)
        starts.append(max(0, min(start, length - wanted)))
    top, left = starts
    return scaled, (left, top, left + target[0], top + target[1])
