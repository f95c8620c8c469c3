"""training_view: EMA, progress/ETA, chart frames, outputs/samples, history, failure diagnosis
with the texts real failures print, and the start checks."""
from __future__ import annotations

import json
import re
import sys

import pytest

from tests.conftest import diffusers_stub
from workbench import workspace
from workbench.config.schema import TrainConfig
from workbench.errors import UserError
from workbench.runs import registry as runs
from workbench.runs.registry import start_blockers, start_run
from workbench.views.training import (
    Ema,
    RunMetrics,
    diagnose,
    ema,
    format_duration,
    history_rows,
    last_error_line,
    lora_files,
    output_files,
    progress,
    run_error,
    sample_images,
    seconds_per_step,
)


def step(s, loss=0.5, lr_unet=1e-4, lr_te=5e-5, s_per_step=0.5, time=None):
    return {"event": "step", "step": s, "epoch": 1, "loss": loss, "loss_avg": loss, "lr_unet": lr_unet,
            "lr_te": lr_te, "s_per_step": s_per_step, "time": 1000.0 + s if time is None else time}


# ---------------------------------------------------------------- EMA

def test_ema_is_debiased_and_follows_the_formula():
    values = [1.0, 2.0, 3.0]
    w = 0.9
    raw, expected = 0.0, []
    for n, x in enumerate(values, 1):
        raw = w * raw + (1 - w) * x
        expected.append(raw / (1 - w ** n))
    assert ema(values, w) == pytest.approx(expected)
    assert ema([4.0], 0.9) == [pytest.approx(4.0)]        # no pull towards 0 at the start


def test_ema_skips_nan_and_keeps_the_curve():
    smoothed = ema([1.0, float("nan"), 1.0], 0.5)
    assert smoothed[1] == smoothed[0] == pytest.approx(1.0) and smoothed[2] == pytest.approx(1.0)
    assert Ema().current() is None


def test_run_metrics_grow_incrementally_and_match_a_single_pass():
    events = [{"event": "start", "total_steps": 6}] + [step(s, loss=1.0 / s) for s in range(1, 7)]
    once, twice = RunMetrics(), RunMetrics()
    once.add(events)
    twice.add(events[:3])
    twice.add(events[3:])
    assert once.smoothed == twice.smoothed == ema([1.0 / s for s in range(1, 7)])
    assert twice.last_step == 6 and twice.start["total_steps"] == 6


def test_loss_frame_leaves_nan_out_and_lr_frame_has_both_groups():
    m = RunMetrics()
    m.add([step(1, 0.4), step(2, float("nan")), step(3, 0.2, lr_te=None)])
    loss = m.loss_frame()
    raw = loss[loss.series == "raw"]
    assert list(raw.step) == [1, 3] and not loss.loss.isna().any()
    assert list(loss[loss.series == "smoothed"].step) == [1, 2, 3]
    lr = m.lr_frame()
    assert sorted(set(lr.group)) == ["Text encoder", "UNet"]
    assert list(lr[lr.group == "Text encoder"].step) == [1, 2]


def test_validation_loss_is_drawn_beside_the_training_loss_and_removed_saves_drop_out():
    m = RunMetrics()
    m.add([step(1, 0.4), step(2, 0.3),
           {"event": "validation", "per": "step", "step": 2, "epoch": 1, "loss": 0.45, "divergence": 0.1},
           {"event": "save", "path": "/o/x-step00000002.safetensors", "epoch": 1, "step": 2},
           {"event": "save", "path": "/o/x-step00000004.safetensors", "epoch": 1, "step": 4},
           {"event": "remove", "path": "/o/x-step00000002.safetensors", "step": 4}])
    loss = m.loss_frame()
    validation = loss[loss.series == "validation"]
    assert list(zip(validation.step, validation.loss)) == [(2, 0.45)]
    assert [s["path"] for s in m.saves] == ["/o/x-step00000004.safetensors"]


def test_chart_frames_are_thinned_to_a_fixed_size_and_keep_the_last_step():
    m = RunMetrics()
    m.add([step(s) for s in range(1, 10_001)])
    frame = m.loss_frame(max_points=500)
    raw_steps = list(frame[frame.series == "raw"].step)
    assert len(raw_steps) <= 500 and raw_steps[-1] == 10_000


# ---------------------------------------------------------------- progress

