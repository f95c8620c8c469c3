"""`workbench caption` end to end in a fresh process, on real image files, with the real tiny
ONNX tagger and BLIP captioner: what lands in the caption files under each policy, prefix, batch
size, a corrupt image, a repo id from a Hugging Face cache folder, Ctrl-C mid-run, bad input."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.caption_models import build_blip, build_git, build_tagger
from tests.conftest import ROOT, make_image, run_cli

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory):
    return build_tagger(tmp_path_factory.mktemp("tagger"))


@pytest.fixture
def subset(tmp_path):
    """train/3_sks dog: red.png (captioned "mine, red theme" + a second line), green.jpg, blue.png
    (wide), broken.png (not an image); train/1_cat: cat.png (blue)."""
    folder = tmp_path / "train" / "3_sks dog"
    make_image(folder / "red.png", (32, 32), RED)
    (folder / "red.txt").write_text("mine, red theme\nsecond line kept\n", encoding="utf-8")
    make_image(folder / "green.jpg", (40, 40), GREEN)
    make_image(folder / "blue.png", (64, 32), BLUE)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    make_image(tmp_path / "train" / "1_cat" / "cat.png", (32, 32), BLUE)
    return folder


def caption(folder: Path, stem: str) -> str | None:
    path = folder / f"{stem}.txt"
    return path.read_text(encoding="utf-8") if path.exists() else None


def test_skip_is_the_default_and_a_corrupt_image_is_named_not_fatal(subset, tagger_dir):
    done = run_cli("caption", subset, "--model", tagger_dir)
    assert done.returncode == 1, done.stderr             # an image failed: exit 1, everything else done
    assert caption(subset, "red") == "mine, red theme\nsecond line kept\n"
    assert caption(subset, "green") == "green theme, ^_^"
    # wide blue on a white square: G and R average 127.5 (score 0.5 each), B is 255 -> blue hero
    assert caption(subset, "blue").startswith("blue hero, blue theme, ")
    assert caption(subset, "broken") is None
    assert "written 2, skipped 1, failed 1 (of 4 images)" in done.stderr
    assert re.search(r"\[#+\] 4/4  [\d.]+ img/s  ETA 0:00", done.stderr)          # the progress line
    assert "skipped 1: has a caption (--existing skip)" in done.stderr
    assert f"failed: {subset / 'broken.png'}: not a readable image" in done.stderr
    assert "Traceback" not in done.stderr


def test_append_adds_new_tags_once_and_keeps_other_lines(subset, tagger_dir):
    done = run_cli("caption", subset, "--model", tagger_dir, "--existing", "append", "--rating", "--json")
    result = json.loads(done.stdout)
    assert (result["written"], result["skipped"], result["failed"]) == (3, 0, 1)
    assert caption(subset, "red") == "mine, red theme, general\nsecond line kept\n"


def test_overwrite_prefix_and_class_tokens_come_first_once(subset, tagger_dir):
    (subset / "green.txt").write_text("sks dog, old", encoding="utf-8")
    done = run_cli("caption", subset, "--model", tagger_dir, "--existing", "overwrite", "--prefix", "ohwx",
                   "--prefix-class-tokens", "--exclude", "^_^,blue_hero", "--beams", "3")
    assert f"note: --beams: not used, {tagger_dir} is a WD14 tagger" in done.stderr
    assert caption(subset, "red") == "ohwx, sks dog, red theme\nsecond line kept\n"
    assert caption(subset, "green") == "ohwx, sks dog, green theme"
    assert "blue hero" not in caption(subset, "blue")


def test_a_train_data_dir_captions_every_subset(subset, tagger_dir):
    make_image(subset.parent / "loose.png", (32, 32), RED)          # not in a subset: not trained on
    done = run_cli("caption", subset.parent, "--model", tagger_dir, "--json", "--extension", ".caption")
    assert json.loads(done.stdout)["total"] == 5
    assert not (subset.parent / "loose.caption").exists()
    assert (subset.parent / "1_cat" / "cat.caption").read_text() == "blue hero, blue theme"
    assert (subset / "red.caption").exists() and not (subset.parent / "1_cat" / "cat.txt").exists()


def test_batch_sizes_give_the_same_captions(tmp_path, tagger_dir):
    colours = [RED, GREEN, BLUE, (0, 0, 191), (200, 100, 50), (10, 240, 130), (90, 90, 90)]
    results = []
    for batch in (1, 3, 8):
        folder = tmp_path / f"b{batch}" / "1_x"
        for i, c in enumerate(colours):
            make_image(folder / f"{i}.png", (32 + 8 * i, 32), c)
        assert run_cli("caption", folder, "--model", tagger_dir, "--batch-size", batch).returncode == 0
        results.append([caption(folder, str(i)) for i in range(len(colours))])
    assert results[0] == results[1] == results[2]
    assert all(results[0])


def test_preview_writes_nothing_and_shows_the_scores(subset, tagger_dir):
    done = run_cli("caption", subset, "--model", tagger_dir, "--preview", "3", "--json", "--existing", "overwrite")
    rows = {Path(r["image"]).stem: r for r in json.loads(done.stdout)}
    assert set(rows) == {"blue", "broken", "green"}              # the first three, in file order
    assert rows["green"]["line"] == "green theme, ^_^" and rows["green"]["existing"] is None
    kept = {s["tag"]: s["score"] for s in rows["green"]["scores"] if s["kept"]}
    assert kept == {"green theme": pytest.approx(0.9975, abs=1e-3), "^_^": pytest.approx(0.9933, abs=1e-3)}
    assert "not a readable image" in rows["broken"]["error"]
    assert caption(subset, "green") is None


def make_hub_cache(root: Path, repo_id: str, files_from: Path) -> Path:
    """The Hugging Face hub cache layout: models--owner--name/{refs/main, snapshots/<commit>/…}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in files_from.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    return snapshot


