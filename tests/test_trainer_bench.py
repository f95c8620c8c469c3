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


@pytest.mark.slow
def test_gpu_peers_tiny_runs_all_four_cells_and_writes_the_promised_json(tmp_path):
    out = tmp_path / "gpu-peers.json"
    done = subprocess.run([sys.executable, "benchmarks/gpu_peers.py", "--tiny", "--warmup", "1", "--steps", "1",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["info"]) == {"device", "date", "torch"} and result["info"]["device"] == "cpu"
    assert [(c["name"], c["batch"]) for c in result["cells"]] == [
        (name, batch) for batch in (1, 2) for name in ("floor", "floor-compiled", "peft", "trainer")]
    for cell in result["cells"]:
        assert "error" not in cell, cell
        assert {"name", "model", "resolution", "batch", "s_per_step", "peak_memory_gib", "compile_s"} <= set(cell)
        assert cell["model"] == "tiny-sd1" and cell["resolution"] == 128
        assert cell["s_per_step"] > 0 and cell["compile_s"] >= 0 and cell["peak_memory_gib"] is None   # no CUDA
    assert result["compile_s_10_buckets"] >= 0
