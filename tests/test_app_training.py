"""AppTest of the Training page: no runs; a finished run written by hand in the run-dir contract
format (config.toml, metrics.jsonl, status.json, trainer.log); a crashed run (dead pid); a failed
run with its diagnosis; start → refused second start → stop with a real process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import diffusers_stub
from workbench import workspace
from workbench.config.schema import TrainConfig, save_toml
from workbench.runs import registry as runs

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TOTAL = 12


def make_dataset(root: Path) -> Path:
    from PIL import Image
    folder = root / "data" / "2_cat"
    folder.mkdir(parents=True)
    for i, size in enumerate([(64, 64), (96, 64), (64, 96)]):
        Image.new("RGB", size, (40 * i, 90, 160)).save(folder / f"img{i}.png")
        (folder / f"img{i}.txt").write_text(f"cat, photo {i}", encoding="utf-8")
    return root / "data"


@pytest.fixture
def cfg(tmp_path) -> TrainConfig:
    model = diffusers_stub(tmp_path / "model")
    config = TrainConfig(pretrained_model_name_or_path=str(model), train_data_dir=str(make_dataset(tmp_path)),
                         output_dir=str(tmp_path / "out"), output_name="catlora", resolution="64,64",
                         min_bucket_reso=64, max_bucket_reso=128, max_train_epochs=2, optimizer_type="AdamW",
                       mixed_precision="bf16")     # fp16 needs a CUDA GPU: Start would refuse it here
    workspace.save_current(config)
    return config


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_run(cfg: TrainConfig, name: str, state: str, steps: int, pid: int, error: str = "",
              log: str = "", outputs=()) -> Path:
    """A run dir exactly as the trainer leaves it (the contract in workbench/runs/registry.py)."""
    run_dir = workspace.runs_dir() / name
    run_dir.mkdir(parents=True)
    save_toml(cfg, run_dir / "config.toml")
    now = time.time()
    events = [{"event": "start", "total_steps": TOTAL, "epochs": 2, "batches_per_epoch": 6, "time": now - 60}]
    events += [{"event": "step", "step": s, "epoch": 1 + (s - 1) // 6, "loss": 0.2 + 0.01 * (s % 3),
                "loss_avg": 0.21, "lr_unet": 1e-4, "lr_te": 5e-5, "s_per_step": 0.5, "time": now - 60 + s}
               for s in range(1, steps + 1)]
    events += [{"event": "save", "path": p, "epoch": 2, "step": steps} for p in outputs]
    if state in ("finished", "failed", "stopped"):
        events.append({"event": "end", "status": state, **({"error": error} if error else {})})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    status = {"pid": pid, "pid_start": None, "state": state, "step": steps, "total_steps": TOTAL,
              "started_at": now - 60, "updated_at": now - 60 + steps, "outputs": list(outputs),
              "error": error or None}
    (run_dir / "status.json").write_text(json.dumps(status))
    (run_dir / "trainer.log").write_text(log or "step 1\nstep 2\n")
    return run_dir


def run_page(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page("app_pages/3_Training.py").run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.subheader, *at.caption, *at.info, *at.error, *at.warning, *at.code)]
    return "\n".join(str(p) for p in parts)


def test_renders_with_no_runs(cfg):
    at = run_page()
    assert at.button(key="start").label == "Start training"
    assert "No runs yet" in texts(at)
    assert not at.get("progress")


def test_start_panel_says_how_long_the_run_is(cfg, monkeypatch):
    """The number to check before pressing Start: the plan's steps, next to the button."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")        # no GPU, on any machine: the fast path's CPU answer
    from workbench.planning.plan import make_plan
    plan = make_plan(cfg)
    at = run_page()
    assert f"**{plan.total_steps} steps** ({plan.epochs} epoch(s) of {plan.steps_per_epoch} steps" in texts(at)
    # the fast path's choice, as trainer.log will state it (this test machine has no CUDA GPU)
    assert "· fast path: eager (no compile) — no CUDA GPU: compiling costs minutes on the CPU" in texts(at)
    workspace.save_current(cfg.replace(torch_compile=True))
    assert "· fast path: torch.compile on — torch_compile = true" in texts(run_page())
    workspace.save_current(cfg.replace(train_data_dir=""))
    assert "**steps unknown**" in texts(run_page())