def test_a_repo_id_resolves_from_the_hugging_face_cache(subset, tagger_dir, tmp_path):
    make_hub_cache(tmp_path / "hub", "SmilingWolf/wd-tiny-tagger", tagger_dir)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "workbench", "caption", str(subset), "--model",
                           "SmilingWolf/wd-tiny-tagger"], check=False, capture_output=True, text=True,
                          env=env, cwd=ROOT)
    assert caption(subset, "green") == "green theme, ^_^", done.stderr
    missing = subprocess.run([sys.executable, "-m", "workbench", "caption", str(subset), "--model",
                              "SmilingWolf/not-cached"], check=False, capture_output=True, text=True,
                          env=env, cwd=ROOT)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        ("workbench caption: error: --model SmilingWolf/not-cached: not in the Hugging Face cache and "
         "HF_HUB_OFFLINE is set; download it first (hf download SmilingWolf/not-cached) or give its folder")]


@pytest.mark.parametrize("args, message", [
    (["--model", "nowhere/at-all/x"], "--model nowhere/at-all/x: no such folder"),
    (["--threshold", "1.5"], "threshold: 1.5 is not a score between 0 and 1"),
    (["--batch-size", "0"], "batch_size: must be 1 or more"),
    (["--extension", "txt"], "extension: 'txt' must look like .txt"),
])
def test_bad_input_is_one_line(subset, tagger_dir, args, message):
    if "--model" not in args:
        args = ["--model", str(tagger_dir), *args]
    done = run_cli("caption", subset, *args)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr


def test_missing_folder_is_one_line(tmp_path, tagger_dir):
    done = run_cli("caption", tmp_path / "nope", "--model", tagger_dir)
    assert done.returncode == 1 and "nope: folder not found" in done.stderr


