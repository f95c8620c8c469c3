"""The estimate before Start: from this workspace's finished runs with the same settings (their
own s/step and recorded peak memory), else the GPU table of benchmarks/RESULTS.md for this GPU,
else it says why there is none. Real run folders, real `workbench plan`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from workbench import workspace
from workbench.config.schema import TrainConfig, save_toml
from workbench.planning.estimate import GPU_TABLE, estimate
from workbench.runs import registry as runs

ROOT = Path(__file__).resolve().parents[1]


def finished(cfg: TrainConfig, name: str, seconds: list[float], peak_bytes: int | None = None) -> Path:
    run_dir = runs.create_run(cfg, workspace.runs_dir() / name)
    with open(run_dir / "metrics.jsonl", "w") as f:
        for i, s in enumerate(seconds, start=1):
            f.write(json.dumps({"event": "step", "step": i, "s_per_step": s}) + "\n")
    runs.write_status(run_dir, state="finished", peak_gpu_memory_bytes=peak_bytes)
    return run_dir


def test_a_finished_run_with_the_same_settings_calibrates_the_estimate():
    cfg = TrainConfig(resolution="768,768", train_batch_size=2, mixed_precision="bf16")
    finished(cfg.replace(train_batch_size=8), "20260101-000000-other", [9.0] * 10)      # other settings
    finished(cfg, "20260102-000000-same", [5.0, 5.0, 5.0, 0.5, 0.7, 0.6], peak_bytes=3 * 2**30)
    found = estimate(cfg, 1000, runs.list_runs(), gpu=None)
    assert found.seconds == 600.0 and found.peak_gib == 3.0                # 1000 × 0.6 s (warm-up steps left out)
    assert "measured by run 20260102-000000-same" in found.line() and "10 min" in found.line()


def test_the_gpu_table_is_used_on_its_gpu_only_and_an_unknown_gpu_is_said():
    sd15 = TrainConfig(resolution="512,512", train_batch_size=4, mixed_precision="bf16", network_dim=16,
                       optimizer_type="AdamW")
    assert GPU_TABLE[1].s_per_step == 0.156
    on_h200 = estimate(sd15, 1000, [], gpu="NVIDIA H200")
    assert on_h200.seconds == 156.0 and on_h200.peak_gib == 6.6 and "RESULTS.md, H200" in on_h200.basis
    other = estimate(sd15, 1000, [], gpu="NVIDIA GeForce RTX 4090")
    assert other.seconds is None and "NVIDIA GeForce RTX 4090 with these settings is not measured" in other.line()
    none = estimate(sd15.replace(sdxl=True), 1000, [], gpu=None)
    assert none.seconds is None and "no CUDA GPU found" in none.line()


def test_workbench_plan_prints_the_estimate(tmp_path):
    from tests.conftest import make_image
    for i in range(4):
        make_image(tmp_path / "train" / "1_x" / f"{i}.png", (512, 512))
    cfg = TrainConfig(train_data_dir=str(tmp_path / "train"), output_dir=str(tmp_path / "out"), max_train_epochs=2,
                      train_batch_size=1)
    finished(cfg, "20260101-000000-earlier", [0.25] * 8)
    config = save_toml(cfg, tmp_path / "c.toml")
    text = subprocess.run([sys.executable, "-m", "workbench", "plan", str(config)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert "Estimate:          About 2 s (8 steps × 0.250 s/step, measured by run 20260101-000000-earlier" \
        in text.stdout
    data = json.loads(subprocess.run([sys.executable, "-m", "workbench", "plan", str(config), "--json", "--estimate"],
                                     cwd=ROOT, capture_output=True, text=True, timeout=60).stdout)
    assert data["estimate"]["seconds"] == 2.0 and data["total_steps"] == 8


def test_the_training_page_shows_the_estimate_beside_the_step_count(tmp_path):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import make_image
    for i in range(4):
        make_image(tmp_path / "train" / "1_x" / f"{i}.png", (512, 512))
    cfg = TrainConfig(train_data_dir=str(tmp_path / "train"), output_dir=str(tmp_path / "out"), max_train_epochs=30,
                      train_batch_size=1)
    workspace.save_current(cfg)
    finished(cfg, "20260101-000000-earlier", [1.5] * 10)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("app_pages/3_Training.py").run()
    assert not at.exception, at.exception
    line = next(m.value for m in at.markdown if "120 steps" in m.value)
    assert "About 3 min (120 steps × 1.500 s/step, measured by run 20260101-000000-earlier" in line
