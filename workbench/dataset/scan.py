"""Scan kohya-style dataset folders: `<repeats>_<class tokens>` subfolders of images and captions.

sd-scripts' rules (library/config_util.py and DreamBoothDataset): a subfolder's name is split on
"_", the first token must be an int ≥ 1 (the repeats), the rest joined with "_" are the class
tokens; images are listed directly inside it (not recursive), sorted by path; the caption is the
first line of the file with caption_extension beside the image, else the class tokens.
Only file headers are read (PIL opens lazily). Folders that don't follow the naming rule are kept
in `Dataset.skipped` with the reason, never dropped silently.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from workbench.dataset.images import UnreadableImage, open_image
from workbench.errors import UserError

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
    # (file, what is wrong) of a lenient scan: images left out, captions read with U+FFFD for bad bytes
    problems: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def train(self) -> list[Subset]:
        return [s for s in self.subsets if not s.is_reg]

    @property
    def reg(self) -> list[Subset]:
        return [s for s in self.subsets if s.is_reg]


@dataclass(frozen=True)
class SubsetFolder:
    """A `<repeats>_<class tokens>` folder before its images are read."""
    dir: Path
    repeats: int
    class_tokens: str
    is_reg: bool


def parse_subset_name(name: str) -> tuple[int, str] | None:
    """"10_sks dog" -> (10, "sks dog"); "10_a_b" -> (10, "a_b"); "10" -> (10, "");
    names without a leading int ≥ 1 -> None."""
    head, _, rest = name.partition("_")
    try:
        repeats = int(head)
    except ValueError:
        return None
    if repeats < 1:
        return None
    return repeats, rest


def why_not_subset(name: str) -> str:
    head = name.partition("_")[0]
    if head.strip().lstrip("+-").isdigit():
        return f"repeats {head} is below 1, so sd-scripts ignores it; rename it to 1_{name.partition('_')[2]} or more"
    return "not named <repeats>_<class tokens> (e.g. 10_sks dog), so it is not used; rename it"


def is_image_name(name: str) -> bool:
    # glob("*.png") in sd-scripts never matches hidden files (e.g. macOS "._x.png" forks)
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(folder: Path) -> list[Path]:
    """Images directly inside `folder` (not recursive), any letter case, sorted by path."""
    return [Path(p) for p in _image_paths(folder)]


def _image_paths(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(e.path for e in entries if is_image_name(e.name) and e.is_file())
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot list the folder ({exc.strerror})") from None


def image_size(path: Path | str) -> tuple[int, int]:
    """(width, height) from the file header; raises DatasetError naming the file."""
    try:
        with open_image(path) as im:
            return im.size
    except UnreadableImage as exc:
        raise DatasetError(f"{exc} (workbench check lists every bad file)") from None


def read_caption(path: Path | str) -> str | None:
    """First line of a caption file, stripped; None when there is no file."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: caption is not UTF-8 text; re-save it as UTF-8") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the caption ({exc.strerror})") from None


def caption_path(image: Path, caption_extension: str) -> Path:
    """sd-scripts: splitext(image)[0] + caption_extension."""
    return Path(os.path.splitext(image)[0] + caption_extension)


def scan_subset(folder: SubsetFolder, caption_extension: str, problems: list | None = None) -> Subset:
    """The subset's images and captions. A bad image or caption raises DatasetError, or, with a
    `problems` list (the Dataset page: show everything, mark the bad item), is appended to it:
    the image is left out, the caption read with U+FFFD for the bytes that are not UTF-8."""
    subset = Subset(folder.dir, folder.repeats, folder.class_tokens, folder.is_reg)
    for path in _image_paths(folder.dir):       # str paths: a Path per caption costs 10% of a scan
        caption_file = os.path.splitext(path)[0] + caption_extension
        try:
            size = image_size(path)
        except DatasetError as exc:
            if problems is None:
                raise
            problems.append((Path(path), str(exc)))
            continue
        try:
            text = read_caption(caption_file)
        except DatasetError as exc:
            if problems is None:
                raise
            problems.append((Path(caption_file), str(exc)))
            text = lossy_caption(caption_file)
        caption = text if text is not None else folder.class_tokens
        subset.images.append(ImageInfo(Path(path), size, caption, text is not None))
    return subset


def lossy_caption(path: Path | str) -> str:
    """A caption's first line with every byte that is not UTF-8 shown as U+FFFD."""
    try:
        with open(path, "rb") as f:
            return f.readline().decode("utf-8", errors="replace").strip()
    except OSError:
        return ""


def find_subset_folders(root: str | Path, is_reg: bool, what: str) -> tuple[list[SubsetFolder], list[tuple[Path, str]]]:
    """The subset folders of a train or reg root in folder-name order, and the folders skipped."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{what} {root}: folder not found; choose the folder that holds your "
                           "<repeats>_<name> folders")
    folders, skipped = [], []
    try:
        with os.scandir(root) as entries:
            dirs = sorted((e for e in entries if e.is_dir()), key=lambda e: e.name)
    except OSError as exc:
        raise DatasetError(f"{what} {root}: cannot list the folder ({exc.strerror})") from None
    for entry in dirs:
        parsed = parse_subset_name(entry.name)
        if parsed is None:
            skipped.append((Path(entry.path), why_not_subset(entry.name)))
        else:
            folders.append(SubsetFolder(Path(entry.path).absolute(), *parsed, is_reg))
    return folders, skipped


def subset_folders(train_data_dir, reg_data_dir=None) -> tuple[list[SubsetFolder], list[tuple[Path, str]]]:
    """Train subset folders, then reg ones, with every skipped folder."""
    if not str(train_data_dir or ""):
        raise DatasetError("train_data_dir: not set; choose the folder that holds your <repeats>_<name> folders")
    folders, skipped = find_subset_folders(train_data_dir, False, "train_data_dir")
    if reg_data_dir:
        reg, reg_skipped = find_subset_folders(reg_data_dir, True, "reg_data_dir")
        folders, skipped = folders + reg, skipped + reg_skipped
    return folders, skipped


def scan(train_data_dir: str | Path, reg_data_dir: str | Path | None = None,
         caption_extension: str = ".txt", lenient: bool = False) -> Dataset:
    """Train subsets (folder-name order), then reg subsets, with image sizes and captions;
    `lenient`: bad files become Dataset.problems instead of an error (see scan_subset)."""
    folders, skipped = subset_folders(train_data_dir, reg_data_dir)
    problems = [] if lenient else None
    return Dataset([scan_subset(f, caption_extension, problems) for f in folders], skipped, problems or [])


def scan_config(cfg) -> Dataset:
    return scan(cfg.train_data_dir, cfg.reg_data_dir or None, cfg.caption_extension)
