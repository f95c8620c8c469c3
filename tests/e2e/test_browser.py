"""End to end in headless chromium against the real `streamlit run app.py` server, on the demo its
first start builds: edit a caption in the table and see the file change on disk; change the batch
size and see total steps change; start a demo run, see the progress bar reach the end and the LoRA
appear in the history; open it in Inspect and see its metadata. The tests run in this order and
share the server (one workspace), as a person would go through the four pages."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import param_field, shot, wait_idle

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
DEMO_BUILD_MS = 300_000      # the first start builds the demo (tiny models) before the home page shows
TRAIN_MS = 600_000           # the demo run trains in about a minute on 2 cores; loaded CI machines get room
TITLE = '[data-testid="stHeading"] h1'


def open_page(page, server, path: str = "") -> None:
    page.goto(f"{server.url}/{path}")
    wait_idle(page, DEMO_BUILD_MS)


def go(page, name: str) -> None:
    """Switch page through the sidebar, as a person does."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name, exact=True).click()
    expect(page.locator(TITLE).first).to_have_text(name)
    wait_idle(page)


def metric_value(page, label: str) -> str:
    label_el = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    metric = page.get_by_test_id("stMetric").filter(has=label_el)
    return metric.get_by_test_id("stMetricValue").inner_text()


def test_home_builds_the_demo_on_first_start(page, server):
    open_page(page, server)
    expect(page.locator(TITLE).first).to_have_text("LoRA Workbench")
    expect(page.get_by_test_id("stMain").get_by_text("random weights", exact=False).first).to_be_visible()
    assert (server.home / "current.toml").is_file() and (server.home / "demo" / "demo.toml").is_file()
    expect(page.get_by_text("Deploy", exact=True)).to_have_count(0)     # a local tool: no Streamlit Cloud button
    shot(page, "1-home")


def test_dataset_caption_edit_in_the_table_writes_the_file(page, server):
    open_page(page, server)
    go(page, "Dataset")
    page.get_by_role("tab", name="Captions table").click()
    wait_idle(page)
    grid = page.get_by_test_id("stTabs").get_by_test_id("stDataFrame").filter(visible=True).first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    # row 0 of the caption column (columns image | folder | caption | has file; header and rows 35 px)
    grid.click(position={"x": 10, "y": 36 + 17})
    image, folder, caption = (grid.get_by_test_id(f"glide-cell-{c}-0").inner_text() for c in range(3))
    caption_file = next((server.home / "demo" / "dataset").glob(f"*/{folder}/{Path(image).stem}.txt"))
    assert caption_file.read_text(encoding="utf-8").strip() == caption
    grid.dblclick(position={"x": box["width"] * 0.6, "y": 36 + 17})
    editor = page.locator("textarea.gdg-input")
    expect(editor).to_be_visible()
    assert editor.input_value() == caption            # the caption cell of row 0 is open
    new_caption = caption + ", edited in the browser"
    editor.fill(new_caption)
    editor.press("Enter")
    wait_idle(page)
    expect(page.get_by_text(f"Saved {caption_file.name}", exact=False).first).to_be_visible()
    assert caption_file.read_text(encoding="utf-8").strip() == new_caption
    shot(page, "2-dataset-caption-edited")


def test_parameters_batch_size_changes_total_steps(page, server):
    open_page(page, server)
    go(page, "Parameters")
    before = int(metric_value(page, "Total steps"))
    page.get_by_role("tab", name="Training").click()
    batch = param_field(page, "train_batch_size")
    expect(batch).to_have_value(re.compile(r"^[1-9]\d*$"))     # the widget holds the config's value
    # labelled in kohya_ss' words, the sd-scripts key beside them, in the section of its kin
    label = page.get_by_test_id("stWidgetLabel").filter(has_text="train_batch_size")
    expect(label).to_have_text("Train batch size train_batch_size")
    expect(page.get_by_test_id("stColumn").filter(has=label).get_by_test_id("stWidgetLabel")
           .filter(has_text="max_train_epochs")).to_have_count(1)
    shipped = int(batch.input_value())
    changed = 1 if shipped > 1 else 2          # a different batch size gives a different step count
    batch.fill(str(changed))
    batch.press("Enter")
    wait_idle(page)
    expect(page.get_by_test_id("stMetric").filter(has_text="Total steps").get_by_test_id("stMetricValue")) \
        .not_to_have_text(str(before))
    after = int(metric_value(page, "Total steps"))
    assert (after > before) == (changed < shipped)
    assert f"train_batch_size = {changed}" in (server.home / "current.toml").read_text()
    shot(page, "3-parameters-batch-size")
    # back to the demo's batch size for the run below
    batch.fill(str(shipped))
    batch.press("Enter")
    wait_idle(page)
    expect(page.get_by_test_id("stMetric").filter(has_text="Total steps").get_by_test_id("stMetricValue")) \
        .to_have_text(str(before))