def test_finished_run_shows_progress_charts_outputs_and_history(cfg, tmp_path):
    lora = tmp_path / "out" / "catlora.safetensors"
    lora.parent.mkdir()
    lora.write_bytes(b"x" * 2048)
    write_run(cfg, "20260101-000000-catlora", "finished", TOTAL, dead_pid(), outputs=[str(lora)])
    at = run_page()
    bar = at.get("progress")[0]
    assert bar.proto.value == 100 and f"step {TOTAL}/{TOTAL}" in bar.proto.text
    assert "0.50 s/step" in bar.proto.text and "ETA" not in bar.proto.text   # not running: no ETA
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2
    page_text = texts(at)
    assert "Run 20260101-000000-catlora — finished" in page_text
    assert str(lora) in page_text
    history = at.dataframe[0].value
    assert list(history["state"]) == ["finished"]
    assert history["steps"][0] == f"{TOTAL}/{TOTAL}" and history["outputs"][0] == "catlora.safetensors"


def test_dead_pid_of_a_running_run_shows_crashed(cfg):
    write_run(cfg, "20260101-000000-catlora", "running", 5, dead_pid(), log="step 5\nSegmentation fault\n")
    at = run_page()
    assert "Run 20260101-000000-catlora — crashed" in texts(at)
    assert any("is gone" in e.value for e in at.error)
    assert at.dataframe[0].value["state"][0] == "crashed"
    assert "stop-20260101-000000-catlora" not in [b.key for b in at.button]   # nothing left to stop


def test_failed_run_shows_error_and_diagnosis(cfg):
    error = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 7.79 GiB total capacity)"
    write_run(cfg, "20260101-000000-catlora", "failed", 3, dead_pid(), error=error,
              log=f"Traceback (most recent call last):\n  File \"x.py\", line 1\n{error}\n")
    at = run_page()
    assert any(error in e.value for e in at.error)
    assert any("ran out of memory" in w.value for w in at.warning)


def test_query_param_opens_a_past_run(cfg):
    write_run(cfg, "20260101-000000-catlora", "finished", TOTAL, dead_pid())
    write_run(cfg, "20260102-000000-catlora", "failed", 2, dead_pid(), error="boom")
    newest_first = run_page()
    assert "Run 20260102-000000-catlora — failed" in texts(newest_first)
    at = run_page(run="20260101-000000-catlora")
    assert "Run 20260101-000000-catlora — finished" in texts(at)
    at.selectbox[0].select("20260102-000000-catlora").run()
    assert at.query_params["run"] == ["20260102-000000-catlora"] or at.query_params["run"] == "20260102-000000-catlora"
    assert "Run 20260102-000000-catlora — failed" in texts(at)


def test_invalid_config_is_not_started(cfg):
    workspace.save_current(cfg.replace(train_data_dir=""))
    at = run_page()
    at.button(key="start").click().run()
    assert any("Not started" in e.value and "train_data_dir" in e.value for e in at.error)
    assert runs.list_runs() == []


@pytest.mark.slow
def test_start_refuses_a_second_run_on_the_same_output_and_stop_ends_it(cfg, monkeypatch):
    # a real long-lived process stands in for the trainer, so the lock and the pid checks are real
    monkeypatch.setattr(runs, "trainer_command",
                        lambda run_dir: [sys.executable, "-c", "import time; time.sleep(60)"])
    at = run_page()
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    (first,) = runs.list_runs()
    assert first.active and at.query_params["run"] in (first.name, [first.name])
    at.button(key="start").click().run()          # a run is training: Start queues, unless it writes the same output
    refused = [e.value for e in at.error if "Not started" in e.value]
    assert refused and "writes the same output" in refused[0] and first.name in refused[0]
    assert [r.name for r in runs.list_runs()] == [first.name]
    at.button(key=f"stop-{first.name}").click().run()
    pid = first.status["pid"]
    deadline = time.monotonic() + 20
    while runs.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not runs.pid_alive(pid)


