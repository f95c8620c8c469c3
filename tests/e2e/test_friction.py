"""What a new user met on the pages (issue 13), in headless chromium against the real server:
a Hugging Face repo id as the base model (from a hub-layout cache holding the demo model, offline),
the quick pick of local models. Its own server, with HF_HUB_CACHE pointing at a temporary cache."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from unittest import mock

import pytest
from playwright.sync_api import expect

from tests.conftest import write_checkpoint
from tests.e2e.conftest import ARTIFACTS, ROOT, param_field, shot, start_server, stop_server, wait_idle
from tests.e2e.test_browser import go, open_page
from tests.hub_cache import fill_hub_cache

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
SDXL_KEYS = {"model.diffusion_model.input_blocks.0.0.weight": (4, 4), "conditioner.embedders.1.model.x": (2,)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ARTIFACTS.mkdir(exist_ok=True)
    base = tmp_path_factory.mktemp("friction")
    srv = start_server(base / "home", ARTIFACTS / "streamlit-friction.log",
                       {"HF_HUB_CACHE": str(base / "hf"), "HF_HUB_OFFLINE": "1"})
    srv.hf_cache = base / "hf"
    yield srv
    stop_server(srv)


def test_the_sidebar_names_every_page_home_first(page, server):
    open_page(page, server)
    links = page.get_by_test_id("stSidebarNav").get_by_role("link")
    expect(links).to_have_text(["Home", "Dataset", "Parameters", "Training", "Inspect"])     # not "app"
    links.nth(3).click()
    wait_idle(page)
    assert page.url.endswith("/Training")


def set_model(page, value: str) -> None:
    page.get_by_role("tab", name="Model", exact=True).click()
    wait_idle(page)
    field = param_field(page, "pretrained_model_name_or_path")
    field.fill(value)
    field.press("Enter")
    wait_idle(page)


def test_a_cached_repo_id_is_said_cached_with_its_family(page, server):
    open_page(page, server)                                   # the first start builds the demo
    fill_hub_cache(server.hf_cache, "acme/tiny-sd1", server.home / "demo" / "models" / "tiny-sd1")
    go(page, "Parameters")
    set_model(page, "acme/tiny-sd1")
    main = page.get_by_test_id("stMain")
    expect(main.get_by_text(re.compile(r"acme/tiny-sd1: SD 1\.x, in the Hugging Face cache"))).to_be_visible()
    expect(main.get_by_text("Model: SD 1.x (diffusers", exact=False)).to_be_visible()
    assert 'pretrained_model_name_or_path = "acme/tiny-sd1"' in (server.home / "current.toml").read_text()
    shot(page, "13-1-parameters-repo-id-cached")
    set_model(page, "acme/not-here")
    expect(main.get_by_text("acme/not-here: not in the Hugging Face cache", exact=False).first).to_be_visible()


def test_quick_pick_finds_an_a1111_checkpoint_with_its_family(page, server, tmp_path):
    webui = tmp_path / "stable-diffusion-webui"
    checkpoint = write_checkpoint(webui / "models" / "Stable-diffusion" / "juggernaut-xl.safetensors", SDXL_KEYS)
    open_page(page, server)
    go(page, "Parameters")
    page.get_by_text("Pick a model", exact=False).click()
    folder = page.get_by_label(re.compile("Add a folder to look in"))
    folder.fill(str(webui))
    folder.press("Enter")
    wait_idle(page)
    page.get_by_test_id("stSelectbox").filter(has_text="Model").click()
    option = page.get_by_role("option", name=re.compile(r"juggernaut-xl\.safetensors — SDXL"))
    expect(option).to_be_visible()
    expect(page.get_by_role("option", name="acme/tiny-sd1 — SD 1.x (Hugging Face cache)", exact=True)).to_have_count(1)
    option.click()
    wait_idle(page)
    page.get_by_role("button", name="Use this model").click()
    wait_idle(page)
    main = page.get_by_test_id("stMain")
    expect(main.get_by_text("Model: SDXL", exact=False)).to_be_visible()      # waits for the rerun the click starts
    assert f'pretrained_model_name_or_path = "{checkpoint}"' in (server.home / "current.toml").read_text()
    expect(main.get_by_text("set sdxl = true", exact=False)).to_be_visible()     # the demo config says SD1
    shot(page, "13-2-parameters-quick-pick")


# ---------------------------------------------------------------- queue

def with_home(home):
    return mock.patch.dict(os.environ, {"WORKBENCH_HOME": str(home)})


def wait_for(predicate, what: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.3)


def test_queue_on_the_training_page_survives_a_restart_and_moves_on_with_the_browser_closed(
        browser, tmp_path_factory):
    from workbench import workspace
    from workbench.runs import queue as run_queue
    from workbench.runs import registry as runs
    home = tmp_path_factory.mktemp("queue-home")
    srv = start_server(home, ARTIFACTS / "streamlit-queue.log")
    long_run = None
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_page(page, srv)
        with with_home(home):
            cfg = workspace.load_current()
            long_cfg = workspace.save_current(cfg.replace(output_name="long", max_train_epochs=200))
        long_run = subprocess.Popen([sys.executable, "-m", "workbench", "train", str(long_cfg)], cwd=ROOT,
                                    env={**os.environ, "WORKBENCH_HOME": str(home)}, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        with with_home(home):
            wait_for(lambda: run_queue.busy(), "the long run to start")
            for n, name in enumerate(("queued-a", "queued-b"), start=1):
                workspace.save_current(cfg.replace(output_name=name, max_train_epochs=1))
                page.goto(f"{srv.url}/Training")
                wait_idle(page)
                expect(page.get_by_text("is training: this run will wait in the queue", exact=False)).to_be_visible()
                page.get_by_role("button", name="Queue this run").click()
                expect(page.get_by_role("heading", name=f"Queue ({n})")).to_be_visible()
                wait_idle(page)
            names = [p.name for p in run_queue.queued()]
        assert [n.split("-", 2)[-1] for n in names] == ["queued-a", "queued-b"]
        expect(page.get_by_role("heading", name="Queue (2)")).to_be_visible()
        page.locator(f".st-key-queue-up-{names[1]}").get_by_role("button", name="Earlier").click()   # b before a
        wait_idle(page)
        expect(page.get_by_role("listitem").filter(has_text=re.compile(r"-queued-[ab]$")).first) \
            .to_contain_text("queued-b")
        with with_home(home):
            assert [p.name for p in run_queue.queued()] == names[::-1]
        shot(page, "13-3-training-queue")
        page.close()
        srv.proc.terminate()                  # the app goes away (its runs go on); the queue is on disk
        srv.proc.wait(timeout=30)
        srv = start_server(home, ARTIFACTS / "streamlit-queue.log")
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{srv.url}/Training")
        wait_idle(page)
        expect(page.get_by_role("heading", name="Queue (2)")).to_be_visible()
        page.locator(f".st-key-queue-remove-{names[0]}").get_by_role("button", name="Remove").click()   # a leaves
        wait_idle(page)
        expect(page.get_by_role("heading", name="Queue (1)")).to_be_visible()
        page.close()                          # nobody watches from here on
        with with_home(home):
            assert [p.name for p in run_queue.queued()] == [names[1]]
            runs.stop(run_queue.busy()[0])     # the long run stops, saves, and starts the queued one
            queued_b = home / "runs" / names[1]
            wait_for(lambda: runs.read_status(queued_b).get("state") in ("finished", "failed"), "queued-b")
            assert runs.read_status(queued_b)["state"] == "finished", runs.log_tail(queued_b)
            assert not (home / "runs" / names[0]).exists()
    finally:
        if long_run is not None and long_run.poll() is None:
            long_run.send_signal(signal.SIGINT)          # a failed test leaves no 200-epoch run behind
            long_run.wait(timeout=600)
        stop_server(srv)


# ---------------------------------------------------------------- resume

def test_a_stopped_run_offers_resume_and_continues_where_it_stopped(page, server):
    from workbench import workspace
    from workbench.runs import registry as runs
    open_page(page, server)
    with with_home(server.home):
        cfg = workspace.load_current()
        config = workspace.save_current(cfg.replace(output_name="to-resume", max_train_epochs=2,
                                                     pretrained_model_name_or_path=str(server.home / "demo" / "models"
                                                                                       / "tiny-sd1")))
        run_dir = server.home / "runs" / "20000101-000000-stopped-run"
        proc = subprocess.Popen([sys.executable, "-m", "workbench", "train", str(config), "--run-dir", str(run_dir)],
                                cwd=ROOT, env={**os.environ, "WORKBENCH_HOME": str(server.home)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: (runs.read_status(run_dir).get("step") or 0) >= 3 or proc.poll() is not None, "steps")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=300)
        stopped_at = runs.read_status(run_dir)["step"]
        assert runs.read_status(run_dir)["state"] == "stopped" and stopped_at < 36
    page.goto(f"{server.url}/Training?run=20000101-000000-stopped-run")
    wait_idle(page)
    expect(page.get_by_text("Run 20000101-000000-stopped-run — stopped")).to_be_visible()
    shot(page, "13-4-training-stopped-offers-resume")
    page.get_by_role("button", name="Resume", exact=True).click()
    run_header = page.get_by_test_id("stMain").locator("h3").filter(has_text=re.compile(r"^Run \S+ — "))
    expect(run_header).to_contain_text(re.compile(r"to-resume — (starting|running|finished)"), timeout=60_000)
    expect(run_header).to_contain_text("finished", timeout=600_000)
    wait_idle(page)
    shot(page, "13-5-training-resumed")
    with with_home(server.home):
        resumed = next(i for i in runs.list_runs() if i.name.endswith("to-resume"))
        steps = [e["step"] for e in runs.read_metrics(resumed.dir) if e["event"] == "step"]
    assert steps == list(range(stopped_at + 1, 37))


CLI_RUN = "29991231-235959-cli-run"      # named like a run dir, the newest: the page shows the newest run


def test_an_open_training_page_notices_a_run_started_elsewhere(page, server, tmp_path):
    from workbench import workspace
    from workbench.runs import registry as runs
    open_page(page, server)
    page.goto(f"{server.url}/Training")
    wait_idle(page)
    with with_home(server.home):
        cfg = workspace.load_current().replace(output_name="from-the-cli", max_train_epochs=1)
        config = workspace.save_current(cfg)
        done = subprocess.run([sys.executable, "-m", "workbench", "train", str(config), "--run-dir",
                               str(server.home / "runs" / CLI_RUN)], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "WORKBENCH_HOME": str(server.home)}, timeout=600)
        assert done.returncode == 0, done.stderr
        assert runs.read_status(server.home / "runs" / CLI_RUN)["state"] == "finished"
    # no click, no reload: the page's idle refresh finds the new run and shows it
    expect(page.get_by_text(f"Run {CLI_RUN} — finished")).to_be_visible(timeout=60_000)


def test_a_fresh_server_opened_at_a_page_still_names_home(page, tmp_path):
    """A first visit straight to /Training (a bookmark, a link from the README) on a server that has
    not served the home page yet: Streamlit used to run the page from a pages/ folder on its own,
    without app.py's page list, and the sidebar's first entry read "app"."""
    fresh = start_server(tmp_path / "home", ARTIFACTS / "streamlit-fresh.log")
    try:
        page.goto(f"{fresh.url}/Training")
        wait_idle(page)
        links = page.get_by_test_id("stSidebarNav").get_by_role("link")
        expect(links).to_have_text(["Home", "Dataset", "Parameters", "Training", "Inspect"])
        expect(page.get_by_test_id("stException")).to_have_count(0)
    finally:
        stop_server(fresh)
