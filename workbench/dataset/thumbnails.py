"""Small JPEG thumbnails in a disk cache under the workspace (thumbs/).

The grid shows thumbnails, never the originals: decoding a 4,000-pixel photo on every rerun is
what makes a Streamlit gallery crawl. A thumbnail is keyed on the image's absolute path, mtime and
size, so an edited or replaced image gets a new one and an unchanged image is decoded once, ever.
"""
from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from workbench.dataset.images import UnreadableImage, open_image
from workbench.errors import UserError
from workbench.fileio import write_bytes_atomic
from workbench.workspace import thumbs_dir

THUMB_SIDE = 256        # pixels, the longest side of a thumbnail
JPEG_QUALITY = 85
LETTERBOX = (240, 242, 246)     # RGB around a squared thumbnail: Streamlit's light panel colour


class ThumbnailError(UserError):
    """An image that cannot be decoded: the message names the file."""


def default_cache_dir() -> Path:
    return thumbs_dir()


def cache_path(image: Path, cache_dir: Path, side: int = THUMB_SIDE, square: bool = False) -> Path:
    """Where the thumbnail of the image's current version lives (it may not exist yet)."""
    image = Path(image).absolute()
    try:
        stat = image.stat()
    except FileNotFoundError:
        raise ThumbnailError(f"{image}: image not found (moved or renamed?); rescan the dataset") from None
    key = hashlib.sha1(f"{image}\0{stat.st_mtime_ns}\0{stat.st_size}\0{side}\0{square}".encode()).hexdigest()
    return Path(cache_dir) / key[:2] / f"{key}.jpg"


def render(image: Path, side: int = THUMB_SIDE, square: bool = False) -> bytes:
    """JPEG bytes of the image shrunk to fit side×side (aspect kept, never enlarged); `square`
    centres it on a square of LETTERBOX colour, so a grid of them lines up in even rows."""
    try:
        with open_image(image) as im:
            im.draft("RGB", (side, side))        # JPEG: decode at 1/2, 1/4 or 1/8 scale directly
            im.thumbnail((side, side))
            rgb = _letterboxed(_flatten(im)) if square else _flatten(im)
    except UnreadableImage as exc:
        raise ThumbnailError(str(exc)) from None
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _letterboxed(im):
    from PIL import Image
    side = max(im.size)
    canvas = Image.new("RGB", (side, side), LETTERBOX)
    canvas.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    return canvas


def _flatten(im):
    """RGB for JPEG; transparency shown over white, as image viewers do."""
    from PIL import Image
    if im.mode in ("RGBA", "LA", "P", "PA"):
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return im.convert("RGB")


def thumbnail(image: Path, cache_dir: Path | None = None, side: int = THUMB_SIDE, square: bool = False) -> Path:
    """The cached thumbnail file of `image`, made on the first call for this version of it."""
    path = cache_path(image, Path(cache_dir or default_cache_dir()), side, square)
    if not path.is_file():
        write_bytes_atomic(path, render(image, side, square))
    return path


def thumbnails(images: list[Path], cache_dir: Path | None = None, side: int = THUMB_SIDE,
               square: bool = False) -> list[Path | ThumbnailError]:
    """Thumbnails of a page of images, made two at a time (PIL decodes outside the GIL); an
    unreadable image gives its ThumbnailError in its place instead of failing the page."""
    def one(image: Path) -> Path | ThumbnailError:
        try:
            return thumbnail(image, cache_dir, side, square)
        except ThumbnailError as exc:
            return exc
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, images))