@pytest.mark.slow
def test_tensorboard_button_starts_one_server_in_its_own_session_and_reuses_it(cfg):
    from workbench.runs import tensorboard
    at = run_page()
    at.button[-1].click().run()           # "Start TensorBoard", the page's last button
    assert not at.exception, at.exception
    board = tensorboard.running()
    try:
        assert board is not None and board.logdir == str(workspace.runs_dir().absolute())
        assert os.getsid(board.pid) == board.pid != os.getsid(0)       # its own session: outlives the app
        assert tensorboard.wait_ready(board)
        with urllib.request.urlopen(board.url, timeout=10) as response:
            assert response.status == 200
        links = at.get("link_button")
        assert links and links[0].proto.url == board.url
        again = run_page()                 # a new session (a refresh) reuses the live server
        assert tensorboard.ensure_running() == board
        assert again.get("link_button")[0].proto.url == board.url
    finally:
        if board is not None:
            tensorboard.stop(board)
    assert tensorboard.running() is None


def test_tensorboard_stop_button_ends_it_and_leaves_no_defunct_process(cfg):
    from workbench.runs import registry as runs
    from workbench.runs import tensorboard
    at = run_page()
    at.button[-1].click().run()           # "Start TensorBoard"
    board = tensorboard.running()
    assert board is not None and tensorboard.wait_ready(board)
    try:
        at = run_page()                    # found again by a new session (a restarted app reads the same file)
        at.button(key="tensorboard_stop").click().run()
        assert not at.exception, at.exception
        assert tensorboard.running() is None
        assert runs._proc_stat(board.pid) is None          # exited and reaped: no <defunct> left behind
        assert not at.get("link_button") and any(b.label == "Start TensorBoard" for b in at.button)
    finally:
        tensorboard.stop(board)


def test_an_output_with_saved_files_offers_the_next_free_name(cfg):
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{cfg.output_name}.safetensors").write_bytes(b"an earlier run's LoRA")
    at = run_page()
    assert any("never overwritten" in w.value for w in at.warning)
    at.button(key="free_output_name").click().run()
    assert workspace.load_current().output_name == f"{cfg.output_name}-2"
    assert not any("never overwritten" in w.value for w in at.warning)
    assert (out / f"{cfg.output_name}.safetensors").read_bytes() == b"an earlier run's LoRA"
    (out / f"{cfg.output_name}-2.safetensors").write_bytes(b"a second run's LoRA")
    at.run()
    at.button(key="free_output_name").click().run()
    assert workspace.load_current().output_name == f"{cfg.output_name}-3"      # not NAME-2-2


def write_samples(run_dir: Path, steps, prompts=("a cat", "a cat, night"), missing=()) -> None:
    """Samples as the trainer leaves them: sd-scripts' file names in samples/, a sample event each;
    `missing`: (step, prompt index) never rendered."""
    from PIL import Image

    from workbench.runs.sample_prompts import sample_file_name, when_tag
    (run_dir / "samples").mkdir()
    events = []
    for step in steps:
        for n, prompt in enumerate(prompts):
            if (step, n) in missing:
                continue
            path = run_dir / "samples" / sample_file_name("catlora", when_tag(None, step), n, None)
            Image.new("RGB", (64, 96) if n else (96, 64), (step * 20, 60, 90)).save(path)
            events.append({"event": "sample", "step": step, "prompt": prompt, "path": str(path)})
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.writelines(json.dumps(e) + "\n" for e in events)


def grid_rows(at: AppTest, prompts: int = 2, header: int | None = None) -> list[list[str]]:
    """The drawn grid after its header (the first one, else column index `header`), one list per
    row: its label, then "image" or "gap" per prompt column. The header and every row are one
    st.columns of the label and MIN_SLOTS (or more) sample slots, the first `prompts` used."""
    from ui.training_samples import MIN_SLOTS
    columns, width = list(at.columns), 1 + max(prompts, MIN_SLOTS)
    if header is None:
        header = next(i for i, c in enumerate(columns) if [x.value for x in c.caption] == ["when"])
    rows = []
    for i in range(header + width, len(columns), width):
        label, *cells = columns[i:i + 1 + prompts]
        if not label.markdown:
            break
        rows.append([label.markdown[0].value] + ["image" if c.image else "gap" for c in cells])
    return rows