def test_eta_is_steps_left_times_recent_seconds_per_step():
    m = RunMetrics()
    # the first steps are slow (warm-up); s/step is the mean of the latest 20
    m.add([step(s, s_per_step=5.0) for s in range(1, 6)] + [step(s, s_per_step=0.5) for s in range(6, 41)])
    p = progress({"state": "running", "step": 40, "total_steps": 100, "started_at": 0.0}, m, running=True, now=30.0)
    assert p.s_per_step == pytest.approx(0.5)
    assert p.eta_s == pytest.approx(60 * 0.5)
    assert p.fraction == pytest.approx(0.4) and p.elapsed_s == pytest.approx(30.0)
    assert p.text() == "step 40/100 · 0.50 s/step · ETA 30 s · elapsed 30 s"


def test_no_eta_when_not_running_and_speed_from_times_without_s_per_step():
    m = RunMetrics()
    m.add([{"event": "step", "step": s, "loss": 0.1, "time": 100.0 + 2 * s} for s in range(1, 6)])
    assert seconds_per_step(m) == pytest.approx(2.0)
    p = progress({"state": "finished", "total_steps": 5, "started_at": 100.0, "updated_at": 112.0}, m, running=False)
    assert p.eta_s is None and p.fraction == 1.0 and p.elapsed_s == pytest.approx(12.0)


def test_total_comes_from_the_start_event_when_status_has_none():
    m = RunMetrics()
    m.add([{"event": "start", "total_steps": 50}, step(1)])
    assert progress({}, m, running=True).total == 50


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (59.4, "59 s"), (65, "1 min 05 s"), (3600 + 125, "1 h 02 min")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


# ---------------------------------------------------------------- files of a run

def test_outputs_and_samples(tmp_path):
    from PIL import Image
    (tmp_path / "samples").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "samples" / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "samples" / "stray.png")
    m = RunMetrics()
    m.add([{"event": "save", "path": "/o/x-000001.safetensors", "epoch": 1, "step": 3},
           {"event": "sample", "path": "samples/a.png", "prompt": "a cat", "step": 3},
           {"event": "sample", "path": "samples/gone.png", "prompt": "missing", "step": 4}])
    status = {"outputs": ["/o/x.safetensors", "/o/x-000001.safetensors"]}
    assert output_files(status, m) == ["/o/x.safetensors", "/o/x-000001.safetensors"]
    assert sample_images(tmp_path, m) == [(tmp_path / "samples" / "a.png", "step 3: a cat"),
                                          (tmp_path / "samples" / "stray.png", "stray.png")]


def test_lora_files_lists_existing_saved_safetensors_once(tmp_path):
    kept, gone = tmp_path / "a.safetensors", tmp_path / "gone.safetensors"
    kept.write_bytes(b"x")
    new = runs.RunInfo(tmp_path / "r2", {"outputs": [str(kept), str(gone), str(tmp_path / "a.ckpt")]}, "finished")
    old = runs.RunInfo(tmp_path / "r1", {"outputs": [str(kept)]}, "finished")
    assert lora_files([new, old]) == [str(kept)]


def test_history_rows(tmp_path):
    info = runs.RunInfo(tmp_path / "20260101-000000-x", {"state": "finished", "step": 30, "total_steps": 30,
                        "started_at": 1000.0, "updated_at": 1125.0, "outputs": ["/o/x.safetensors"]}, "finished")
    (row,) = history_rows([info])
    assert row["run"] == "20260101-000000-x" and row["state"] == "finished"
    assert row["duration"] == "2 min 05 s" and row["steps"] == "30/30" and row["outputs"] == "x.safetensors"


# ---------------------------------------------------------------- diagnosis

TRACEBACK = 'Traceback (most recent call last):\n  File "/app/trainer/recipe.py", line 212, in train\n    loss.backward()\n'
CASES = [
    ("out_of_memory", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 7.79 GiB "
     "total capacity; 6.91 GiB already allocated; 3.06 MiB free; 7.05 GiB reserved in total by PyTorch)"),
    ("out_of_memory", "RuntimeError: [enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
     "memory: you tried to allocate 4294967296 bytes. Error code 12 (Cannot allocate memory)"),
    ("nan_loss", "FloatingPointError: loss is NaN at step 17 (epoch 2): the training diverged"),
    ("nan_loss", "RuntimeError: Function 'MseLossBackward0' returned nan values in its 0th output."),
    ("missing_file", "FileNotFoundError: [Errno 2] No such file or directory: '/data/train/10_cat/img1.png'"),
    ("missing_file", "/models/sd15.safetensors: model not found; give a diffusers folder or a .safetensors checkpoint"),
    ("missing_file", "OSError: Error no file named diffusion_pytorch_model.bin found in directory /models/x/unet."),
    ("wrong_model_family", "/models/sdxl.safetensors is an SDXL model but the config says SD 1.x; set sdxl = true"),
    ("wrong_model_family", "RuntimeError: Error(s) in loading state_dict for UNet2DConditionModel:\n\tsize mismatch "
     "for down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight: copying a param with shape "
     "torch.Size([640, 2048]) from checkpoint, the shape in current model is torch.Size([640, 768])."),
]


