"""App benchmarks → benchmarks/out/app.json (measured, not asserted):

- startup: seconds from launching `streamlit run app.py` to a 200 from /_stcore/health (target < 5 s),
  and whether the server process has libtorch mapped after every page was rendered (it must not);
- page switches: seconds from a click on a sidebar link until the page's script run is done and its
  title shows, in headless chromium (target < 1 s);
- Training refresh: bytes read (/proc/self/io rchar) and seconds per refresh of the Training page
  while metrics.jsonl grows from 1,000 to 100,000 steps, 50 new steps between refreshes — constant
  bytes means the page reads only the new part of the file.

Run: python benchmarks/bench_app.py   (needs Debian's chromium; builds the demo in a temp workspace)
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import BROWSER_ARGS, start_server, stop_server, wait_idle  # noqa: E402

PAGES = (("Dataset", "Dataset"), ("Parameters", "Parameters"), ("Training", "Training"), ("Inspect", "Inspect"))
NEW_STEPS_PER_REFRESH = 50


def bench_startup(home: Path, tries: int = 3) -> list[float]:
    times = []
    for i in range(tries):
        t0 = time.perf_counter()
        server = start_server(home, home / f"startup-{i}.log")
        times.append(time.perf_counter() - t0)
        stop_server(server)
    return times


def torch_mapped(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def bench_page_switches(server, rounds: int = 3) -> dict:
    import shutil

    from playwright.sync_api import sync_playwright
    switches: dict[str, list[float]] = {name: [] for name, _ in PAGES}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server.url)
        wait_idle(page, timeout_ms=300_000)          # the first start builds the demo
        for _ in range(rounds):
            for name, title in PAGES:
                link = page.get_by_test_id("stSidebarNav").get_by_role("link", name=name, exact=True)
                t0 = time.perf_counter()
                link.click()
                page.get_by_role("heading", name=title, exact=True).first.wait_for()
                wait_idle(page)
                switches[name].append(time.perf_counter() - t0)
        browser.close()
    return {name: {"median_s": statistics.median(v), "max_s": max(v), "samples": v} for name, v in switches.items()}


def bench_training_refresh(home: Path) -> list[dict]:
    """AppTest re-runs the Training page on a live run whose metrics.jsonl keeps growing."""
    from streamlit.testing.v1 import AppTest

    from workbench import workspace
    from workbench.config.schema import TrainConfig, save_toml
    from workbench.runs import registry as runs
    with mock.patch.dict(os.environ, {"WORKBENCH_HOME": str(home / "refresh")}):
        workspace.save_current(TrainConfig())
        run_dir = workspace.runs_dir() / "20260101-000000-bench"
        run_dir.mkdir(parents=True)
        save_toml(TrainConfig(), run_dir / "config.toml")
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])   # the live "trainer"
        try:
            (run_dir / "status.json").write_text(json.dumps({
                "pid": sleeper.pid, "pid_start": runs.proc_start_time(sleeper.pid), "state": "running",
                "step": 0, "total_steps": 200_000, "started_at": time.time()}))
            return _refreshes(AppTest.from_file(str(ROOT / "app.py"), default_timeout=60), run_dir)
        finally:
            sleeper.kill()
            sleeper.wait()


def _refreshes(at, run_dir: Path) -> list[dict]:
    metrics = run_dir / "metrics.jsonl"
    written = 0
    results = []
    at.switch_page("app_pages/3_Training.py")
    for target in (1_000, 10_000, 100_000):
        written = _append_steps(metrics, written, target)
        at.run()                                      # the session's cache catches up to `target`
        samples = []
        for _ in range(5):
            written = _append_steps(metrics, written, written + NEW_STEPS_PER_REFRESH)
            before = _rchar()
            t0 = time.perf_counter()
            at.run()
            samples.append((time.perf_counter() - t0, _rchar() - before))
        assert not at.exception, at.exception
        results.append({"steps_in_file": written, "file_bytes": metrics.stat().st_size,
                        "new_bytes_per_refresh": _step_bytes(NEW_STEPS_PER_REFRESH),
                        "read_bytes_per_refresh": statistics.median(b for _, b in samples),
                        "seconds_per_refresh": statistics.median(t for t, _ in samples)})
    return results


def _step_line(step: int) -> str:
    return json.dumps({"event": "step", "step": step, "epoch": 1, "loss": 0.1 + (step % 7) / 100, "loss_avg": 0.12,
                       "lr_unet": 1e-4, "lr_te": 5e-5, "s_per_step": 0.4, "time": 1.7e9 + step}) + "\n"


def _step_bytes(count: int) -> int:
    return len(_step_line(100_000)) * count


def _append_steps(path: Path, written: int, target: int) -> int:
    with open(path, "a") as f:
        f.write("".join(_step_line(s) for s in range(written + 1, target + 1)))
    return target


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


def main() -> None:
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        startup = bench_startup(home / "startup")
        server = start_server(home / "ui", home / "ui.log")
        try:
            switches = bench_page_switches(server)
            libtorch = torch_mapped(server.proc.pid)
        finally:
            stop_server(server)
        refresh = bench_training_refresh(home)
    result = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU cores",
        "startup_to_health_s": {"median": statistics.median(startup), "samples": startup, "target": 5.0},
        "server_has_libtorch_mapped": libtorch,
        "page_switch_s": switches, "page_switch_target_s": 1.0,
        "training_refresh": refresh,
    }
    (out / "app.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
