"""The sample gallery, two runs side by side, estimate vs actual and whole tag labels, in headless
chromium against the real server (its own workspace): two demo runs trained for real with
`workbench train` (3 epochs, then 2 epochs of another output name), each sampling the demo's two
prompts at every epoch."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, ROOT, shot, start_server, stop_server
from tests.e2e.test_browser import open_page

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
TRAIN_S = 600              # one demo run trains in about a minute on 2 cores; loaded machines get room
LONG_TAG = "a very long descriptive tag that a caption model wrote about the gradient background"
PROMPTS = ["wbdemo, circle, red, blue green gradient background", "wbdemo, square, yellow"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ARTIFACTS.mkdir(exist_ok=True)
    srv = start_server(tmp_path_factory.mktemp("gallery") / "home", ARTIFACTS / "streamlit-gallery.log")
    yield srv
    stop_server(srv)


def train(server, name: str, epochs: int) -> Path:
    """`workbench train` on the demo config (the one the app saved as current.toml), renamed."""
    from workbench.config.schema import load_toml, save_toml
    cfg, _ = load_toml(server.home / "current.toml")
    config = save_toml(cfg.replace(output_name=name, max_train_epochs=epochs), server.home / f"{name}.toml")
    run_dir = server.home / "runs" / f"20260101-00000{epochs}-{name}"
    done = subprocess.run([sys.executable, "-m", "workbench", "train", str(config), "--run-dir", str(run_dir)],
                          cwd=ROOT, env={**os.environ, "WORKBENCH_HOME": str(server.home)}, capture_output=True,
                          text=True, timeout=TRAIN_S)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return run_dir


def images_in(page, key: str):
    return page.locator(f".st-key-{key}").get_by_test_id("stImage")


def test_the_samples_are_a_grid_by_epoch_and_prompt_and_two_runs_compare_side_by_side(page, server):
    open_page(page, server)                                  # the first start builds the demo
    three = train(server, "gallery-three", 3)
    two = train(server, "gallery-two", 2)
    open_page(page, server, f"Training?run={three.name}")
    header = page.locator(".st-key-sample-grid-header")
    expect(header.get_by_test_id("stCaptionContainer")).to_have_text(["when"] + PROMPTS)
    rows = page.locator("[class*='st-key-sample-row-']")
    expect(rows).to_have_count(3)
    expect(rows.locator("strong")).to_have_text(["epoch 3", "epoch 2", "epoch 1"])     # newest first
    for epoch in (1, 2, 3):
        expect(images_in(page, f"sample-row-epoch-{epoch}")).to_have_count(2)
    shot(page, "gallery-1-grid")

    compare = page.locator(".st-key-compare-header")
    expect(compare.get_by_test_id("stCaptionContainer")).to_have_text(["when", three.name, two.name])
    expect(images_in(page, "compare-row-epoch-2")).to_have_count(2)
    expect(images_in(page, "compare-row-epoch-3")).to_have_count(1)       # the 2-epoch run has no epoch 3
    expect(page.locator(".st-key-compare-row-epoch-3")).to_contain_text("no sample")
    compare.scroll_into_view_if_needed()
    shot(page, "gallery-2-compare")

    recorded = [(server.home / "runs" / r.name / "estimate.json").is_file() for r in (three, two)]
    assert recorded == [True, True]                       # the estimate each run started with, kept
    history = page.get_by_test_id("stDataFrame").last
    history.click(position={"x": 10, "y": 36 + 17})      # focus: the grid's accessible cells appear
    # columns: run | state | started | duration | estimate | est. s/step | s/step | actual ÷ est. | …; row 0 is
    # the 3-epoch run (no finished run to estimate it by), row 1 the 2-epoch run, estimated by row 0
    expect(history.get_by_test_id("glide-cell-6-0")).to_have_text(re.compile(r"^\d+\.\d{3}$"))
    expect(history.get_by_test_id("glide-cell-5-1")).to_have_text(re.compile(r"^\d+\.\d{3}$"))
    expect(history.get_by_test_id("glide-cell-7-1")).to_have_text(re.compile(r"^\d+\.\d\d×$"))


def test_a_long_tag_label_is_drawn_whole(page, server):
    open_page(page, server)                                  # builds the demo when this test runs alone
    image = next((server.home / "demo" / "dataset" / "train").glob("*/*.png"))
    caption = image.with_suffix(".txt")
    caption.write_text(caption.read_text().strip() + f", {LONG_TAG}\n")
    open_page(page, server, "Dataset?view=Tags")
    labels = page.get_by_test_id("stVegaLiteChart").locator("svg text")
    expect(labels.filter(has_text=LONG_TAG)).to_have_count(1)              # not "a very long descrip…"
    texts = labels.evaluate_all("elements => elements.map(e => e.textContent)")     # SVG has no innerText
    assert LONG_TAG in texts and not [t for t in texts if t.endswith("…")]
    shot(page, "gallery-3-tags")
