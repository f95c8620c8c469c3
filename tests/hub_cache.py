"""A Hugging Face cache folder in the hub's own layout, filled from a local model folder
(models--owner--name/refs/main, snapshots/<commit>/... as relative symlinks into blobs/<sha256>),
so a repo id resolves offline exactly as it would after `hf download`. Nothing is downloaded."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def commit_of(repo_id: str) -> str:
    return hashlib.sha1(repo_id.encode()).hexdigest()       # 40 hex digits, like a git commit


def fill_hub_cache(cache: Path, repo_id: str, model: Path, skip: tuple[str, ...] = ()) -> Path:
    """Put every file of `model` (but those whose relative path starts with one in `skip`) into
    the cache as `repo_id`'s main revision; returns the snapshot folder."""
    repo = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    commit = commit_of(repo_id)
    snapshot = repo / "snapshots" / commit
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "blobs").mkdir(exist_ok=True)
    for path in sorted(Path(model).rglob("*")):
        rel = path.relative_to(model).as_posix()
        if not path.is_file() or rel.startswith(skip):
            continue
        blob = repo / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        if not blob.exists():
            shutil.copyfile(path, blob)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot
