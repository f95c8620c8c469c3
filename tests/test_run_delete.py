"""Deleting runs from the history: the run dir goes, the LoRA files stay unless asked; a live or
queued run is refused. The Training page's popover asks first (AppTest)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from workbench import workspace
from workbench.config.schema import TrainConfig
from workbench.runs import registry as runs
from workbench.runs.delete import delete_run

ROOT = Path(__file__).resolve().parents[1]


def finished_run(tmp_path: Path, name: str) -> tuple[Path, Path]:
    lora = tmp_path / "out" / f"{name}.safetensors"
    lora.parent.mkdir(parents=True, exist_ok=True)
    lora.write_bytes(b"a LoRA")
    run_dir = runs.create_run(TrainConfig(output_dir=str(lora.parent), output_name=name),
                              workspace.runs_dir() / f"20260101-000000-{name}")
    runs.write_status(run_dir, state="finished", outputs=[str(lora)])
    return run_dir, lora


def test_the_run_goes_and_its_lora_stays_unless_asked(tmp_path):
    kept_dir, kept = finished_run(tmp_path, "kept")
    gone_dir, gone = finished_run(tmp_path, "gone")
    delete_run(kept_dir)
    assert not kept_dir.exists() and kept.read_bytes() == b"a LoRA"
    assert delete_run(gone_dir, with_loras=True) == [gone, gone_dir]
    assert not gone.exists() and not gone_dir.exists()


def test_a_live_run_is_refused(tmp_path):
    run_dir, _ = finished_run(tmp_path, "live")
    runs.write_status(run_dir, state="running", pid=os.getpid(), pid_start=runs.proc_start_time(os.getpid()))
    with pytest.raises(runs.UserError, match="is running: stop it before deleting it"):
        delete_run(run_dir)
    assert run_dir.is_dir()


def test_the_training_page_asks_before_deleting(tmp_path):
    workspace.save_current(TrainConfig(output_dir=str(tmp_path / "out")))
    run_dir, lora = finished_run(tmp_path, "old")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["run"] = run_dir.name
    at.switch_page("app_pages/3_Training.py").run()
    assert not at.exception, at.exception
    assert run_dir.is_dir()                       # nothing happens before the confirmation button
    at.button(key=f"delete-{run_dir.name}").click().run()
    assert not run_dir.exists() and lora.is_file()
    assert not at.exception and any(f"Deleted {run_dir.name}" in t.value for t in at.toast)
