"""The server-side folder browser's model, typed-path validation, the dataset's change
fingerprint, and renaming a subset folder to change its repeats.

The app runs headless and often on a remote GPU box, so folders are browsed on the server (no
tkinter dialog). Nothing here deletes or moves an image: the only write is the rename of a
`<repeats>_<class tokens>` folder, which refuses to land on an existing folder.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from workbench.dataset.scan import list_images, parse_subset_name
from workbench.errors import UserError


@dataclass(frozen=True)
class Subfolder:
    path: Path
    repeats: int | None      # from a <repeats>_<class tokens> name, else None
    images: int | None       # images directly inside (counted for subset folders only)

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class FolderListing:
    path: Path
    parent: Path | None      # None at the file-system root
    subfolders: list[Subfolder]


def resolve_folder(text: str, what: str) -> Path:
    """A typed folder path, ~ expanded and made absolute; UserError naming `what` when it is
    empty, missing or not a folder."""
    if not str(text).strip():
        raise UserError(f"{what}: enter a folder path")
    path = Path(str(text).strip()).expanduser().absolute()
    if not path.exists():
        raise UserError(f"{what}: {path} does not exist; check the path or pick it in the browser")
    if not path.is_dir():
        raise UserError(f"{what}: {path} is a file; give the folder that holds it")
    return path


def list_folder(path: str | Path) -> FolderListing:
    """Visible subfolders of `path`, sorted by name; subset folders come with their image count."""
    folder = resolve_folder(str(path), "folder")
    try:
        with os.scandir(folder) as entries:
            dirs = sorted((Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".")),
                          key=lambda p: p.name.lower())
    except PermissionError:
        raise UserError(f"{folder}: no permission to list this folder") from None
    subfolders = [_describe(d) for d in dirs]
    parent = folder.parent if folder.parent != folder else None
    return FolderListing(folder, parent, subfolders)


def _describe(folder: Path) -> Subfolder:
    parsed = parse_subset_name(folder.name)
    if parsed is None:
        return Subfolder(folder, None, None)
    try:
        count = len(list_images(folder))
    except PermissionError:
        count = None
    return Subfolder(folder, parsed[0], count)


def fingerprint(roots: list[str | Path]) -> tuple:
    """A token that changes when an image or caption is added, removed, replaced or edited
    in place anywhere in the dataset: per root and per direct subfolder, the folder's mtime, its
    file count and the sum of its files' mtimes. Folder mtimes alone miss a caption rewritten in
    place by another tool (the folder does not change), so the page would show the old caption
    even after a refresh. One stat per file: about 30 ms for 5,000 images with their captions."""
    parts = []
    for root in roots:
        root = Path(root).expanduser()
        if not root.is_dir():
            parts.append((str(root), None))
            continue
        parts.append(_folder_stamp(str(root)))
        with os.scandir(root) as entries:
            parts.extend(_folder_stamp(e.path) for e in entries if e.is_dir())
    return tuple(sorted(parts, key=lambda p: p[0]))


def _folder_stamp(folder: str) -> tuple:
    """(folder, its mtime, files directly inside, sum of their mtimes in ns)."""
    count, mtimes = 0, 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file():
                    count += 1
                    mtimes += entry.stat().st_mtime_ns
        return folder, os.stat(folder).st_mtime_ns, count, mtimes
    except OSError:           # removed or unreadable meanwhile: the scan says why
        return folder, None, 0, 0


def repeats_folder_name(folder: Path, repeats: int) -> str:
    parsed = parse_subset_name(folder.name)
    if parsed is None:
        raise UserError(f"{folder}: not named <repeats>_<class tokens>, so it has no repeats to change")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise UserError(f"repeats: {repeats!r} — give a whole number of 1 or more")
    return f"{repeats}_{parsed[1]}"


def rename_for_repeats(folder: str | Path, repeats: int) -> Path:
    """Rename `<n>_<tokens>` to `<repeats>_<tokens>` and return the new path. Refuses when a
    folder or file of that name exists (two subsets are never merged by accident)."""
    folder = resolve_folder(str(folder), "subset folder")
    target = folder.with_name(repeats_folder_name(folder, repeats))
    if target == folder:
        return folder
    if target.exists():
        raise UserError(f"{target}: already exists, so {folder.name} cannot be renamed to it; "
                        "choose another repeat count or merge the two folders yourself")
    os.rename(folder, target)
    return target
