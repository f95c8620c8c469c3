"""Loss masks, sd-scripts' two sources (pure PIL, no torch):

- masked_loss with conditioning_data_dir: the mask of `<folder>/cat.png` is the image in that folder
  with the same stem (any image type). sd-scripts reads its red channel, 0 → ignored, 255 → learned,
  and requires it to be the image's size (library/train_util.py, ControlNetDataset).
- alpha_mask: the image's own alpha channel (transparent → ignored); an image without alpha is learned
  everywhere.

Where both are on the conditioning mask wins, as in sd-scripts' apply_masked_loss. The trainer
shrinks the mask to the latent size and multiplies the loss by it; the Dataset page draws it over
the thumbnail (`overlay`).
"""
from __future__ import annotations

import io
from pathlib import Path

from workbench.config.validate import Finding
from workbench.dataset.images import UnreadableImage, open_image, pil_image
from workbench.dataset.scan import IMAGE_EXTENSIONS, list_images
from workbench.dataset.thumbnails import LETTERBOX

OVERLAY_RGB = (230, 40, 40)        # ignored areas are drawn grey-red on the thumbnail
OVERLAY_STRENGTH = 0.5             # at mask 0: half red, half the picture's grey


def mask_source(cfg) -> str:
    """"conditioning" | "alpha" | "": where the run's masks come from."""
    if cfg.masked_loss and cfg.conditioning_data_dir:
        return "conditioning"
    return "alpha" if cfg.alpha_mask else ""


def conditioning_mask_path(image: Path, folder: str | Path) -> Path | None:
    """The mask of `image` in the conditioning folder (same stem, any image type), or None."""
    folder = Path(folder).expanduser()
    for ext in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS):
        candidate = folder / f"{image.stem}{ext}"
        if candidate.is_file():
            return candidate
    return None


def load_mask(image: Path, cfg):
    """The PIL "L" mask (255 = learned) of `image` at the image's size, or None (learned everywhere)."""
    source = mask_source(cfg)
    if source == "conditioning":
        path = conditioning_mask_path(image, cfg.conditioning_data_dir)
        if path is None:
            return None
        with open_image(path) as im:
            return im.convert("RGB").getchannel("R")
    if source == "alpha":
        with open_image(image) as im:
            return im.getchannel("A") if _has_alpha(im) else None
    return None


def _has_alpha(im) -> bool:
    return im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)


def overlay(image: Path, mask, side: int = 256, square: bool = False):
    """An RGB thumbnail (longest side `side`) with the ignored part of `mask` tinted red in
    proportion to how much it is ignored; without a mask the plain thumbnail. `square`: centred
    on a square of the grid's letterbox colour, like the grid's other thumbnails."""
    Image = pil_image()
    with open_image(image) as im:
        rgb = im.convert("RGB")
    rgb.thumbnail((side, side))
    if mask is not None:
        # ignored parts lose their colour and turn red: on a colourful image the learned part still stands out
        washed = Image.blend(rgb.convert("L").convert("RGB"), Image.new("RGB", rgb.size, OVERLAY_RGB), OVERLAY_STRENGTH)
        ignored = mask.resize(rgb.size, Image.Resampling.BILINEAR).point(lambda v: 255 - v)
        rgb = Image.composite(washed, rgb, ignored)
    if not square:
        return rgb
    canvas = Image.new("RGB", (max(rgb.size),) * 2, LETTERBOX)
    canvas.paste(rgb, ((canvas.width - rgb.width) // 2, (canvas.height - rgb.height) // 2))
    return canvas


def overlay_jpeg(image: Path, cfg, side: int = 256) -> bytes:
    """The grid's square mask thumbnail of `image` under the config's mask source, as JPEG bytes."""
    out = io.BytesIO()
    overlay(image, load_mask(image, cfg), side, square=True).save(out, "JPEG", quality=85)
    return out.getvalue()


def mask_findings(cfg, train_images: list[Path]) -> list[Finding]:
    """masked_loss with a conditioning folder: every training image needs a mask of its own size
    (sd-scripts refuses to start otherwise); masks with no image are reported."""
    if mask_source(cfg) != "conditioning" or not Path(cfg.conditioning_data_dir).expanduser().is_dir():
        return []
    missing, wrong_size = [], []
    for image in train_images:
        path = conditioning_mask_path(image, cfg.conditioning_data_dir)
        if path is None:
            missing.append(str(image))
        elif _size(path) != _size(image):
            wrong_size.append(str(path))
    out = []
    if missing:
        out.append(Finding("error", "conditioning_data_dir", f"{len(missing)} training image(s) have no mask with "
                           "the same name in it; add one per image (white: learned, black: ignored)", tuple(missing)))
    if wrong_size:
        out.append(Finding("error", "conditioning_data_dir", f"{len(wrong_size)} mask(s) are unreadable or not the "
                           "size of their image; make each mask a readable image of its image's size", tuple(wrong_size)))
    stems = {p.stem for p in train_images}
    extra = [str(p) for p in list_images(Path(cfg.conditioning_data_dir).expanduser()) if p.stem not in stems]
    if extra:
        out.append(Finding("warning", "conditioning_data_dir", f"{len(extra)} mask(s) match no training image "
                           "(sd-scripts refuses extra masks); remove or rename them", tuple(extra)))
    return out


def _size(path: Path) -> tuple[int, int] | None:
    try:
        with open_image(path) as im:
            return im.size
    except UnreadableImage:       # reported by the image checks (a mask: by the trainer's read)
        return None
