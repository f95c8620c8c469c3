"""The trainer in several processes, for real: two CPU processes started by torchrun, talking over
gloo, train the demo's tiny SD1 model. The batches are shared between them, the gradients averaged,
only process 0 writes, the weights stay identical on both, and a Stop reaching process 0 alone
stops both after the same step."""
from __future__ import annotations

import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer.data import accumulation_groups, process_share
from trainer.processes import process_seed
from workbench.config.schema import load_toml
from workbench.errors import UserError
from workbench.lora.hashes import model_hash_file
from workbench.lora.header import metadata_of, read_header
from workbench.models.demo import build_demo
from workbench.planning.plan import count_steps, make_plan
from workbench.runs import registry as runs

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = 2


# ---------------------------------------------------------------- the share of each process

@pytest.mark.parametrize("processes", [1, 2, 3, 4])
@pytest.mark.parametrize("accumulation", [1, 2, 3])
def test_every_process_steps_as_often_as_the_plan_says(processes, accumulation):
    for batches in range(1, 14):
        epoch = list(range(batches))
        shares = [process_share(epoch, index, processes) for index in range(processes)]
        per_process = math.ceil(batches / processes)
        assert [len(share) for share in shares] == [per_process] * processes
        # round-robin, a last round the batches do not fill completed from the epoch's start
        rounds = [share[r] for r in range(per_process) for share in shares]
        assert rounds == (epoch * processes)[:per_process * processes]
        assert set(rounds) == set(epoch)
        # the same number of optimizer steps on every process (none waits alone in an all-reduce),
        # and it is the plan's: sd-scripts' ceil(batches / processes / accumulation)
        _, steps_per_epoch, _, _ = count_steps({(64, 64): batches}, 1, accumulation, processes, 1, 0)
        assert steps_per_epoch == math.ceil(batches / processes / accumulation)
        assert [len(accumulation_groups(share, accumulation)) for share in shares] == [steps_per_epoch] * processes


def test_process_zero_keeps_the_seed_and_the_others_draw_their_own():
    assert process_seed(42, 0) == 42 and process_seed(42, 0, step=7) == 42
    others = [process_seed(42, index) for index in (1, 2, 3)]
    assert len(set(others + [42])) == 4
    assert process_seed(42, 1, step=7) != process_seed(42, 1)       # a resumed run does not replay its noise
    assert process_seed(42, 1) == process_seed(42, 1)


def test_a_state_resumes_only_with_the_number_of_processes_that_saved_it():
    from trainer.recipe import resumed_progress
    saved = {"step": 9, "epoch": 1, "groups_done": 0, "seed": 42, "processes": 2}
    assert resumed_progress(saved, "s", 2).step == 9
    with pytest.raises(UserError, match="resume: s was trained by 2 process.*now 1"):
        resumed_progress(saved, "s", 1)
    older = {k: v for k, v in saved.items() if k != "processes"}     # saved before several processes could train
    assert resumed_progress(older, "s", 1).processes == 1


# ---------------------------------------------------------------- two processes end to end

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_demo(tmp_path_factory.mktemp("mp") / "demo")


def two_process_config(demo, out: Path, **changes):
    cfg, _ = load_toml(demo.config)
    return cfg.replace(output_dir=str(out), **changes)


def launch_two_processes(cfg, run_dir: Path) -> subprocess.Popen:
    """torchrun --standalone (a free port: other runs may be training beside this one)."""
    runs.create_run(cfg, run_dir)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(PROCESSES),
               "-m", "trainer", str(run_dir)]
    with open(run_dir / "trainer.log", "wb") as log:
        return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def of_kind(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["event"] == kind]


@pytest.fixture(scope="module")
def trained(demo, tmp_path_factory):
    """Two epochs; accumulation 2 leaves a short last group; no seed, so process 0 must share the
    one it draws; module_dropout skips different modules on the two processes (a gradient on one,
    none on the other)."""
    base = tmp_path_factory.mktemp("mp-run")
    cfg = two_process_config(demo, base / "out", max_train_epochs=2, gradient_accumulation_steps=2, seed=None,
                             network_args=["module_dropout=0.3"], sample_every_n_epochs=2)
    proc = launch_two_processes(cfg, base / "run")
    code = proc.wait(timeout=300)
    return {"cfg": cfg, "run": base / "run", "code": code, "plan": make_plan(cfg, num_processes=PROCESSES),
            "events": runs.read_metrics(base / "run"), "status": runs.read_status(base / "run"),
            "log": (base / "run" / "trainer.log").read_text(errors="replace")}


@pytest.mark.slow
def test_two_processes_run_the_plan_divided_between_them(trained):
    plan, events, status = trained["plan"], trained["events"], trained["status"]
    assert trained["code"] == 0, trained["log"][-3000:]
    assert plan.batches_per_epoch == 18 and plan.steps_per_epoch == math.ceil(18 / PROCESSES / 2) == 5
    start = of_kind(events, "start")
    assert [(e["total_steps"], e["num_processes"]) for e in start] == [(plan.total_steps, PROCESSES)]
    assert [e["step"] for e in of_kind(events, "step")] == list(range(1, plan.total_steps + 1))
    assert [e["status"] for e in of_kind(events, "end")] == ["finished"]
    assert status["state"] == "finished" and status["step"] == plan.total_steps == 10