def test_parameters_tab_stays_open_through_edits_and_a_refresh(page, server):
    """An edit that removes the LR chart above the tabs (no total steps) used to remount the tabs
    and throw the user back to the first one; a refresh did the same. The open tab is in the URL."""
    open_page(page, server)
    go(page, "Parameters")
    page.get_by_role("tab", name="Training").click()
    wait_idle(page)
    epochs = param_field(page, "max_train_epochs")
    expect(epochs).to_have_value(re.compile(r"^[1-9]\d*$"))    # the tab's rerun has drawn the config's value
    shipped = epochs.input_value()
    epochs.fill("0")                       # below the minimum: refused beside the field, never saved
    epochs.press("Enter")
    wait_idle(page)
    expect(page.get_by_text("not saved: max_train_epochs: 0 is below the minimum 1", exact=False)).to_be_visible()
    expect(page.get_by_role("tab", name="Training")).to_have_attribute("aria-selected", "true")
    assert f"max_train_epochs = {shipped}" in (server.home / "current.toml").read_text()
    shot(page, "3b-parameters-tab-kept")
    epochs = param_field(page, "max_train_epochs")
    epochs.fill(shipped)
    epochs.press("Enter")
    wait_idle(page)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(1)
    page.reload()
    wait_idle(page)
    expect(page.get_by_role("tab", name="Training")).to_have_attribute("aria-selected", "true")
    assert "group=Training" in page.url


def test_parameters_validation_split_holds_images_out_and_lowers_the_steps(page, server):
    open_page(page, server)
    go(page, "Parameters")
    before = int(metric_value(page, "Total steps"))
    page.get_by_role("tab", name="Validation").click()
    split = param_field(page, "validation_split")
    expect(split).to_have_value("0.0")
    split.fill("0.3")
    split.press("Enter")
    wait_idle(page)
    expect(page.get_by_test_id("stMetric").filter(has_text="Total steps").get_by_test_id("stMetricValue")) \
        .not_to_have_text(str(before))
    assert int(metric_value(page, "Total steps")) < before            # held-out images no longer train
    assert "validation_split = 0.3" in (server.home / "current.toml").read_text()
    shot(page, "3c-parameters-validation")
    split.fill("0.0")                     # back to the demo's config for the run below
    split.press("Enter")
    wait_idle(page)
    expect(page.get_by_test_id("stMetric").filter(has_text="Total steps").get_by_test_id("stMetricValue")) \
        .to_have_text(str(before))


def test_training_runs_the_demo_to_the_end_and_lists_the_lora(page, server):
    open_page(page, server)
    go(page, "Training")
    page.get_by_role("button", name="Start training").click()
    wait_idle(page)
    run_header = page.get_by_test_id("stMain").locator("h3").filter(has_text=re.compile(r"^Run \S+ — "))
    expect(run_header).to_contain_text(re.compile("starting|running|finished"))
    shot(page, "4-training-started")
    # the history refreshes with the live view: while the run trains (about ten seconds of steps
    # and samples) its row says "running" too, not the "starting" it had when the page was drawn
    expect(run_header).to_contain_text("running", timeout=TRAIN_MS)
    history_state = page.get_by_test_id("stDataFrame").last.get_by_test_id("glide-cell-1-0")
    expect(history_state).to_have_text("running")
    expect(run_header).to_contain_text("finished", timeout=TRAIN_MS)
    wait_idle(page)
    bar = page.get_by_test_id("stProgress")
    expect(bar).to_contain_text(re.compile(r"step (\d+)/\1\b"))           # step N/N: the bar reached the end
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(2)      # loss (raw, smoothed) and LR
    assert page.get_by_test_id("stProgress").get_by_role("progressbar").get_attribute("aria-valuenow") == "100"
    lora = _final_lora(server)
    expect(page.get_by_test_id("stMain").get_by_text(str(lora), exact=False).first).to_be_visible()
    history = page.get_by_test_id("stDataFrame").last
    history.click(position={"x": 10, "y": 36 + 17})          # focus: the grid's accessible cells appear
    # history columns: run | state | started | duration | estimate | est. s/step | s/step | actual ÷ est. |
    # steps | outputs; row 0 is the newest run
    expect(history.get_by_test_id("glide-cell-1-0")).to_have_text("finished")
    expect(history.get_by_test_id("glide-cell-9-0")).to_contain_text(lora.name)
    shot(page, "5-training-finished")


