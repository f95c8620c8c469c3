"""The Dataset page under streamlit's AppTest, on a small dataset of real images in a temp
workspace: it renders, and each interaction changes the files on disk it should (and only those)."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import make_image
from workbench import workspace
from workbench.config.schema import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "app_pages" / "1_Dataset.py")


@pytest.fixture
def dataset(tmp_path):
    """5 captioned squares in 3_sks dog, 2 uncaptioned wide images in 1_cat; current.toml points at it."""
    train = tmp_path / "train"
    for i in range(5):
        make_image(train / "3_sks dog" / f"dog{i}.png", (512, 512))
        (train / "3_sks dog" / f"dog{i}.txt").write_text(f"sks dog, grass, pose{i}", encoding="utf-8")
    for i in range(2):
        make_image(train / "1_cat" / f"cat{i}.jpg", (768, 512))
    workspace.save_current(TrainConfig(train_data_dir=str(train), output_dir=str(tmp_path / "out")))
    return train


def run_page(view: str | None = None) -> AppTest:
    """A fresh session (as after a browser refresh), on the given tab (its name is in the URL)."""
    at = AppTest.from_file(PAGE, default_timeout=60)
    if view:
        at.query_params["view"] = view
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def caption_box(at, name):
    return next(w for w in at.text_area if w.label == name)


def text_of(elements) -> str:
    return " | ".join(e.value for e in elements)


def messages(at) -> str:
    return " | ".join(e.value for kind in (at.error, at.warning, at.success, at.info, at.toast) for e in kind)


def test_renders_subsets_grid_and_thumbnails(dataset):
    at = run_page()
    subsets = at.dataframe[0].value
    assert list(subsets.folder) == ["1_cat", "3_sks dog"]
    assert list(subsets.captioned) == [0, 5] and list(subsets.images) == [2, 5]
    assert len(at.image) == 7
    assert all(url for im in at.image for url in im.value)
    assert caption_box(at, "dog3.png").value == "sks dog, grass, pose3"
    assert caption_box(at, "cat0.jpg").value == ""
    assert len(list(workspace.thumbs_dir().rglob("*.jpg"))) == 7
    assert at.tabs and [t.label for t in at.tabs][:3] == ["Images", "Captions table", "Bulk edit"]


def test_editing_a_caption_writes_the_file(dataset):
    at = run_page()
    caption_box(at, "dog1.png").set_value("sks dog, snow, running").run()
    assert (dataset / "3_sks dog" / "dog1.txt").read_text(encoding="utf-8") == "sks dog, snow, running"
    caption_box(at, "cat1.jpg").set_value("a cat, 猫").run()
    assert (dataset / "1_cat" / "cat1.txt").read_text(encoding="utf-8") == "a cat, 猫"
    assert "Saved cat1.txt" in messages(at)
    assert caption_box(at, "cat1.jpg").value == "a cat, 猫"          # the rescan shows the new file


def test_caption_changed_on_disk_is_a_conflict_not_an_overwrite(dataset):
    at = run_page()
    (dataset / "3_sks dog" / "dog2.txt").write_text("edited in another tool")
    caption_box(at, "dog2.png").set_value("mine").run()
    assert (dataset / "3_sks dog" / "dog2.txt").read_text() == "edited in another tool"
    notice = text_of(at.error)
    assert "Not saved: dog2.txt changed on disk" in notice and "What you typed: “mine”" in notice
    assert caption_box(at, "dog2.png").value == "edited in another tool"     # the box shows the file now


def test_caption_edited_in_place_elsewhere_shows_after_a_refresh(dataset):
    """Another tool rewrites a caption in place (its folder's mtime unchanged): a new session
    must show the new text, not the scan cached before the edit."""
    import os
    folder = dataset / "3_sks dog"
    os.utime(folder / "dog3.txt", ns=(10**9, 10**9))
    assert caption_box(run_page(), "dog3.png").value == "sks dog, grass, pose3"
    stamp = folder.stat().st_mtime_ns
    with open(folder / "dog3.txt", "w", encoding="utf-8") as f:
        f.write("rewritten by a tagger")
    assert folder.stat().st_mtime_ns == stamp
    assert caption_box(run_page(), "dog3.png").value == "rewritten by a tagger"


def grid_labels(at):
    return {w.label for w in at.text_area if w.label.endswith((".png", ".jpg"))}


def test_filters_narrow_the_grid(dataset):
    at = run_page()
    at.checkbox(key="uncaptioned").check().run()
    assert grid_labels(at) == {"cat0.jpg", "cat1.jpg"}
    at.checkbox(key="uncaptioned").uncheck()
    at.text_input(key="q").set_value("pose4").run()
    assert grid_labels(at) == {"dog4.png"}
    at.text_input(key="q").set_value("")
    at.selectbox(key="bucket").set_value("640×384").run()
    assert grid_labels(at) == {"cat0.jpg", "cat1.jpg"}


def test_filters_are_read_from_the_url_so_a_refresh_keeps_them(dataset):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["tag"] = "POSE2"
    at.run()
    assert grid_labels(at) == {"dog2.png"}


def test_bulk_prepend_previews_applies_and_undo_restores_after_a_refresh(dataset):
    originals = {p: p.read_bytes() for p in (dataset / "3_sks dog").glob("*.txt")}
    at = run_page("Bulk edit")
    at.radio(key="bulk_scope").set_value("all training images")
    at.text_input(key="bulk_text").set_value("trigger").run()        # default operation: prepend
    preview = next(d.value for d in at.dataframe if "after" in d.value.columns)
    assert len(preview) == 5 and preview.after[0].startswith("trigger, sks dog")
    assert all(p.read_bytes() == text for p, text in originals.items())  # preview wrote nothing
    at.button(key="bulk_apply").click().run()
    assert all(p.read_text().startswith("trigger, sks dog, grass") for p in originals)
    assert not (dataset / "1_cat" / "cat0.txt").exists()

    refreshed = run_page("Bulk edit")                                    # a new session: the journal is on disk
    refreshed.button(key="bulk_undo").click().run()
    assert all(p.read_bytes() == text for p, text in originals.items())
    assert "5 captions restored" in messages(refreshed)


def test_bulk_edits_leave_regularisation_captions_alone_unless_asked(dataset, tmp_path):
    """A trigger word prepended to reg captions teaches the class the trigger: the default scopes
    are training images only; reg captions change only with the scope that says so."""
    reg = tmp_path / "reg" / "1_dog"
    make_image(reg / "r0.png", (512, 512))
    (reg / "r0.txt").write_text("a dog", encoding="utf-8")
    workspace.save_current(workspace.load_current().replace(reg_data_dir=str(tmp_path / "reg")))
    at = run_page("Bulk edit")
    at.text_input(key="bulk_text").set_value("sks").run()
    preview = next(d.value for d in at.dataframe if "after" in d.value.columns)
    assert "r0.txt" not in set(preview.file) and len(preview) == 5
    at.radio(key="bulk_scope").set_value("all images, regularisation too").run()
    preview = next(d.value for d in at.dataframe if "after" in d.value.columns)
    assert "r0.txt" in set(preview.file) and set(preview.folder) == {"3_sks dog", "1_dog"}
    at.button(key="bulk_apply").click().run()
    assert (reg / "r0.txt").read_text(encoding="utf-8") == "sks, a dog"


def test_changing_repeats_renames_only_after_confirmation(dataset):
    at = run_page()
    at.selectbox(key="repeats_subset").set_value("3_sks dog").run()
    at.number_input(key="repeats_new_3_sks dog").set_value(7).run()
    at.button(key="repeats_ask").click().run()
    assert (dataset / "3_sks dog").is_dir()                              # not yet
    assert "Rename `3_sks dog` to `7_sks dog`?" in messages(at)
    at.button(key="repeats_confirm").click().run()
    assert not at.exception
    assert (dataset / "7_sks dog" / "dog0.png").is_file() and not (dataset / "3_sks dog").exists()
    assert "7_sks dog" in list(at.dataframe[0].value.folder)
    assert at.selectbox(key="repeats_subset").value == "7_sks dog"      # the renamed subset stays chosen


def test_rename_refused_when_target_exists(dataset):
    (dataset / "2_cat").mkdir()
    at = run_page()
    at.selectbox(key="repeats_subset").set_value("1_cat").run()
    at.number_input(key="repeats_new_1_cat").set_value(2).run()
    at.button(key="repeats_ask").click().run()
    at.button(key="repeats_confirm").click().run()
    assert "2_cat: already exists" in messages(at)
    assert (dataset / "1_cat" / "cat0.jpg").is_file()


def test_typed_folder_is_checked_before_it_is_saved(dataset, tmp_path):
    at = run_page()
    at.text_input(key="folder_reg_data_dir").set_value(str(tmp_path / "missing")).run()
    assert "reg_data_dir:" in messages(at) and "does not exist" in messages(at)
    assert workspace.load_current().reg_data_dir == ""
    make_image(tmp_path / "reg" / "1_dog" / "r.png", (512, 512))
    at.text_input(key="folder_reg_data_dir").set_value(str(tmp_path / "reg")).run()
    assert workspace.load_current().reg_data_dir == str(tmp_path / "reg")
    assert "1_dog" in list(at.dataframe[0].value.folder)


def test_folder_browser_picks_a_folder(dataset, tmp_path):
    other = tmp_path / "elsewhere"
    make_image(other / "2_x" / "a.png", (512, 512))
    workspace.save_current(workspace.load_current().replace(train_data_dir=str(other / "2_x")))
    at = AppTest.from_file(PAGE, default_timeout=60).run()       # a folder with no subsets: the page says so
    at.button(key="browse_train_data_dir_up").click().run()
    at.button(key="browse_train_data_dir_use").click().run()
    assert workspace.load_current().train_data_dir == str(other)
    assert list(at.dataframe[0].value.folder) == ["2_x"]


def test_caption_table_on_change_writes_edited_rows_and_clears_the_editor(dataset):
    """The data_editor's on_change, run inside a real script run (AppTest cannot type into the
    grid; the browser test does)."""
    def script():
        from pathlib import Path

        import streamlit as st

        from ui.dataset_table import save_edited_rows
        folder = Path(st.session_state["folder"])
        rows = [(folder / "dog0.txt", "sks dog, grass, pose0"), (folder / "dog1.txt", "stale text")]
        st.session_state["captions_p1_x"] = {"edited_rows": {"0": {"caption": "edited"}, "1": {"caption": "x"}},
                                             "added_rows": [], "deleted_rows": []}
        save_edited_rows("captions_p1_x", rows)
        st.write("state kept" if "captions_p1_x" in st.session_state else "state cleared")

    at = AppTest.from_function(script, default_timeout=30)
    at.session_state["folder"] = str(dataset / "3_sks dog")
    at.run()
    assert not at.exception
    assert (dataset / "3_sks dog" / "dog0.txt").read_text() == "edited"
    assert (dataset / "3_sks dog" / "dog1.txt").read_text() == "sks dog, grass, pose1"   # conflict: untouched
    assert [m.value for m in at.markdown] == ["state cleared"]


def test_caption_table_shows_the_filtered_page(dataset):
    at = run_page("Captions table")
    [editor] = at.data_editor
    table = editor.value
    assert list(table.image) == ["cat0.jpg", "cat1.jpg", "dog0.png", "dog1.png", "dog2.png", "dog3.png", "dog4.png"]
    assert list(table["has file"]) == [False, False] + [True] * 5
    assert editor.key.startswith("captions_p1_")


def test_only_the_open_view_is_drawn(dataset):
    at = run_page()
    assert len(at.image) == 7 and not at.data_editor and not at.get("vega_lite_chart")
    at.session_state["view"] = "Captions table"
    at.run()
    assert not at.image and len(at.data_editor) == 1


def test_tag_chart_and_bucket_table(dataset):
    assert len(run_page("Tags").get("vega_lite_chart")) == 1
    at = run_page("Buckets")
    assert len(at.get("vega_lite_chart")) == 1
    buckets = next(d.value for d in at.dataframe if "crop" in d.value.columns)
    wide = buckets[buckets.image == "cat0.jpg"].iloc[0]
    assert (wide["size"], wide["repeats"]) == ("768×512", 1)
    assert len(buckets) == 7


def test_preflight_runs_on_request_and_names_the_files(dataset):
    import random
    import time

    from PIL import Image
    noisy = dataset / "3_sks dog" / "dog0.png"          # header intact, pixels cut off: only a full decode sees it
    Image.frombytes("RGB", (512, 512), random.Random(0).randbytes(512 * 512 * 3)).save(noisy)
    noisy.write_bytes(noisy.read_bytes()[: noisy.stat().st_size // 2])
    assert "dog0.png: not a readable image" in text_of(run_page().warning)   # its grid cell says so
    at = run_page("Preflight")
    assert not any(b.key == "preflight_again" for b in at.button)         # preflight waits to be asked
    at.button(key="preflight_run").click().run()
    for _ in range(100):                          # the check runs in a thread; poll until it has drawn
        if any(b.key == "preflight_again" for b in at.button):
            break
        time.sleep(0.1)
        at.run()
    assert any(b.key == "preflight_again" for b in at.button)
    finding = next(e.value for e in at.error if "dog0.png" in e.value or "truncated" in e.value.lower()
                   or "decode" in e.value.lower())
    assert finding.startswith("error")
    assert "dog0.png" in " ".join(c.value for c in at.code) + finding


def run_preflight(at) -> AppTest:
    """Ask for preflight and poll until its thread has finished and the page drew the findings."""
    import time
    at.button(key="preflight_run").click().run()
    for _ in range(100):
        if any(b.key == "preflight_again" for b in at.button):
            return at
        time.sleep(0.1)
        at.run()
    raise AssertionError("preflight did not finish")


def test_an_unreadable_image_still_leaves_preflight_to_name_every_bad_file(dataset):
    """Broken files are marked at the top and the page goes on (sd-scripts would stop on them,
    and so does Start); preflight reads everything and lists each bad file."""
    (dataset / "1_cat" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (dataset / "3_sks dog" / "also-broken.png").write_bytes(b"nope")
    at = run_page("Preflight")
    assert any("not a readable image" in e.value for e in at.error)
    run_preflight(at)
    named = " ".join(c.value for c in at.code)
    assert "broken.jpg" in named and "also-broken.png" in named


def test_preflight_says_a_repeated_finding_once_with_its_files(dataset):
    """Three pairs of duplicate images give one warning saying so three times, not three copies."""
    import shutil
    for i in range(5):                    # the fixture's images are one colour each: make them differ
        make_image(dataset / "3_sks dog" / f"dog{i}.png", (512, 512), color=(40 * i, 10, 10))
    for i in range(2):
        make_image(dataset / "1_cat" / f"cat{i}.jpg", (768, 512), color=(10, 40 * i, 10))
    for i in range(3):
        shutil.copy(dataset / "3_sks dog" / f"dog{i}.png", dataset / "3_sks dog" / f"copy{i}.png")
    at = run_preflight(run_page("Preflight"))
    duplicates = [w.value for w in at.warning if "same image" in w.value]
    assert duplicates == [duplicates[0]] and duplicates[0].endswith("— 3 times")
    files = next(c.value for c in at.code if "copy0.png" in c.value)
    assert all(f"copy{i}.png" in files and f"dog{i}.png" in files for i in range(3))


def test_a_bad_caption_or_image_is_marked_and_the_page_still_shows_everything(dataset):
    """One caption that is not UTF-8 and one unreadable image used to leave only the error and
    Preflight: now the rest of the page is there, the bad files are named, and the caption is
    fixed in the page (saved as UTF-8, atomically)."""
    bad_caption = dataset / "3_sks dog" / "dog4.txt"
    bad_caption.write_bytes(b"sks dog, caf\xe9 latte")              # Latin-1, not UTF-8
    (dataset / "1_cat" / "broken.png").write_bytes(b"not a PNG at all")
    at = run_page()
    assert "2 file(s) need fixing" in messages(at)
    assert "broken.png: not a readable image" in text_of(at.error)
    assert "dog4.txt: caption is not UTF-8 text" in text_of(at.error)
    assert list(at.dataframe[0].value.folder) == ["1_cat", "3_sks dog"]       # the subsets and the grid remain
    assert caption_box(at, "dog3.png").value == "sks dog, grass, pose3"
    assert "\ufffd" in caption_box(at, "dog4.png").value                     # marked where it is broken
    fix = next(w for w in at.text_area if w.label.startswith("Caption of dog4"))
    fix.set_value("sks dog, café latte").run()
    at.button(key=f"{fix.key}_save").click().run()
    assert bad_caption.read_text(encoding="utf-8") == "sks dog, café latte"
    assert "1 file(s) need fixing" in messages(at) and "Saved dog4.txt as UTF-8" in messages(at)



def test_bucket_table_explains_reg_balancing(dataset, tmp_path):
    """Subsets says repeats 1 for a 1_person reg folder; its 2 images are used 17 times in all here
    (8 and 9: 5 × 3 + 2 × 1 = 17 training images × repeats, reached by sd-scripts' balancing), and the
    Buckets tab says why."""
    assert "balanced" not in text_of(run_page("Buckets").info)            # no reg folder: nothing to explain
    for i in range(2):
        make_image(tmp_path / "reg" / "1_person" / f"p{i}.png", (512, 512))
    cfg = workspace.load_current()
    workspace.save_current(cfg.replace(reg_data_dir=str(tmp_path / "reg")))
    at = run_page("Buckets")
    note = text_of(at.info)
    assert "balanced to the 17 training images × repeats" in note
    assert "1_person: 2 image(s) × 1 from its name, used 17 times" in note
    buckets = next(d.value for d in at.dataframe if "crop" in d.value.columns)
    assert sorted(buckets[buckets.folder == "1_person"].repeats) == [8, 9]


def test_loss_mask_toggle_draws_the_masks_over_the_thumbnails(tmp_path):
    """alpha_mask on: a "Show loss masks" toggle (in the URL) swaps each thumbnail for the mask view."""
    from PIL import Image
    folder = tmp_path / "train" / "1_cut"
    folder.mkdir(parents=True)
    for i in range(2):
        im = Image.new("RGBA", (64, 64), (0, 200, 0, 255))
        im.paste((0, 200, 0, 0), (0, 0, 32, 64))                # left half transparent
        im.save(folder / f"cut{i}.png")
    cfg = TrainConfig(train_data_dir=str(tmp_path / "train"), output_dir=str(tmp_path / "out"))
    workspace.save_current(cfg)
    at = run_page()
    assert not [t for t in at.toggle if t.label == "Show loss masks"]          # no masks in the config: no toggle
    workspace.save_current(cfg.replace(alpha_mask=True))
    at = run_page()
    plain = [im.value for im in at.image]
    next(t for t in at.toggle if t.label == "Show loss masks").set_value(True).run()
    assert not at.exception
    masked = [im.value for im in at.image]
    assert len(masked) == 2 and masked != plain
    again = AppTest.from_file(PAGE, default_timeout=60)                      # a refresh keeps the view (URL)
    again.query_params["masks"] = "true"
    again.run()
    assert [im.value for im in again.image] != plain


def test_mask_view_of_a_mask_folder_follows_an_edited_mask(tmp_path):
    from PIL import Image
    folder, masks = tmp_path / "train" / "1_cut", tmp_path / "masks"
    folder.mkdir(parents=True)
    masks.mkdir()
    Image.new("RGB", (64, 64), (0, 0, 255)).save(folder / "cut.png")
    Image.new("RGB", (64, 64), (255, 255, 255)).save(masks / "cut.png")          # all trained
    workspace.save_current(TrainConfig(train_data_dir=str(tmp_path / "train"), output_dir=str(tmp_path / "out"),
                                       masked_loss=True, conditioning_data_dir=str(masks)))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["masks"] = "true"
    at.run()
    before = [im.value for im in at.image]
    Image.new("RGB", (64, 64), (0, 0, 0)).save(masks / "cut.png")                # now all ignored
    import os
    os.utime(masks / "cut.png", ns=(1, 10**18))
    at.run()
    assert len(before) == 1 and [im.value for im in at.image] != before