@pytest.mark.slow
def test_only_process_zero_writes(trained):
    cfg, events, run_dir = trained["cfg"], trained["events"], trained["run"]
    saves = of_kind(events, "save")
    assert [(Path(e["path"]).name, e["step"]) for e in saves] == [("demo-lora-000001.safetensors", 5),
                                                                   ("demo-lora.safetensors", 10)]
    assert sorted(p.name for p in Path(cfg.output_dir).iterdir()) == ["demo-lora-000001.safetensors",
                                                                      "demo-lora.safetensors"]
    assert trained["status"]["outputs"] == [e["path"] for e in saves]
    samples = sorted(p.name for p in (run_dir / "samples").iterdir())
    assert [re.sub(r"_\d{14}_", "_", n) for n in samples] == ["demo-lora_e000002_00_1.png", "demo-lora_e000002_01_2.png"]
    assert sorted(Path(e["path"]).name for e in of_kind(events, "sample")) == samples
    assert len(list((run_dir / "tb").iterdir())) == 1            # one TensorBoard event file
    assert trained["log"].count("\nfinished\n") == 1             # the other process logs nothing


@pytest.mark.slow
def test_both_processes_hold_the_same_weights_from_start_to_every_save(trained):
    log, seed = trained["log"], trained["status"]["seed"]
    assert f"initial LoRA weights: the same on all {PROCESSES} processes" in log     # the drawn seed was shared
    agreed = dict(re.findall(rf"LoRA weights at step (\d+): the same on all {PROCESSES} processes "
                             r"\(sshs_model_hash ([0-9a-f]{64})\)", log))
    assert sorted(agreed, key=int) == ["5", "10"]
    for event in of_kind(trained["events"], "save"):
        path = Path(event["path"])
        meta = metadata_of(read_header(path)[1])
        assert model_hash_file(path) == meta["sshs_model_hash"] == agreed[str(event["step"])]
        assert (meta["ss_seed"], meta["ss_num_batches_per_epoch"]) == (str(seed), "9")   # batches per process


@pytest.mark.slow
def test_stop_sent_to_process_zero_stops_both_after_the_same_step(demo, tmp_path):
    """The app's Stop: SIGTERM to the pid in status.json, which is process 0's; process 1 never
    sees a signal and still stops after the same step, so the stopped save can compare them."""
    cfg = two_process_config(demo, tmp_path / "out", max_train_epochs=100, sample_every_n_epochs=None)
    run_dir = tmp_path / "run"
    proc = launch_two_processes(cfg, run_dir)
    deadline = time.monotonic() + 300
    while len(of_kind(runs.read_metrics(run_dir), "step")) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, runs.log_tail(run_dir)
        time.sleep(0.2)
    assert runs.stop(run_dir)
    assert proc.wait(timeout=120) == 0, runs.log_tail(run_dir)
    events, status = runs.read_metrics(run_dir), runs.read_status(run_dir)
    last_step = of_kind(events, "step")[-1]["step"]
    stopped = tmp_path / "out" / f"demo-lora-stopped-step{last_step}.safetensors"
    assert [e["status"] for e in of_kind(events, "end")] == ["stopped"] and status["state"] == "stopped"
    assert status["outputs"] == [str(stopped)] and sorted((tmp_path / "out").iterdir()) == [stopped]
    log = (run_dir / "trainer.log").read_text(errors="replace")
    assert f"LoRA weights at step {last_step}: the same on all {PROCESSES} processes" in log


@pytest.mark.slow
def test_a_process_that_fails_alone_ends_the_run_failed_not_hung(demo, tmp_path):
    """An image that breaks only when process 1 decodes it (the header scan reads its size): process
    1 fails in its first step; process 0, waiting for it in the all-reduce, ends the run "failed"
    and says where the error is, instead of hanging or leaving a stale status.json."""
    import shutil

    from trainer.data import epoch_batches
    train = Path(shutil.copytree(demo.train_dir, tmp_path / "train"))
    cfg = two_process_config(demo, tmp_path / "out", train_data_dir=str(train), max_train_epochs=1,
                             cache_latents=False, sample_every_n_epochs=None)
    batches = epoch_batches(make_plan(cfg, num_processes=PROCESSES), cfg.seed, 0)
    first = [{im.info.path for im in process_share(batches, index, PROCESSES)[0].images} for index in (0, 1)]
    victim = sorted(p for p in first[1] - first[0] if p.parent.parent == train)[0]
    victim.write_bytes(victim.read_bytes()[:victim.stat().st_size // 2])        # truncated pixels
    proc = launch_two_processes(cfg, tmp_path / "run")
    assert proc.wait(timeout=120) != 0
    events, status = runs.read_metrics(tmp_path / "run"), runs.read_status(tmp_path / "run")
    log = (tmp_path / "run" / "trainer.log").read_text(errors="replace")
    assert f"process 1: failed: {victim}: not a readable image" in log
    assert [e["status"] for e in of_kind(events, "end")] == ["failed"] and status["state"] == "failed"
    assert status["error"].startswith("another training process stopped answering")
    assert status["error"].endswith("its own error is in trainer.log")
