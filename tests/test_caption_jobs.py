"""A caption run's safety rules and its job process: a caption edited on disk during the run is
not overwritten, the whole run is one undo entry that restores what it touched and keeps later
hand edits, undo waits for a run still writing, and the job process (what the page starts) reports
progress in its files and stops after its batch on SIGTERM."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.caption_models import build_tagger
from tests.conftest import make_image
from workbench.captioning import jobs
from workbench.captioning.journal import RunJournal
from workbench.captioning.models import resolve_model
from workbench.captioning.run import CHANGED_ON_DISK, CaptionRun, collect_items
from workbench.captioning.settings import CaptionSettings
from workbench.captioning.wd14 import Tagger
from workbench.dataset.captions import pending_undos, undo_last
from workbench.errors import UserError


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory):
    return build_tagger(tmp_path_factory.mktemp("tagger"))


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "2_x"
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 0, 0)]):
        make_image(folder / f"{i}.png", (32, 32), colour)
    (folder / "0.txt").write_text("mine\nnotes\n", encoding="utf-8")
    return folder


class EditsDuringPredict:
    """The real tagger, and a person editing one caption while the batch is being tagged."""

    def __init__(self, tagger, path, text):
        self.tagger, self.path, self.text = tagger, path, text

    def predict(self, images):
        self.path.write_text(self.text, encoding="utf-8")
        return self.tagger.predict(images)


def test_a_caption_edited_during_the_run_is_not_overwritten(folder, tagger_dir):
    settings = CaptionSettings(model=str(tagger_dir), existing="overwrite", batch_size=4)
    model = EditsDuringPredict(Tagger(resolve_model(str(tagger_dir)), settings.tag_rule), folder / "1.txt",
                               "typed by hand")
    outcomes = CaptionRun(settings, model).caption_batch(collect_items(folder, ".txt"))
    assert [o.action for o in outcomes] == ["written", "skipped", "written", "written"]
    assert outcomes[1].reason == CHANGED_ON_DISK
    assert (folder / "1.txt").read_text() == "typed by hand"
    assert (folder / "0.txt").read_text() == "red theme\nnotes\n"


def test_the_run_is_one_undo_entry_that_keeps_later_hand_edits(folder, tagger_dir, workspace):
    settings = CaptionSettings(model=str(tagger_dir), existing="append", batch_size=2)
    model = Tagger(resolve_model(str(tagger_dir)), settings.tag_rule)
    journal = RunJournal("caption run: tiny on 2_x")
    CaptionRun(settings, model, journal).run(collect_items(folder, ".txt"))
    (entry,) = pending_undos()
    assert entry.description == "caption run: tiny on 2_x" and len(entry.files) == 4
    assert (folder / "0.txt").read_text() == "mine, red theme\nnotes\n"
    (folder / "3.txt").write_text("edited after the run", encoding="utf-8")
    result = undo_last()
    assert (folder / "0.txt").read_text() == "mine\nnotes\n"          # restored exactly
    assert not (folder / "1.txt").exists() and not (folder / "2.txt").exists()   # created by the run: removed
    assert (folder / "3.txt").read_text() == "edited after the run"   # the later hand edit is kept
    assert [p.name for p in result.skipped] == ["3.txt"] and len(result.restored) == 3
    assert pending_undos() == []


def test_undo_waits_for_a_run_that_is_still_writing(folder, tagger_dir, workspace):
    journal = RunJournal("caption run: still going")
    journal.record([{"path": str(folder / "9.txt"), "before": None, "after": "x"}])
    (folder / "9.txt").write_text("x")
    with pytest.raises(UserError, match="still writing captions"):
        undo_last()                                       # this test's process is the writer, alive
    journal.close()
    assert undo_last().restored == [folder / "9.txt"] and not (folder / "9.txt").exists()


def wait_for(condition, what: str, limit_s: float = 240):
    """Poll until `condition()`; the limit only turns a hang into a failure, it asserts no timing."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_the_job_process_reports_progress_and_stops_after_its_batch(tmp_path, workspace):
    slow = build_tagger(tmp_path / "slow", slow_layers=150)
    folder = tmp_path / "1_many"
    for i in range(40):
        make_image(folder / f"{i:02d}.png", (32, 32), (6 * i, 0, 255 - 6 * i))
    job = jobs.create_job(CaptionSettings(model=str(slow), batch_size=2), folder)
    jobs.launch_job(job)
    with pytest.raises(UserError, match="already going"):
        jobs.launch_job(jobs.create_job(CaptionSettings(model=str(slow)), folder))
    wait_for(lambda: jobs.job_info(job).status.get("done", 0) >= 2, "the first batch")
    assert jobs.stop_job(job)
    wait_for(lambda: not jobs.job_info(job).active, "the job to end")
    info = jobs.job_info(job)
    assert info.state == "stopped", (job / "worker.log").read_text()
    outcomes = jobs.read_outcomes(job)
    written = sorted(folder.glob("*.txt"))
    assert len(outcomes) == info.status["done"] < 40 and info.status["done"] % 2 == 0
    assert info.status["counts"]["written"] == len(written) == len(outcomes)
    (entry,) = pending_undos()
    assert len(entry.files) == len(written)                # the journal holds every file written


def test_a_job_with_a_bad_model_fails_with_its_reason(tmp_path, workspace):
    make_image(tmp_path / "1_x" / "a.png", (32, 32))
    job = jobs.create_job(CaptionSettings(model=str(tmp_path / "no-model")), tmp_path / "1_x")
    subprocess.run([sys.executable, "-m", "workbench.captioning.worker", str(job)], check=False, timeout=120)
    info = jobs.job_info(job)
    assert info.state == "failed" and "no such folder" in info.status["error"]


def test_a_run_that_died_mid_way_can_still_be_undone(folder, workspace):
    """The process writes its records (side file) and one caption, then dies without closing the
    entry: the undo finds the records and restores the caption."""
    caption = folder / "0.txt"
    code = ("import sys; from pathlib import Path; from workbench.captioning.journal import RunJournal\n"
            "from workbench.fileio import write_text_atomic\n"
            "j = RunJournal('caption run: died'); p = Path(sys.argv[1])\n"
            "j.record([{'path': str(p), 'before': p.read_text(), 'after': 'mine, red theme'}])\n"
            "write_text_atomic(p, 'mine, red theme')\n"
            "import os; os._exit(9)\n")
    subprocess.run([sys.executable, "-c", code, str(caption)], check=False, timeout=120)
    assert caption.read_text() == "mine, red theme"
    (entry,) = pending_undos()
    assert entry.description == "caption run: died" and len(entry.files) == 1
    assert undo_last().restored == [caption]
    assert caption.read_text() == "mine\nnotes\n"
    assert list(workspace.joinpath("caption-journal").glob("*.jsonl")) == []
