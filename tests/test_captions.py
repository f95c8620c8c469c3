"""Caption files: atomic UTF-8 writes, conflict detection, tag operations, sd-scripts' tag
frequency, and every bulk operation through preview, apply and undo on real files."""
from __future__ import annotations

import json

import pytest

from tests.conftest import make_image
from workbench.dataset import captions
from workbench.dataset.captions import BulkOp, CaptionConflict
from workbench.dataset.scan import scan
from workbench.errors import UserError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


# ---------------------------------------------------------------- single writes

def test_write_replaces_first_line_keeps_the_rest_and_leaves_no_temp_files(tmp_path):
    cap = write(tmp_path / "a.txt", "old, tags\r\nsecond line\n")
    captions.write_caption(cap, "new, tags", expected="old, tags")
    assert cap.read_bytes() == b"new, tags\r\nsecond line\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_write_creates_a_missing_caption_when_the_page_showed_none(tmp_path):
    cap = tmp_path / "b.txt"
    captions.write_caption(cap, "  fresh caption ", expected=None)
    assert cap.read_text(encoding="utf-8") == "fresh caption"


def test_non_ascii_tags_round_trip_as_utf8(tmp_path):
    cap = write(tmp_path / "c.txt", "café")
    captions.write_caption(cap, "猫, café, naïve 🐱", expected="café")
    assert cap.read_bytes().decode("utf-8") == "猫, café, naïve 🐱"
    assert captions.shown_line(cap) == "猫, café, naïve 🐱"


def test_conflict_when_file_changed_since_read_and_nothing_written(tmp_path):
    cap = write(tmp_path / "d.txt", "edited elsewhere")
    with pytest.raises(CaptionConflict, match="d.txt: changed on disk"):
        captions.write_caption(cap, "mine", expected="what the page showed")
    assert cap.read_text() == "edited elsewhere"


def test_conflict_when_a_caption_appeared_since_read(tmp_path):
    cap = write(tmp_path / "e.txt", "someone made me")
    with pytest.raises(CaptionConflict, match="was no caption file"):
        captions.write_caption(cap, "mine", expected=None)


def test_multi_line_caption_refused(tmp_path):
    cap = write(tmp_path / "f.txt", "x")
    with pytest.raises(UserError, match="one line"):
        captions.write_caption(cap, "a\nb", expected="x")


def test_non_utf8_caption_named_in_error(tmp_path):
    cap = tmp_path / "g.txt"
    cap.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(UserError, match="g.txt: caption is not UTF-8"):
        captions.read_text(cap)


def test_first_line_matches_the_dataset_scan(tmp_path):
    make_image(tmp_path / "1_x" / "a.png", (64, 64))
    write(tmp_path / "1_x" / "a.txt", "  first , line \rsecond")
    info = scan(tmp_path).subsets[0].images[0]
    assert captions.shown_line(tmp_path / "1_x" / "a.txt") == info.caption == "first , line"


# ---------------------------------------------------------------- tags

def test_writes_keep_the_caption_files_permissions(tmp_path):
    """An atomic write renames an owner-only temp file into place: without care every caption the
    app touches turns 0600, unreadable to a trainer running as another user."""
    import os
    import stat

    from workbench.fileio import current_umask
    folder = tmp_path / "10_dog"
    folder.mkdir()
    os.chmod(folder, 0o755)
    shared = write(folder / "a.txt", "old")
    os.chmod(shared, 0o664)
    captions.write_caption(shared, "new", expected="old")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o664
    captions.write_caption(folder / "b.txt", "fresh", expected=None)          # new file: 0666 minus the umask
    assert stat.S_IMODE((folder / "b.txt").stat().st_mode) == 0o666 & ~current_umask()
    changes = captions.preview(BulkOp("prepend", "sks"), [(shared, "new")])
    captions.apply_changes(changes, "prepend", tmp_path / "journal")
    captions.undo_last(tmp_path / "journal")
    assert shared.read_text() == "new" and stat.S_IMODE(shared.stat().st_mode) == 0o664


def test_tag_operations():
    assert captions.prepend_tag("a, sks, b", "sks") == "sks, a, b"
    assert captions.prepend_tag("sks, a", "sks") == "sks, a"
    assert captions.append_tag("SKS, a", "sks") == "a, sks"
    assert captions.remove_tag("a, Blue Hair, b", "blue hair") == "a, b"
    assert captions.dedupe_tags("a, b, A, c, b") == "a, b, c"
    assert captions.replace_text("red hair, red eyes", "red", "blue") == "blue hair, blue eyes"


def test_tag_edit_that_changes_nothing_keeps_the_spelling():
    assert captions.remove_tag("a,b ,  c", "zzz") == "a,b ,  c"
    assert captions.dedupe_tags("a,b") == "a,b"


def test_tag_frequency_follows_sd_scripts():
    counts = captions.tag_frequency(["Cat, dog,, cat", "cat , Ünïcode", ""])
    assert counts == {"cat": 3, "dog": 1, "ünïcode": 1}


def test_tag_frequency_by_folder_uses_class_tokens_for_uncaptioned(tmp_path):
    make_image(tmp_path / "2_sks dog" / "a.png", (64, 64))
    make_image(tmp_path / "2_sks dog" / "b.png", (64, 64))
    write(tmp_path / "2_sks dog" / "a.txt", "sks dog, grass")
    freq = captions.tag_frequency_by_folder(scan(tmp_path))
    assert freq == {"2_sks dog": {"sks dog": 2, "grass": 1}}


