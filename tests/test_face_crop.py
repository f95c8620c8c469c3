"""face_crop_aug_range: the face from the file name, sd-scripts' crop arithmetic, its config rules
and the pixels the trainer reads."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image

from workbench.config.schema import TrainConfig
from workbench.config.validate import validate
from workbench.dataset.face_crop import face_crop_box, face_from_name


def test_face_from_the_file_name():
    assert face_from_name(Path("/d/girl_01_200_150_40_60.png")) == (200, 150, 40, 60)
    assert face_from_name(Path("/d/girl_200_150_40_60.png")) == (200, 150, 40, 60)
    assert face_from_name(Path("/d/200_150_40_60.png")) is None            # four parts: no name before them
    assert face_from_name(Path("/d/a_b_c_d_e.png")) is None
    assert face_from_name(Path("/d/x_0_150_40_60.png")) is None            # sd-scripts: centre x 0 = no face


def test_crop_puts_the_face_at_the_centre_at_the_asked_scale():
    # 256² image, face 40 px at (200, 200), target 64²: range 2,2 -> the face becomes 64/2 = 32 px (scale 0.8)
    scaled, box = face_crop_box((256, 256), (64, 64), (200, 200, 40, 40), (2.0, 2.0), random.Random(0))
    assert scaled == (205, 205) and box == (128, 128, 192, 192)           # face centre 160 in the middle
    # a face near the edge: the box stays inside the image
    scaled, box = face_crop_box((256, 256), (64, 64), (250, 5, 40, 40), (2.0, 2.0), random.Random(0))
    assert box == (scaled[0] - 64, 0, scaled[0], 64)
    # never scaled up, never below covering the target
    scaled, _ = face_crop_box((256, 128), (64, 64), (100, 60, 4, 4), (1.0, 1.0), random.Random(0))
    assert scaled == (256, 128)
    scaled, _ = face_crop_box((256, 128), (64, 64), (100, 60, 200, 200), (4.0, 4.0), random.Random(0))
    assert scaled == (128, 64)
    # a range draws the scale: the 64-px face becomes 64/2 to 64/1 px, so the image 256 to 512 px
    sizes = {face_crop_box((512, 512), (64, 64), (256, 256, 64, 64), (1.0, 2.0), random.Random(i))[0]
             for i in range(20)}
    assert len(sizes) > 5 and all(256 <= s[0] <= 512 for s in sizes)


def test_config_rules():
    def found(**values):
        return {(f.level, f.field) for f in validate(TrainConfig(**values))}
    assert ("error", "face_crop_aug_range") in found(face_crop_aug_range="2.0", enable_bucket=False, cache_latents=False)
    assert ("error", "face_crop_aug_range") in found(face_crop_aug_range="4,2", enable_bucket=False, cache_latents=False)
    assert ("note", "face_crop_aug_range") in found(face_crop_aug_range="2,4")                  # buckets: ignored
    assert ("error", "face_crop_aug_range") in found(face_crop_aug_range="2,4", enable_bucket=False)   # cached
    assert not {f for f in found(face_crop_aug_range="2,4", enable_bucket=False, cache_latents=False)
                if f[1] == "face_crop_aug_range"}
    assert TrainConfig(face_crop_aug_range=" 2, 4").face_crop_range() == (2.0, 4.0)


def test_the_trainer_reads_the_face_crop(tmp_path):
    from trainer.data import load_pixels
    path = tmp_path / "face_200_200_40_40.png"
    im = Image.new("RGB", (256, 256), (0, 0, 255))
    im.paste((255, 0, 0), (180, 180, 220, 220))          # the "face": a red square
    im.save(path)
    image = planned(path, (256, 256), bucket=(64, 64))
    centre = load_pixels(image)
    face = load_pixels(image, rng=random.Random(0), face_range=(2.0, 2.0))
    assert centre.shape == face.shape == (3, 64, 64)
    assert float(face[0, 32, 32]) == pytest.approx(1.0, abs=0.02)           # red at the centre of the face crop
    assert float(centre[0, 32, 32]) == pytest.approx(-1.0, abs=0.02)        # blue at the centre of the plain one


def planned(path: Path, size, bucket):
    """The planned use of one image, as the plan makes it without buckets (cover, then cut)."""
    from types import SimpleNamespace

    from workbench.planning.buckets import cover_size
    info = SimpleNamespace(path=path, size=size)
    return SimpleNamespace(info=info, bucket=bucket, resized=cover_size(*size, bucket))
