"""The estimate a run starts with is kept in its run dir (estimate.json, written by
runs.create_run, the one place every start goes through), and the run history shows it beside the
run's measured s/step and the ratio. Real run dirs, a real dataset for the plan."""
from __future__ import annotations

import json
import time

from tests.conftest import make_image
from workbench import workspace
from workbench.config.schema import TrainConfig
from workbench.planning.estimate import estimate
from workbench.runs import queue as run_queue
from workbench.runs import registry as runs
from workbench.runs.estimate_record import ESTIMATE_FILE, estimate_check, read_estimate
from workbench.views.training import history_rows


def dataset_config(tmp_path, **changes) -> TrainConfig:
    for i in range(4):
        make_image(tmp_path / "train" / "1_x" / f"{i}.png", (512, 512))
    return TrainConfig(train_data_dir=str(tmp_path / "train"), output_dir=str(tmp_path / "out"), max_train_epochs=2,
                       train_batch_size=1, **changes)


def finish(run_dir, seconds: list[float], elapsed_s: float = 10.0) -> None:
    """The files a finished trainer leaves: step events with their s/step, status finished."""
    events = [{"event": "step", "step": i, "s_per_step": s} for i, s in enumerate(seconds, start=1)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    now = time.time()
    runs.write_status(run_dir, state="finished", step=len(seconds), total_steps=len(seconds),
                      started_at=now - elapsed_s, finished_at=now)


def test_a_new_run_records_the_estimate_the_start_panel_shows(tmp_path):
    cfg = dataset_config(tmp_path)
    finish(runs.create_run(cfg, workspace.runs_dir() / "20260101-000000-earlier"), [0.25] * 8)
    shown = estimate(cfg, 8, runs.list_runs(), gpu=None)          # what the Training page says before Start
    run_dir = runs.create_run(cfg, workspace.runs_dir() / "20260102-000000-next")
    recorded = read_estimate(run_dir)
    assert recorded["seconds"] == shown.seconds == 2.0 and recorded["total_steps"] == 8
    assert recorded["s_per_step"] == 0.25 and recorded["basis"] == shown.basis
    assert "measured by run 20260101-000000-earlier" in recorded["basis"]


def test_a_queued_run_records_it_too_and_an_unplannable_config_is_never_refused_for_it(tmp_path):
    queued = run_queue.enqueue(dataset_config(tmp_path))
    assert (queued / ESTIMATE_FILE).is_file() and read_estimate(queued)["total_steps"] == 8
    broken = runs.create_run(TrainConfig(train_data_dir=str(tmp_path / "nothing")))
    recorded = read_estimate(broken)
    assert recorded["seconds"] is None and recorded["basis"].startswith("not estimated: ")
    assert "nothing" in recorded["basis"]


def test_the_history_shows_estimate_actual_and_their_ratio_once_the_run_ended(tmp_path):
    cfg = dataset_config(tmp_path)
    finish(runs.create_run(cfg, workspace.runs_dir() / "20260101-000000-earlier"), [0.25] * 8)
    run_dir = runs.create_run(cfg, workspace.runs_dir() / "20260102-000000-next")
    (row,) = [r for r in history_rows(runs.list_runs()) if r["run"] == run_dir.name]
    assert (row["estimate"], row["est. s/step"], row["s/step"], row["actual ÷ est."]) == ("2 s", "0.250", "", "")
    finish(run_dir, [3.0, 3.0, 3.0, 0.5, 0.5, 0.5, 0.5, 0.5], elapsed_s=65)     # warm-up steps left out
    (row,) = [r for r in history_rows(runs.list_runs()) if r["run"] == run_dir.name]
    assert (row["s/step"], row["actual ÷ est."], row["duration"]) == ("0.500", "2.00×", "1 min 05 s")


def test_a_running_run_and_a_run_from_before_estimates_leave_the_cells_empty(tmp_path):
    cfg = dataset_config(tmp_path)
    old = runs.create_run(cfg, workspace.runs_dir() / "20250101-000000-old")
    (old / ESTIMATE_FILE).unlink()
    finish(old, [0.4] * 8)
    check = estimate_check(old, ended=True)
    assert check.estimated_s_per_step is None and check.actual_s_per_step == 0.4 and check.ratio is None
    assert estimate_check(old, ended=False).actual_s_per_step is None     # the live view has its s/step
    (old / ESTIMATE_FILE).write_text("not json")
    assert read_estimate(old) == {}
