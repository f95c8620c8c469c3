"""Folder browser model, typed-path validation, the dataset fingerprint and the repeats rename."""
from __future__ import annotations

import pytest

from tests.conftest import make_image
from workbench.dataset import folders
from workbench.dataset.scan import scan
from workbench.errors import UserError


@pytest.fixture
def root(tmp_path):
    make_image(tmp_path / "train" / "10_sks dog" / "a.png", (64, 64))
    make_image(tmp_path / "train" / "10_sks dog" / "b.jpg", (64, 64))
    (tmp_path / "train" / "10_sks dog" / "a.txt").write_text("sks dog")
    (tmp_path / "train" / "notes").mkdir()
    (tmp_path / "train" / ".hidden").mkdir()
    (tmp_path / "train" / "readme.txt").write_text("x")
    return tmp_path / "train"


def test_list_folder_shows_visible_subfolders_with_subset_counts(root):
    listing = folders.list_folder(root)
    assert listing.path == root and listing.parent == root.parent
    assert [(s.name, s.repeats, s.images) for s in listing.subfolders] == [("10_sks dog", 10, 2), ("notes", None, None)]


def test_list_root_has_no_parent():
    assert folders.list_folder("/").parent is None


@pytest.mark.parametrize("text, message", [("", "enter a folder path"), ("/no/such/place", "does not exist"),
                                           ("FILE", "is a file")])
def test_resolve_folder_errors_name_the_field(root, text, message):
    text = str(root / "readme.txt") if text == "FILE" else text
    with pytest.raises(UserError, match=f"train_data_dir: .*{message}|train_data_dir: {message}"):
        folders.resolve_folder(text, "train_data_dir")


def test_resolve_folder_expands_home(monkeypatch, root):
    monkeypatch.setenv("HOME", str(root.parent))
    assert folders.resolve_folder("~/train", "x") == root


def test_rename_for_repeats_keeps_images_and_captions(root):
    new = folders.rename_for_repeats(root / "10_sks dog", 3)
    assert new == root / "3_sks dog" and not (root / "10_sks dog").exists()
    assert sorted(p.name for p in new.iterdir()) == ["a.png", "a.txt", "b.jpg"]
    [subset] = scan(root).subsets
    assert subset.repeats == 3 and subset.class_tokens == "sks dog"


def test_rename_refuses_when_target_exists(root):
    (root / "5_sks dog").mkdir()
    with pytest.raises(UserError, match="5_sks dog: already exists"):
        folders.rename_for_repeats(root / "10_sks dog", 5)
    assert (root / "10_sks dog" / "a.png").is_file() and not any((root / "5_sks dog").iterdir())


@pytest.mark.parametrize("repeats", [0, -2, 1.5, True])
def test_rename_refuses_bad_repeats(root, repeats):
    with pytest.raises(UserError, match="repeats"):
        folders.rename_for_repeats(root / "10_sks dog", repeats)


def test_rename_refuses_folder_without_repeats(root):
    with pytest.raises(UserError, match="notes: not named <repeats>_<class tokens>"):
        folders.rename_for_repeats(root / "notes", 2)


def test_same_repeats_is_a_no_op(root):
    assert folders.rename_for_repeats(root / "10_sks dog", 10) == root / "10_sks dog"


def test_fingerprint_changes_on_caption_write_and_rename_not_on_reads(root):
    import os

    from workbench.dataset.captions import write_caption
    for folder in (root, root / "10_sks dog"):       # older than the clock tick of the writes below
        os.utime(folder, ns=(10**9, 10**9))
    before = folders.fingerprint([root])
    scan(root)
    assert folders.fingerprint([root]) == before
    write_caption(root / "10_sks dog" / "b.txt", "new", expected=None)
    after_write = folders.fingerprint([root])
    assert after_write != before
    folders.rename_for_repeats(root / "10_sks dog", 2)
    assert folders.fingerprint([root]) != after_write


def test_fingerprint_sees_a_caption_edited_in_place_by_another_tool(root):
    """An editor that rewrites a caption in place leaves its folder's mtime alone: the page's scan
    cache must still see it, or the old caption stays on screen even after a refresh."""
    import os
    folder = root / "10_sks dog"
    caption = folder / "a.txt"
    os.utime(caption, ns=(10**9, 10**9))
    folder_mtime = folder.stat().st_mtime_ns
    before = folders.fingerprint([root])
    with open(caption, "w", encoding="utf-8") as f:          # in place: same inode, folder untouched
        f.write("edited elsewhere")
    assert folder.stat().st_mtime_ns == folder_mtime
    assert folders.fingerprint([root]) != before