@pytest.mark.parametrize("kind, error", CASES)
def test_diagnosis_from_the_status_error(kind, error):
    d = diagnose({"state": "failed", "error": error}, "")
    assert d.kind == kind
    assert d.line and d.line in error


@pytest.mark.parametrize("kind, error", CASES)
def test_diagnosis_from_the_log_when_status_has_no_error(kind, error):
    # a traceback's last line names the exception type; the trainer's own errors are UserErrors
    last = error if re.match(r"[\w.]+(Error|Exception): ", error) else f"workbench.errors.UserError: {error}"
    log = "epoch 1/2\nstep 3/12 loss 0.21\n" + TRACEBACK + last + "\n"
    assert diagnose({"state": "failed"}, log).kind == kind


def test_a_warning_in_the_log_is_not_taken_for_the_cause():
    log = "xformers not found, using SDPA\nstep 1 loss nan\n" + TRACEBACK + "ValueError: bad value for noise_offset\n"
    d = diagnose({"state": "failed"}, log)
    assert d.kind == "error" and d.line == "ValueError: bad value for noise_offset"


def test_unknown_failure_gives_the_last_error_line_and_crash_is_named():
    log = TRACEBACK + "KeyError: 'lr_te'\nsome trailing output\n"
    assert last_error_line(log) == "KeyError: 'lr_te'"
    assert diagnose({"state": "failed"}, log).line == "KeyError: 'lr_te'"
    crashed = diagnose({"state": "running", "error": None}, "step 5/12\n", state="crashed")
    assert crashed.kind == "crashed" and crashed.line == "step 5/12"
    killed = diagnose({"state": "running"}, "step 5/12\nKilled\n", state="crashed")
    assert killed.kind == "out_of_memory"


def test_no_diagnosis_for_a_healthy_run_and_end_event_error_is_used():
    assert diagnose({"state": "finished"}, "loss nan warning") is None
    m = RunMetrics()
    m.add([{"event": "end", "status": "failed", "error": "loss is NaN at step 3"}])
    assert run_error({"state": "failed"}, m) == "loss is NaN at step 3"
    assert run_error({"error": "first"}, m) == "first"


# ---------------------------------------------------------------- starting

def small_config(tmp_path) -> TrainConfig:
    from PIL import Image
    folder = tmp_path / "data" / "1_dog"
    folder.mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(folder / "a.png")
    model = diffusers_stub(tmp_path / "model")
    return TrainConfig(pretrained_model_name_or_path=str(model), train_data_dir=str(tmp_path / "data"),
                       output_dir=str(tmp_path / "out"), output_name="dog", resolution="64,64",
                       min_bucket_reso=64, max_bucket_reso=128, max_train_epochs=1, optimizer_type="AdamW",
                       mixed_precision="bf16")     # fp16 needs a CUDA GPU: Start would refuse it here


def test_start_blockers_name_the_field_or_folder(tmp_path):
    cfg = small_config(tmp_path)
    assert start_blockers(cfg) == []
    assert any("train_data_dir" in p for p in start_blockers(cfg.replace(train_data_dir="")))
    (tmp_path / "empty").mkdir()
    assert any("no training images" in p for p in start_blockers(cfg.replace(train_data_dir=str(tmp_path / "empty"))))
    assert any("bucket_reso_steps" in p for p in start_blockers(cfg.replace(bucket_reso_steps=48)))
    missing = start_blockers(cfg.replace(pretrained_model_name_or_path=str(tmp_path / "nope")))
    assert any("pretrained_model_name_or_path" in p and "not found" in p for p in missing)
    assert any("sdxl" in p for p in start_blockers(cfg.replace(sdxl=True)))     # family contradicts the flags
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "dog.safetensors").write_bytes(b"an earlier run's LoRA")
    assert any("would overwrite" in p for p in start_blockers(cfg))


def test_start_run_refused_for_a_busy_output_leaves_no_empty_run(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "trainer_command", lambda run_dir: [sys.executable, "-c", "import time; time.sleep(30)"])
    cfg = small_config(tmp_path)
    first, _ = start_run(cfg)
    try:
        assert json.loads((first / "status.json").read_text())["state"] == "starting"
        with pytest.raises(UserError, match="already being trained"):
            start_run(cfg)
        assert [r.dir for r in runs.list_runs()] == [first]
        assert len(list(workspace.runs_dir().iterdir())) == 1
    finally:
        runs.stop(first)