def test_tag_frequency_adds_up_train_and_reg_folders_of_one_name(tmp_path):
    for root, caption in (("train", "dog, grass"), ("reg", "Dog")):
        make_image(tmp_path / root / "1_dog" / "a.png", (64, 64))
        write(tmp_path / root / "1_dog" / "a.txt", caption)
    freq = captions.tag_frequency_by_folder(scan(tmp_path / "train", tmp_path / "reg"))
    assert freq == {"1_dog": {"dog": 2, "grass": 1}}


# ---------------------------------------------------------------- bulk: preview, apply, undo

@pytest.fixture
def folder(tmp_path):
    files = {"a.txt": "cat, sitting", "b.txt": "dog, cat, Cat\nnotes", "c.txt": "sks, tree"}
    return {name: write(tmp_path / "data" / name, text) for name, text in files.items()}


def shown(folder):
    return [(p, captions.shown_line(p)) for p in folder.values()] + [(folder["a.txt"].with_name("none.txt"), None)]


@pytest.mark.parametrize("op, expected", [
    (BulkOp("prepend", "sks"), {"a.txt": "sks, cat, sitting", "b.txt": "sks, dog, cat, Cat\nnotes"}),
    (BulkOp("append", "sks"), {"a.txt": "cat, sitting, sks", "b.txt": "dog, cat, Cat, sks\nnotes",
                               "c.txt": "tree, sks"}),
    (BulkOp("replace", "cat", "kitten"), {"a.txt": "kitten, sitting", "b.txt": "dog, kitten, Cat\nnotes"}),
    (BulkOp("remove", "CAT"), {"a.txt": "sitting", "b.txt": "dog\nnotes"}),
    (BulkOp("dedupe"), {"b.txt": "dog, cat\nnotes"}),
])
def test_every_bulk_op_previews_applies_and_undoes(folder, tmp_path, op, expected):
    originals = {name: p.read_bytes() for name, p in folder.items()}
    journal = tmp_path / "journal"
    changes = captions.preview(op, shown(folder))
    assert {c.path.name for c in changes} == set(expected)
    assert {c.path.name: c.after for c in changes} == {k: v.split("\n")[0] for k, v in expected.items()}
    assert all(p.read_bytes() == originals[n] for n, p in folder.items())   # preview writes nothing

    captions.apply_changes(changes, op.describe(), journal)
    for name, path in folder.items():
        assert path.read_text(encoding="utf-8") == expected.get(name, originals[name].decode())
    assert not (tmp_path / "data" / "none.txt").exists()                   # never creates a caption

    result = captions.undo_last(journal)
    assert sorted(p.name for p in result.restored) == sorted(expected) and result.skipped == []
    assert all(p.read_bytes() == originals[n] for n, p in folder.items())
    assert captions.pending_undos(journal) == []


def test_undo_survives_a_restart_through_the_journal_on_disk(folder, tmp_path):
    journal = tmp_path / "journal"
    captions.apply_changes(captions.preview(BulkOp("prepend", "ü"), shown(folder)), "prepend ü", journal)
    [entry] = captions.pending_undos(journal)
    data = json.loads(entry.path.read_text(encoding="utf-8"))
    assert data["description"] == "prepend ü" and len(data["files"]) == 3
    captions.undo_last(journal)
    assert folder["a.txt"].read_text() == "cat, sitting"
    assert list(journal.glob("*.undone"))


def test_undo_skips_files_edited_after_the_operation(folder, tmp_path):
    journal = tmp_path / "journal"
    captions.apply_changes(captions.preview(BulkOp("append", "x"), shown(folder)), "append x", journal)
    folder["a.txt"].write_text("hand edited later")
    result = captions.undo_last(journal)
    assert [p.name for p in result.skipped] == ["a.txt"]
    assert folder["a.txt"].read_text() == "hand edited later"
    assert folder["c.txt"].read_text() == "sks, tree"


def test_undo_goes_back_one_operation_at_a_time(folder, tmp_path):
    journal = tmp_path / "journal"
    captions.apply_changes(captions.preview(BulkOp("append", "one"), shown(folder)), "one", journal)
    captions.apply_changes(captions.preview(BulkOp("append", "two"), shown(folder)), "two", journal)
    assert [e.description for e in captions.pending_undos(journal)] == ["two", "one"]
    captions.undo_last(journal)
    assert folder["c.txt"].read_text() == "sks, tree, one"
    captions.undo_last(journal)
    assert folder["c.txt"].read_text() == "sks, tree"
    with pytest.raises(UserError, match="nothing|no bulk"):
        captions.undo_last(journal)


def test_apply_refuses_everything_when_a_file_changed_since_preview(folder, tmp_path):
    changes = captions.preview(BulkOp("prepend", "sks"), shown(folder))
    folder["b.txt"].write_text("changed meanwhile")
    with pytest.raises(CaptionConflict, match="b.txt changed on disk since the preview"):
        captions.apply_changes(changes, "prepend", tmp_path / "journal")
    assert folder["a.txt"].read_text() == "cat, sitting"
    assert captions.pending_undos(tmp_path / "journal") == []


def test_bulk_op_input_checked():
    with pytest.raises(UserError, match="Prepend tag: enter the tag"):
        captions.preview(BulkOp("prepend", "  "), [])
    with pytest.raises(UserError, match="Find and replace: enter the text to find"):
        captions.preview(BulkOp("replace", ""), [])
    with pytest.raises(UserError, match="unknown 'shout'"):
        captions.preview(BulkOp("shout", "x"), [])