def test_samples_are_a_grid_newest_row_first_one_prompt_per_column_with_gaps(cfg):
    """Two prompts sampled at five steps, one sample never rendered: the newest four steps are
    rows (a slider reaches the oldest), the prompts are the column headers, the gap stays a gap."""
    run_dir = write_run(cfg, "20260101-000000-catlora", "finished", TOTAL, dead_pid())
    write_samples(run_dir, (3, 6, 9, 12, 15), missing={(9, 1)})
    at = run_page()
    header = next(i for i, c in enumerate(at.columns) if [x.value for x in c.caption] == ["when"])
    assert [c.caption[0].value for c in list(at.columns)[header + 1:header + 3]] == ["a cat", "a cat, night"]
    assert grid_rows(at) == [["**step 15**", "image", "image"], ["**step 12**", "image", "image"],
                             ["**step 9**", "image", "gap"], ["**step 6**", "image", "image"]]
    (rows,) = [s for s in at.select_slider if s.label == "Newest row shown"]
    rows.set_value("step 12").run()
    assert [row[0] for row in grid_rows(at)] == ["**step 12**", "**step 9**", "**step 6**", "**step 3**"]


def test_one_prompt_of_two_runs_side_by_side_aligned_by_step(cfg):
    first = write_run(cfg, "20260101-000000-catlora", "finished", TOTAL, dead_pid())
    write_samples(first, (3, 6))
    second = write_run(cfg, "20260102-000000-catlora", "finished", TOTAL, dead_pid())
    write_samples(second, (6, 9), prompts=("a cat, night", "a cat"))        # the prompts in another order
    at = run_page(run=second.name)
    assert at.selectbox(key="compare-run").options == [first.name]
    at.selectbox(key="compare-prompt").set_value(1).run()                    # "a cat": the first run's prompt 0
    header = [i for i, c in enumerate(at.columns) if [x.value for x in c.caption] == ["when"]][-1]
    assert [c.caption[0].value for c in list(at.columns)[header + 1:header + 3]] == [second.name, first.name]
    assert grid_rows(at, header=header) == \
        [["**step 9**", "image", "gap"], ["**step 6**", "image", "image"], ["**step 3**", "gap", "image"]]


def test_a_long_run_lists_its_newest_saves_and_folds_the_rest(cfg, tmp_path):
    """A save every epoch for 20 epochs listed 20 rows above the samples and the log."""
    out = tmp_path / "out"
    saves = [out / f"catlora-{n:06d}.safetensors" for n in range(1, 6)] + [out / "catlora.safetensors"]
    saves[0].parent.mkdir()
    for path in saves:
        path.write_bytes(b"x" * 1024)
    write_run(cfg, "20260101-000000-catlora", "finished", TOTAL, dead_pid(), outputs=[str(p) for p in saves])
    at = run_page()
    assert "**Saved LoRA files** (6)" in texts(at)
    (folded,) = [e for e in at.expander if "earlier file(s)" in e.label]
    assert folded.label == "3 earlier file(s)"
    inside = " ".join(m.value for m in folded.markdown)
    assert all(p.name in inside for p in saves[:3]) and not any(p.name in inside for p in saves[3:])
    assert saves[-1].name in texts(at)


def test_equal_unet_and_text_encoder_rates_stay_two_visible_curves(cfg):
    """The live LR chart draws equal rates as the Parameters page does: the UNet's curve wide and
    pale underneath, the text encoder's thin and dashed on top (one hid the other before)."""
    run_dir = write_run(cfg, "20260101-000000-equal", "finished", TOTAL, dead_pid())
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for e in events:
        if e["event"] == "step":
            e["lr_te"] = e["lr_unet"]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    spec = json.loads(run_page().get("vega_lite_chart")[1].proto.spec)
    assert spec["title"] == "Learning rate per group"
    encoding = spec["encoding"]
    widths = dict(zip(encoding["strokeWidth"]["scale"]["domain"], encoding["strokeWidth"]["scale"]["range"]))
    dashes = dict(zip(encoding["strokeDash"]["scale"]["domain"], encoding["strokeDash"]["scale"]["range"]))
    assert widths["UNet"] > widths["Text encoder"] and dashes["Text encoder"] != dashes["UNet"]
