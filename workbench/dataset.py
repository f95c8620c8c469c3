"""Scan kohya-style dataset folders: `<repeats>_<class tokens>` subfolders of images and captions.

Only file headers are read (PIL opens lazily), so 10,000 images scan in about the time of a bare
listing. Folders that don't follow the naming rule are kept in `Dataset.skipped` with the reason,
never dropped silently.
"""
from __future__ import annotations

from workbench.errors import UserError

import os
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class DatasetError(UserError):
    """A dataset that cannot be scanned: the message names the folder or file."""


@dataclass
class ImageInfo:
    path: Path
    size: tuple[int, int]          # (width, height) from the header
    caption: str                   # first line of the caption file, else the class tokens
    has_caption: bool              # a caption file with caption_extension exists


@dataclass
class Subset:
    dir: Path
    repeats: int
    class_tokens: str
    is_reg: bool
    images: list[ImageInfo] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def captioned(self) -> int:
        return sum(1 for im in self.images if im.has_caption)


@dataclass
class Dataset:
    subsets: list[Subset]
    skipped: list[tuple[Path, str]]   # (folder, why it is not a subset)

    @property
    def train(self) -> list[Subset]:
        return [s for s in self.subsets if not s.is_reg]

    @property
    def reg(self) -> list[Subset]:
        return [s for s in self.subsets if s.is_reg]


def parse_subset_name(name: str) -> tuple[int, str] | None:
    """"10_sks dog" -> (10, "sks dog"); "10_a_b" -> (10, "a_b"); names without a leading int ≥ 1 -> None."""
    head, _, rest = name.partition("_")
    try:
        repeats = int(head)
    except ValueError:
        return None
    if repeats < 1:
        return None
    return repeats, rest


def list_images(folder: Path) -> list[Path]:
    """Images directly inside `folder` (not recursive), any letter case, sorted by path."""
    with os.scandir(folder) as entries:
        paths = [Path(e.path) for e in entries
                 if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS]
    return sorted(paths, key=str)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header; raises DatasetError naming the file."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc.__class__.__name__}); "
                           "fix or remove the file") from None


def read_caption(path: Path) -> str | None:
    """First line of a caption file, stripped; None when there is no file."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: caption is not UTF-8 text; re-save it as UTF-8") from None


def caption_path(image: Path, caption_extension: str) -> Path:
    return image.with_name(image.stem + caption_extension)


def scan_subset(folder: Path, repeats: int, class_tokens: str, is_reg: bool,
                caption_extension: str) -> Subset:
    subset = Subset(folder, repeats, class_tokens, is_reg)
    for path in list_images(folder):
        text = read_caption(caption_path(path, caption_extension))
        subset.images.append(ImageInfo(path, image_size(path), text if text is not None else class_tokens,
                                       text is not None))
    return subset


def scan_root(root: str | Path, is_reg: bool, caption_extension: str, what: str) -> Dataset:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{what} {root}: folder not found")
    subsets, skipped = [], []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.is_dir():
            continue
        parsed = parse_subset_name(entry.name)
        if parsed is None:
            skipped.append((Path(entry.path), "not named <repeats>_<class tokens> (e.g. 10_sks dog); it is not used"))
            continue
        subsets.append(scan_subset(Path(entry.path).absolute(), *parsed, is_reg, caption_extension))
    return Dataset(subsets, skipped)


def scan(train_data_dir: str | Path, reg_data_dir: str | Path | None = None,
         caption_extension: str = ".txt") -> Dataset:
    """Train subsets (folder-name order), then reg subsets."""
    if not str(train_data_dir or ""):
        raise DatasetError("train_data_dir: not set; choose the folder that holds your <repeats>_<name> folders")
    data = scan_root(train_data_dir, False, caption_extension, "train_data_dir")
    if reg_data_dir:
        reg = scan_root(reg_data_dir, True, caption_extension, "reg_data_dir")
        data = Dataset(data.subsets + reg.subsets, data.skipped + reg.skipped)
    return data


def scan_config(cfg) -> Dataset:
    return scan(cfg.train_data_dir, cfg.reg_data_dir or None, cfg.caption_extension)
