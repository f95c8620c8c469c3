"""The Dataset page's Caption tab under streamlit's AppTest, with the real tiny ONNX tagger: the
preview (run in a subprocess) lists scores and writes nothing; a run is its own process whose
progress, Stop and summary the page reads from the job folder after a refresh; the whole run is
one undo that keeps a caption edited by hand since."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.caption_models import build_tagger
from tests.conftest import make_image
from workbench import workspace
from workbench.captioning import jobs
from workbench.config.schema import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "app_pages" / "1_Dataset.py")
pytestmark = pytest.mark.slow       # each run starts a model process


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory):
    return build_tagger(tmp_path_factory.mktemp("tagger"))


@pytest.fixture
def dataset(tmp_path):
    """2_sks dog: red (captioned "mine"), green, blue squares; current.toml points at it."""
    train = tmp_path / "train"
    folder = train / "2_sks dog"
    for name, colour in (("a_red", (255, 0, 0)), ("b_green", (0, 255, 0)), ("c_blue", (0, 0, 255))):
        make_image(folder / f"{name}.png", (32, 32), colour)
    (folder / "a_red.txt").write_text("mine", encoding="utf-8")
    workspace.save_current(TrainConfig(train_data_dir=str(train), output_dir=str(tmp_path / "out")))
    return folder


def caption_tab(model: str | Path | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["view"] = "Caption"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    if model is not None:
        at.text_input(key="captioner_model").set_value(str(model)).run()
    return at


def wait_for_job_end(limit_s: float = 240) -> jobs.JobInfo:
    deadline = time.monotonic() + limit_s
    while (job := jobs.latest_job()) is None or job.active:
        if time.monotonic() > deadline:
            pytest.fail("the caption job did not end")
        time.sleep(0.1)
    return job


def markdown(at) -> str:
    return " | ".join(m.value for m in at.markdown) + " | " + " | ".join(c.value for c in at.caption)


def test_preview_shows_scores_and_writes_nothing(dataset, tagger_dir):
    at = caption_tab(tagger_dir)
    at.radio(key="captioner_existing").set_value("append").run()
    at.button(key="captioner_preview_button").click().run()
    assert not at.error, [e.value for e in at.error]
    text = markdown(at)
    assert "would write: “mine, red theme”" in text and "would write: “green theme, ^_^”" in text
    scores = at.dataframe[-1].value            # c_blue's scores, highest first
    assert list(scores.tag[:2]) == ["blue hero", "blue theme"] and scores.confidence[0] == pytest.approx(0.9975, 1e-3)
    assert (dataset / "a_red.txt").read_text() == "mine" and not (dataset / "b_green.txt").exists()
    assert f"workbench caption {dataset.parent} --model {tagger_dir} --existing append" in text


def test_a_run_is_its_own_process_and_one_undo_keeping_hand_edits(dataset, tagger_dir):
    at = caption_tab(tagger_dir)
    at.radio(key="captioner_existing").set_value("append").run()
    at.text_input(key="captioner_prefix").set_value("ohwx").run()
    at.button(key="captioner_start").click().run()
    job = wait_for_job_end()
    assert job.state == "finished"
    assert (dataset / "a_red.txt").read_text() == "ohwx, mine, red theme"
    assert (dataset / "b_green.txt").read_text() == "ohwx, green theme, ^_^"
    refreshed = caption_tab()                  # a new session: everything comes from the job folder
    assert "written 3, skipped 0, failed 0" in markdown(refreshed)
    assert refreshed.text_input(key="captioner_model").value == str(tagger_dir)     # remembered
    (dataset / "c_blue.txt").write_text("fixed by hand", encoding="utf-8")
    refreshed.button(key="captioner_undo").click().run()
    assert (dataset / "a_red.txt").read_text() == "mine"
    assert not (dataset / "b_green.txt").exists()
    assert (dataset / "c_blue.txt").read_text() == "fixed by hand"
    assert any("edited since the run and were kept: c_blue.txt" in w.value for w in refreshed.warning)
    bulk = AppTest.from_file(PAGE, default_timeout=60)
    bulk.query_params["view"] = "Bulk edit"
    bulk.run()
    assert "No bulk edit to undo." in markdown(bulk)        # the run was the one entry, and it is undone


def test_stop_from_the_page_ends_the_run_after_its_batch(dataset, tmp_path):
    slow = build_tagger(tmp_path / "slow", slow_layers=150)
    for i in range(40):
        make_image(dataset / f"z{i:02d}.png", (32, 32), (0, 6 * i, 200))
    at = caption_tab(slow)
    at.number_input(key="captioner_batch").set_value(2).run()
    at.button(key="captioner_start").click().run()
    deadline = time.monotonic() + 240
    while (jobs.latest_job().status.get("done") or 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    page = caption_tab()                                   # a reload sees the running job, with Stop
    (bar,) = page.get("progress")
    assert bar.proto.text.startswith("Caption run ") and "img/s" in bar.proto.text and "ETA" in bar.proto.text
    page.button(key="captioner_stop").click().run()
    job = wait_for_job_end()
    assert job.state == "stopped" and job.status["done"] < 43
    assert "stopped after" in markdown(caption_tab())


def test_preview_of_an_image_to_text_model_shows_its_sentence(dataset, tmp_path):
    from tests.caption_models import build_blip
    at = caption_tab(build_blip(tmp_path / "blip"))
    at.number_input(key="captioner_max_length").set_value(5).run()
    at.number_input(key="captioner_thr").set_value(0.5).run()       # a tagger's option: said to be unused
    at.radio(key="captioner_existing").set_value("overwrite").run()
    at.button(key="captioner_preview_button").click().run()
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[-1].value
    assert list(table.category) == ["caption"] and 0 < table.confidence[0] <= 1
    assert f"would write: “{table.tag[0]}”" in markdown(at)
    assert not (dataset / "b_green.txt").exists()
    assert any("--threshold: not used" in w.value and "image-to-text captioner" in w.value for w in at.warning)
