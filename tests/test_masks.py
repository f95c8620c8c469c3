"""Loss masks (workbench/dataset/masks.py): where they come from, the preflight on a mask folder, the
Dataset page's overlay, and the config rules of masked_loss / alpha_mask."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from workbench.config.schema import TrainConfig, new_config
from workbench.config.validate import validate
from workbench.dataset.masks import OVERLAY_RGB, load_mask, mask_findings, mask_source, overlay


def rgba(path: Path, size=(64, 32), transparent_left=True) -> Path:
    """Green, its left half transparent."""
    im = Image.new("RGBA", size, (0, 200, 0, 255))
    if transparent_left:
        im.paste((0, 200, 0, 0), (0, 0, size[0] // 2, size[1]))
    im.save(path)
    return path


def mask_image(path: Path, size=(64, 32), white_right=True) -> Path:
    """Black, its right half white (the red channel is what counts)."""
    im = Image.new("RGB", size, (0, 0, 0))
    if white_right:
        im.paste((255, 0, 0), (size[0] // 2, 0, size[0], size[1]))
    im.save(path)
    return path


def test_where_masks_come_from():
    assert mask_source(TrainConfig()) == ""
    assert mask_source(TrainConfig(alpha_mask=True)) == "alpha"                     # masks the loss on its own
    assert mask_source(TrainConfig(masked_loss=True, conditioning_data_dir="/m")) == "conditioning"
    assert mask_source(TrainConfig(masked_loss=True, conditioning_data_dir="/m", alpha_mask=True)) == "conditioning"
    assert mask_source(TrainConfig(conditioning_data_dir="/m")) == ""               # only read with masked_loss


def test_alpha_and_conditioning_masks_are_read(tmp_path):
    image = rgba(tmp_path / "cat.png")
    alpha = load_mask(image, TrainConfig(alpha_mask=True))
    assert alpha.size == (64, 32) and alpha.getpixel((0, 0)) == 0 and alpha.getpixel((63, 0)) == 255
    plain = tmp_path / "plain.jpg"
    Image.new("RGB", (8, 8)).save(plain)
    assert load_mask(plain, TrainConfig(alpha_mask=True)) is None           # no alpha: learned everywhere
    masks = tmp_path / "masks"
    masks.mkdir()
    mask_image(masks / "cat.webp")                                          # same stem, any image type
    cfg = TrainConfig(masked_loss=True, conditioning_data_dir=str(masks))
    red = load_mask(image, cfg)
    assert red.getpixel((0, 0)) == 0 and red.getpixel((63, 0)) == 255


def test_overlay_tints_the_ignored_part_red(tmp_path):
    image = rgba(tmp_path / "cat.png", size=(128, 64))
    drawn = overlay(image, load_mask(image, TrainConfig(alpha_mask=True)), side=64)
    assert drawn.size == (64, 32)
    left, right = drawn.getpixel((4, 16)), drawn.getpixel((60, 16))
    assert right == (0, 200, 0)                                             # learned: untouched
    assert left[0] > 100 and left[0] > left[1]                             # ignored: tinted towards red
    assert overlay(image, None, side=64).getpixel((4, 16)) != left          # no mask: the plain thumbnail
    assert OVERLAY_RGB[0] > OVERLAY_RGB[1]


def test_mask_folder_preflight(tmp_path):
    images = [rgba(tmp_path / f"img{i}.png") for i in range(3)]
    masks = tmp_path / "masks"
    masks.mkdir()
    mask_image(masks / "img0.png")
    mask_image(masks / "img1.png", size=(32, 32))                          # not the image's size
    mask_image(masks / "stray.png")                                        # no image of that name
    cfg = TrainConfig(masked_loss=True, conditioning_data_dir=str(masks))
    found = {f.message.split(" ")[1]: f for f in mask_findings(cfg, images)}
    by_level = sorted((f.level, f.files) for f in mask_findings(cfg, images))
    assert by_level == [("error", (str(images[2]),)), ("error", (str(masks / "img1.png"),)),
                        ("warning", (str(masks / "stray.png"),))]
    assert found and all(f.field == "conditioning_data_dir" for f in found.values())
    assert mask_findings(cfg.replace(masked_loss=False), images) == []


def test_config_rules_of_masks():
    def fields(cfg):
        return {(f.level, f.field) for f in validate(cfg)}
    assert ("error", "masked_loss") in fields(TrainConfig(masked_loss=True))
    assert ("error", "masked_loss") not in fields(TrainConfig(masked_loss=True, alpha_mask=True))
    assert ("note", "conditioning_data_dir") in fields(TrainConfig(conditioning_data_dir="/tmp"))
    assert ("error", "conditioning_data_dir") in fields(TrainConfig(masked_loss=True, conditioning_data_dir="/nope/x"))
    # masks are read apart from the latents, so caching them is fine (sd-scripts caches alpha masks too)
    assert not [f for f in validate(new_config(alpha_mask=True, cache_latents=True)) if f.level == "error"]


def test_masks_are_cut_and_mirrored_exactly_as_their_pixels(tmp_path):
    """random_crop, flips and a resize: the trainer's mask of each use lines up with its pixels."""
    import random

    from tests.test_face_crop import planned
    from trainer.data import load_pixels
    from trainer.masks import Masks
    im = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    im.paste((255, 255, 255, 255), (30, 10, 90, 70))             # opaque white where the loss looks
    im.save(tmp_path / "a.png")
    image = planned(tmp_path / "a.png", (200, 100), bucket=(64, 64))
    masks = Masks(TrainConfig(alpha_mask=True), "cpu")
    for seed in range(6):
        flip = seed % 2 == 1
        pixels, geometry = load_pixels(image, flip, random.Random(seed), random_crop=True, with_geometry=True)
        mask = masks.for_images([image], [flip], [geometry])[0]
        white = (pixels[0] > 0).float()
        assert mask.shape == white.shape and float((mask.round() - white).abs().mean()) < 0.03
    centre = masks.for_images([image, image], [False, True], [None, None])
    assert torch_equal(centre[1], centre[0].flip(-1))             # a cached use: centre cut, mirrored with it


def torch_equal(a, b) -> bool:
    import torch
    return torch.equal(a, b)
