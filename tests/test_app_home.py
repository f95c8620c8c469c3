"""AppTest of the entry page (app.py), the first start that builds the demo, and the rule that
the app process never imports torch (the health check must answer fast)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from workbench import workspace
from workbench.config.schema import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
PAGES = ("app_pages/1_Dataset.py", "app_pages/2_Parameters.py", "app_pages/3_Training.py", "app_pages/4_Inspect.py")


def run_home() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    return at


def test_home_links_the_four_jobs_and_names_the_workspace(tmp_path):
    workspace.save_current(TrainConfig(pretrained_model_name_or_path=str(tmp_path / "my-model"), output_name="mine"))
    at = run_home()
    assert at.title[0].value == "LoRA Workbench"
    links = at.get("page_link")
    # the url path Streamlit gives each file of app_pages/ (it resolved every one: a missing page raises)
    assert [link.proto.page for link in links] == ["Dataset", "Parameters", "Training", "Inspect"]
    assert [link.proto.label for link in links] == ["Dataset", "Parameters", "Training", "Inspect"]
    text = "\n".join(m.value for m in at.markdown)
    assert str(workspace.home()) in text and "my-model" in text and "0 run(s)" in text
    assert not at.info                    # not the demo: no demo notice


@pytest.mark.slow
def test_first_start_builds_the_demo_once_and_says_it_has_random_weights():
    """Two sessions start at once (a refresh or a second tab while the first start builds the
    demo): they used to run two builds that collided, "Directory not empty" in both tabs."""
    from concurrent.futures import ThreadPoolExecutor

    from ui.shared_page import build_demo_once
    assert not workspace.current_config_path().exists()
    with ThreadPoolExecutor(max_workers=2) as pool:
        problems = list(pool.map(lambda _: build_demo_once(), range(2)))
    assert problems == [None, None]
    at = run_home()
    cfg = workspace.load_current()
    assert cfg is not None and cfg.pretrained_model_name_or_path.startswith(str(workspace.demo_dir()))
    assert Path(cfg.train_data_dir).is_dir()
    assert any("random weights" in i.value for i in at.info)
    assert any("random weights" in i.value for i in at.sidebar.info)


PROBE = """
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=60).run()
errors = [str(at.exception)] if at.exception else []
for page in sys.argv[2:]:
    at.switch_page(page).run()
    errors += [f"{page}: {e}" for e in at.exception]
heavy = sorted(m for m in ("torch", "diffusers", "transformers", "accelerate") if m in sys.modules)
print(json.dumps({"heavy": heavy, "errors": errors}))
"""


def test_no_page_imports_torch_in_the_app_process(tmp_path):
    """A fresh interpreter renders every page: torch & co. must not be in its sys.modules."""
    workspace.save_current(TrainConfig(pretrained_model_name_or_path=str(tmp_path)))
    done = subprocess.run([sys.executable, "-c", PROBE, APP, *PAGES], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert result["heavy"] == []
