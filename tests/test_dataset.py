"""The dataset scan on real image files: sd-scripts' folder, image and caption rules."""
from __future__ import annotations

import pytest

from tests.conftest import make_image, write_caption
from workbench.dataset.scan import DatasetError, parse_subset_name, scan


def test_subset_names_split_on_the_first_underscore():
    assert parse_subset_name("10_sks dog") == (10, "sks dog")
    assert parse_subset_name("3_a_b_c") == (3, "a_b_c")
    assert parse_subset_name("10") == (10, "")
    for bad in ("abc_x", "0_x", "-2_x", "x10_y", "_10", ".cache"):
        assert parse_subset_name(bad) is None, bad


def test_bad_folder_names_are_reported_with_the_reason(tmp_path):
    for folder in ("5_ok", "abc_x", "0_x"):
        make_image(tmp_path / folder / "a.png", (64, 64))
    data = scan(tmp_path)
    assert [s.name for s in data.subsets] == ["5_ok"]
    reasons = {p.name: why for p, why in data.skipped}
    assert set(reasons) == {"abc_x", "0_x"}
    assert "repeats 0 is below 1" in reasons["0_x"]
    assert "<repeats>_<class tokens>" in reasons["abc_x"]


def test_subsets_in_folder_name_order_train_then_reg(tmp_path):
    for folder in ("2_b", "10_a", "1_c"):
        make_image(tmp_path / "train" / folder / "x.png", (64, 64))
    make_image(tmp_path / "reg" / "1_person" / "r.png", (64, 64))
    data = scan(tmp_path / "train", tmp_path / "reg")
    assert [(s.name, s.is_reg) for s in data.subsets] == [("10_a", False), ("1_c", False), ("2_b", False),
                                                          ("1_person", True)]
    assert [s.name for s in data.train] == ["10_a", "1_c", "2_b"] and [s.name for s in data.reg] == ["1_person"]


def test_images_any_case_extension_sorted_not_recursive_not_hidden(tmp_path):
    folder = tmp_path / "3_cat"
    names = ["b.PNG", "a.JpG", "c.webp", "d.bmp", "e.jpeg", "f.JPEG"]
    for name in names:
        make_image(folder / name, (64, 64))
    make_image(folder / "sub" / "deep.png", (64, 64))       # not recursive
    make_image(folder / "._a.png", (64, 64))                 # hidden: sd-scripts' glob skips it
    (folder / "notes.gif").write_bytes(b"GIF89a")            # not an image extension sd-scripts reads
    (folder / "dir.png").mkdir()                             # a folder named like an image
    [subset] = scan(tmp_path).subsets
    assert [p.name for p in (im.path for im in subset.images)] == sorted(names)
    assert all(im.path.is_absolute() for im in subset.images)


def test_sizes_come_from_the_header(tmp_path):
    make_image(tmp_path / "1_x" / "wide.png", (1234, 567))
    make_image(tmp_path / "1_x" / "tall.jpg", (300, 901))
    sizes = {im.path.name: im.size for im in scan(tmp_path).subsets[0].images}
    assert sizes == {"wide.png": (1234, 567), "tall.jpg": (300, 901)}


def test_caption_is_the_first_line_else_the_class_tokens(tmp_path):
    a = make_image(tmp_path / "4_sks dog" / "a.png", (64, 64))
    make_image(tmp_path / "4_sks dog" / "b.png", (64, 64))
    c = make_image(tmp_path / "4_sks dog" / "c.png", (64, 64))
    write_caption(a, "  sks dog, running  \nsecond line is ignored\n")
    write_caption(c, "other text", ".caption")               # another extension: not read
    images = scan(tmp_path, caption_extension=".txt").subsets[0].images
    assert [(im.caption, im.has_caption) for im in images] == [
        ("sks dog, running", True), ("sks dog", False), ("sks dog", False)]
    images = scan(tmp_path, caption_extension=".caption").subsets[0].images
    assert images[2].caption == "other text"


def test_folder_named_only_repeats_has_empty_class_tokens(tmp_path):
    make_image(tmp_path / "10" / "a.png", (64, 64))
    [subset] = scan(tmp_path).subsets
    assert (subset.repeats, subset.class_tokens, subset.images[0].caption) == (10, "", "")


def test_image_pil_cannot_open_is_one_error_naming_the_file(tmp_path):
    make_image(tmp_path / "1_x" / "good.png", (64, 64))
    (tmp_path / "1_x" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match="broken.png: not a readable image"):
        scan(tmp_path)


def test_non_utf8_caption_is_an_error_naming_the_file(tmp_path):
    image = make_image(tmp_path / "1_x" / "a.png", (64, 64))
    image.with_suffix(".txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"a\.txt: caption is not UTF-8"):
        scan(tmp_path)


def test_missing_or_unset_train_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="train_data_dir .*nope: folder not found"):
        scan(tmp_path / "nope")
    with pytest.raises(DatasetError, match="train_data_dir: not set"):
        scan("")
    make_image(tmp_path / "1_x" / "a.png", (64, 64))
    with pytest.raises(DatasetError, match="reg_data_dir .*noreg: folder not found"):
        scan(tmp_path, tmp_path / "noreg")
