"""The real app in a real browser: `streamlit run app.py` as a subprocess with WORKBENCH_HOME in a
temp dir (its first start builds the demo), and Debian's chromium driven by Playwright's sync API.
Screenshots go to test-artifacts/ (git-ignored)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
CONNECTED = '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STARTUP_TIMEOUT_S = 60     # the health check answers in about 2 s; slow CI machines get room
MAX_SHOT_PX = 6000         # tallest screenshot, in pixels
SETTLE_MS = 800            # wait after resizing the window before a screenshot


@dataclass
class Server:
    url: str
    home: Path
    proc: subprocess.Popen
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, log: Path, env: dict | None = None) -> Server:
    """`streamlit run app.py` on a free port (`env`: more environment variables); returns once
    /_stcore/health answers 200."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **(env or {}), "WORKBENCH_HOME": str(home)}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                 "--server.headless", "true"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", home, proc, log)
    if not wait_healthy(server, STARTUP_TIMEOUT_S):
        stop_server(server)
        pytest.fail(f"streamlit did not answer its health check; log:\n{log.read_text()[-3000:]}")
    return server


def wait_healthy(server: Server, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and server.proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_server(server: Server) -> None:
    """Stop the server, and any trainer or TensorBoard it left running in its workspace."""
    from workbench.runs import registry as runs
    from workbench.runs import tensorboard
    with mock.patch.dict(os.environ, {"WORKBENCH_HOME": str(server.home)}):
        for info in runs.list_runs():
            runs.stop(info.dir)
        board = tensorboard.running()
        if board is not None:
            tensorboard.stop(board)
    server.proc.terminate()
    try:
        server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    ARTIFACTS.mkdir(exist_ok=True)
    home = tmp_path_factory.mktemp("e2e-home")
    srv = start_server(home, ARTIFACTS / "streamlit.log")
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not on PATH: apt-get install -y chromium (see README)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}-last.png"), full_page=True)
    context.close()


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    """After each action: connected, and the script has finished its run (as Streamlit's e2e suite)."""
    page.wait_for_selector(CONNECTED, timeout=timeout_ms)
    page.wait_for_selector(IDLE, timeout=timeout_ms)


def shot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so a full-page screenshot of the
    window shows only the first screen; the window is made as tall as the page for the shot."""
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]')?.scrollHeight ?? 0")
    page.set_viewport_size({"width": size["width"], "height": min(max(size["height"], height + 50), MAX_SHOT_PX)})
    page.wait_for_timeout(SETTLE_MS)       # charts and images lay out again at the new height
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size(size)


def param_field(page, name: str):
    """Config field `name`'s input on the Parameters page, found by its label as a person reads it:
    the kohya_ss words with the sd-scripts key beside them (the input's accessible name; a checkbox
    whose label is long has the key on a line of its own: ui.params_fields.checkbox_label)."""
    from workbench.config.topics import widget_label
    return page.get_by_label(widget_label(name), exact=True)
