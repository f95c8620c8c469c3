"""The GPU benchmark is run once on a lent GPU; here its --tiny grid proves on the CPU that the
script, and the trainer code it times, run end to end and write what they promise."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_bench_tiny_grid_runs_on_the_cpu(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/gpu_bench.py", "--tiny", "--warmup", "1", "--steps", "2",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_bench_tiny.json").read_text())
    assert result["info"]["device"] == "cpu" and len(result["cells"]) == 6
    for cell in result["cells"]:
        assert "error" not in cell, cell
        assert cell["s_per_step"] > 0 and cell["images_per_s"] == pytest.approx(cell["batch"] / cell["s_per_step"])
        assert cell["flops_per_step"] > 0 and cell["steps_timed"] == 2 and cell["compiled_graphs"] == 0
    with_checkpointing = [c["flops_per_step"] for c in result["cells"] if c["gradient_checkpointing"]]
    without = [c["flops_per_step"] for c in result["cells"] if not c["gradient_checkpointing"] and c["batch"] == 1]
    assert min(with_checkpointing) > max(without)      # checkpointing recomputes the forward


@pytest.mark.slow
def test_gpu_bench_compiled_cells_run_through_torch_compile(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/gpu_bench.py", "--tiny", "--compiled", "--warmup", "1",
                           "--steps", "2", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [cell] = json.loads((tmp_path / "gpu_bench_tiny_compiled.json").read_text())["cells"]
    assert "error" not in cell, cell
    assert cell["compiled"] == "eager" and cell["compiled_graphs"] >= 1
    assert cell["s_per_step"] > 0 and cell["flops_per_step"] > 0
