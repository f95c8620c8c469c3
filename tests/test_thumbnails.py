"""Thumbnail disk cache: made once per image version, small, invalidated when the image changes."""
from __future__ import annotations

import os

import pytest
from PIL import Image

from tests.conftest import make_image
from workbench.dataset import thumbnails
from workbench.errors import UserError
from workbench.workspace import thumbs_dir


def test_thumbnail_is_small_jpeg_in_the_workspace_cache(tmp_path, workspace):
    image = make_image(tmp_path / "big.png", (1200, 600))
    thumb = thumbnails.thumbnail(image)
    assert thumb.is_relative_to(thumbs_dir()) and thumbs_dir().is_relative_to(workspace)
    with Image.open(thumb) as im:
        assert im.format == "JPEG" and im.size == (256, 128)


def test_second_call_is_a_cache_hit(tmp_path):
    image = make_image(tmp_path / "a.jpg", (800, 800))
    first = thumbnails.thumbnail(image, tmp_path / "cache")
    stamp = first.stat().st_mtime_ns
    os.utime(first, ns=(1, 1))          # a rewrite would give the file a new mtime
    assert thumbnails.thumbnail(image, tmp_path / "cache") == first
    assert first.stat().st_mtime_ns == 1 != stamp


def test_changed_image_gets_a_new_thumbnail(tmp_path):
    image = make_image(tmp_path / "a.png", (400, 400), color=(255, 0, 0))
    first = thumbnails.thumbnail(image, tmp_path / "cache")
    make_image(image, (400, 200), color=(0, 0, 255))
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    second = thumbnails.thumbnail(image, tmp_path / "cache")
    assert second != first
    with Image.open(second) as im:
        assert im.size == (256, 128) and im.convert("RGB").getpixel((128, 64))[2] > 200


def test_small_and_transparent_images(tmp_path):
    small = make_image(tmp_path / "s.png", (40, 30))
    with Image.open(thumbnails.thumbnail(small, tmp_path / "cache")) as im:
        assert im.size == (40, 30)                      # never enlarged
    rgba = tmp_path / "t.png"
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(rgba)
    with Image.open(thumbnails.thumbnail(rgba, tmp_path / "cache")) as im:
        assert im.getpixel((10, 10))[0] > 240             # transparency over white


def test_unreadable_image_named_and_page_batch_goes_on(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    good = make_image(tmp_path / "ok.webp", (100, 100))
    with pytest.raises(UserError, match="broken.png: not a readable image"):
        thumbnails.thumbnail(bad, tmp_path / "cache")
    results = thumbnails.thumbnails([bad, good], tmp_path / "cache")
    assert isinstance(results[0], thumbnails.ThumbnailError) and results[1].is_file()


def test_missing_image_named(tmp_path):
    with pytest.raises(UserError, match="gone.png: image not found"):
        thumbnails.thumbnail(tmp_path / "gone.png", tmp_path / "cache")


def test_square_thumbnails_line_up_a_grid_and_keep_the_picture(tmp_path):
    """The Dataset grid asks for squares: a tall and a wide image give cells of one height, the
    picture centred and unscaled beyond the usual thumbnail, the rest the letterbox colour."""
    tall = make_image(tmp_path / "tall.png", (300, 600), color=(255, 0, 0))
    wide = make_image(tmp_path / "wide.jpg", (1000, 500), color=(0, 0, 255))
    with Image.open(thumbnails.thumbnail(tall, tmp_path / "cache", square=True)) as im:
        assert im.size == (256, 256)
        assert im.getpixel((128, 128))[0] > 200                          # the picture, centred
        assert max(abs(a - b) for a, b in zip(im.getpixel((5, 128)), thumbnails.LETTERBOX)) < 8
    with Image.open(thumbnails.thumbnail(wide, tmp_path / "cache", square=True)) as im:
        assert im.size == (256, 256) and im.getpixel((128, 128))[2] > 200
    plain = thumbnails.thumbnail(tall, tmp_path / "cache")                 # its own cache entry
    with Image.open(plain) as im:
        assert im.size == (128, 256)