@pytest.mark.slow
def test_ctrl_c_stops_after_the_batch_keeping_what_was_written_and_a_rerun_resumes(tmp_path):
    slow = build_tagger(tmp_path / "slow-tagger", slow_layers=150)
    folder = tmp_path / "1_many"
    for i in range(60):
        make_image(folder / f"{i:02d}.png", (32, 32), (4 * i, 255 - 4 * i, 128))
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "caption", str(folder), "--model", str(slow),
                             "--batch-size", "2", "--json"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    while not list(folder.glob("*.txt")) and proc.poll() is None:
        time.sleep(0.01)                           # the first batch is written: interrupt mid-run
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    result = json.loads(out)
    written = sorted(folder.glob("*.txt"))
    assert result["stopped"] and 0 < result["written"] == len(written) < 60
    assert result["done"] % 2 == 0                  # whole batches only
    assert "SIGINT: stopping after this batch" in err and "stopped after" in err
    assert all(p.read_text().strip() for p in written) and not list(folder.glob(".*.tmp"))
    again = run_cli("caption", folder, "--model", slow, "--json", "--batch-size", "8")
    resumed = json.loads(again.stdout)
    assert resumed["skipped"] == len(written) and resumed["written"] == 60 - len(written)


@pytest.mark.slow
@pytest.mark.parametrize("builder", [build_blip, build_git], ids=["blip", "git"])
def test_a_transformers_captioner_writes_what_the_model_generates(subset, tmp_path, builder):
    import torch
    import transformers
    from PIL import Image
    model_dir = builder(tmp_path / "captioner")
    done = run_cli("caption", subset, "--model", model_dir, "--existing", "overwrite", "--max-length", "6",
                   "--beams", "2", "--prompt", "a photo of", "--json")
    assert done.returncode == 1 and json.loads(done.stdout)["written"] == 3, done.stderr   # broken.png failed
    assert "note:" not in done.stderr
    config = transformers.AutoConfig.from_pretrained(model_dir)
    model = getattr(transformers, config.architectures[0]).from_pretrained(model_dir).eval()
    processor = transformers.AutoProcessor.from_pretrained(model_dir)
    inputs = processor(images=[Image.open(subset / "green.jpg").convert("RGB")], text=["a photo of"],
                       return_tensors="pt")
    inputs.pop("token_type_ids", None)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=6, num_beams=2)
    expected = processor.batch_decode(out, skip_special_tokens=True)[0].strip()
    assert caption(subset, "green") == expected and expected.startswith("a photo of")
    assert len(expected.split()) <= 3 + 6                 # the prompt and at most 6 new tokens (words here)
    red = caption(subset, "red").split("\n")
    assert red[0].startswith("a photo of") and red[1:] == ["second line kept", ""]   # overwrite: line 1 only


def test_caption_modules_load_no_heavy_library():
    """The app imports the job and settings modules: onnxruntime, torch and transformers load only
    in the process that runs the model."""
    modules = ["workbench.commands.caption", "workbench.captioning.jobs", "workbench.captioning.run",
               "workbench.captioning.recent", "workbench.captioning.summary", "workbench.captioning.worker",
               "workbench.captioning.wd14", "workbench.captioning.sentences", "workbench.captioning.models"]
    heavy = ["torch", "transformers", "onnxruntime", "onnx", "numpy", "huggingface_hub", "streamlit"]
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_pages_settings_reach_the_cli_unchanged(tmp_path):
    """The Caption tab runs its preview through `workbench caption … --preview`: every setting it
    holds must come back the same from the command line it builds."""
    from workbench.__main__ import build_parser
    from workbench.captioning.settings import CaptionSettings, cli_args
    from workbench.commands.caption import settings_from
    chosen = CaptionSettings(model="owner/repo", threshold=0.5, character_threshold=0.7, rating=True,
                             exclude=("a b", "^_^"), prefix="ohwx, sks", prefix_class_tokens=True, existing="append",
                             extension=".caption", batch_size=3, max_length=20, num_beams=4, prompt="<CAPTION>")
    for settings in (chosen, CaptionSettings(model="m")):
        args = build_parser("caption").parse_args(["caption", str(tmp_path), *cli_args(settings)])
        assert settings_from(args) == settings