def _final_lora(server) -> Path:
    """The run's final LoRA: <output_dir>/<output_name>.safetensors of the demo config."""
    from workbench.config.schema import load_toml
    from workbench.runs.registry import list_runs
    (run,) = list_runs(server.home / "runs")
    cfg, _ = load_toml(run.dir / "config.toml")
    lora = Path(cfg.output_dir) / f"{cfg.output_name}.safetensors"
    assert lora.is_file() and str(lora) in run.status["outputs"]
    return lora


def test_inspect_opens_the_trained_lora_and_shows_its_metadata(page, server):
    lora = _final_lora(server)
    open_page(page, server)
    go(page, "Training")
    page.get_by_test_id("stMain").get_by_role("link").filter(has_text="Inspect").last.click()
    expect(page.locator(TITLE).first).to_have_text("Inspect")
    wait_idle(page)
    assert metric_value(page, "Network") == "lora"
    assert metric_value(page, "Base model") == "sd_v1"
    expect(page.get_by_text("Hash verified", exact=False)).to_be_visible()
    expect(page.get_by_test_id("stCaptionContainer").filter(has_text=str(lora)).first).to_be_visible()
    page.get_by_role("tab", name="Tags").click()
    expect(page.get_by_text("Tag frequency", exact=False).first).to_be_visible()
    shot(page, "6-inspect")
    # the app process never loaded torch, whatever it showed
    assert "libtorch" not in Path(f"/proc/{server.proc.pid}/maps").read_text()


def test_choosing_a_lora_to_compare_keeps_the_compare_tab_open(page, server):
    """Choosing the second file reruns the page; the open tab (in the URL) must stay Compare."""
    lora = _final_lora(server)
    epoch_file = next(p for p in lora.parent.glob(f"{lora.stem}-*.safetensors"))
    open_page(page, server, f"Inspect?file={lora}")
    page.get_by_role("tab", name="Compare").click()
    wait_idle(page)
    second = page.get_by_label("Compare with: or a path to a .safetensors file")
    second.fill(str(epoch_file))
    second.press("Enter")
    wait_idle(page)
    expect(page.get_by_role("tab", name="Compare")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_text("keys differ", exact=False)).to_be_visible()
    shot(page, "6b-inspect-compare")


def test_a_second_start_is_refused_and_stop_saves_a_stopped_lora(page, server):
    open_page(page, server)
    go(page, "Training")
    page.get_by_role("button", name="Start training").click()
    wait_idle(page)
    # the finished run's LoRA is there: starting the same output again would overwrite it
    expect(page.get_by_test_id("stAlertContentError").filter(has_text="Not started")).to_contain_text("would overwrite")
    go(page, "Parameters")
    page.get_by_role("tab", name="Folders").click()
    name = param_field(page, "output_name")
    name.fill("demo-stop")
    name.press("Enter")
    wait_idle(page)
    go(page, "Training")
    page.get_by_role("button", name="Start training").click()
    wait_idle(page)
    run_header = page.get_by_test_id("stMain").locator("h3").filter(has_text=re.compile(r"^Run \S+ — "))
    # stop once the new run is training (its SIGTERM handler is set up then), not while it starts
    expect(run_header).to_contain_text(re.compile(r"demo-stop — running"), timeout=TRAIN_MS)
    expect(page.get_by_test_id("stProgress")).to_contain_text(re.compile(r"step [1-9]\d*/"), timeout=TRAIN_MS)
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(run_header).to_contain_text("stopped", timeout=TRAIN_MS)
    wait_idle(page)
    saved = page.get_by_test_id("stMain").locator("code").filter(
        has_text=re.compile(r"demo-stop.*stopped.*\.safetensors"))
    expect(saved.first).to_be_visible()
    assert Path(saved.first.inner_text()).is_file()
    shot(page, "7-training-stopped")
