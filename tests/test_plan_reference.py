"""The shared reference vectors (computed with sd-scripts' rules) through make_plan and the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import load_reference, make_image
from workbench.config.schema import TrainConfig
from workbench.planning.plan import make_plan

CASES = load_reference("plan-cases.json")


def build_case(case, root):
    """Write the case's folders with real images; return the config."""
    for subset in case["subsets"]:
        base = root / ("reg" if subset["is_reg"] else "train") / subset["folder"]
        for image in subset["images"]:
            make_image(base / image["file"], image["size"])
    p = case["params"]
    has_reg = any(s["is_reg"] for s in case["subsets"])
    return TrainConfig(train_data_dir=str(root / "train"), reg_data_dir=str(root / "reg") if has_reg else "",
                       resolution=f"{p['resolution'][0]},{p['resolution'][1]}", enable_bucket=p["enable_bucket"],
                       bucket_no_upscale=p["bucket_no_upscale"], min_bucket_reso=p["min_bucket_reso"],
                       max_bucket_reso=p["max_bucket_reso"], bucket_reso_steps=p["bucket_reso_steps"],
                       train_batch_size=p["train_batch_size"],
                       gradient_accumulation_steps=p["gradient_accumulation_steps"],
                       max_train_epochs=p.get("max_train_epochs"), max_train_steps=p.get("max_train_steps") or 0)


def key_of(path: str) -> str:
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"case{c['id']}")
def test_plan_matches_reference(case, tmp_path):
    cfg = build_case(case, tmp_path)
    plan = make_plan(cfg).to_json()
    exp = case["expected"]
    for key in ("batches_per_epoch", "steps_per_epoch", "epochs", "total_steps", "num_train_images", "num_reg_images"):
        assert plan[key] == exp[key], key
    assert plan["buckets"] == exp["buckets"]
    got = {key_of(im["path"]): (im["bucket"], im["resized"], im["repeats"]) for im in plan["images"]}
    want = {im["key"]: (im["bucket"], im["resized"], im["repeats"]) for im in exp["images"]}
    assert got == want


def test_plan_cli_json_matches_reference(tmp_path):
    case = CASES[2]  # has reg balancing
    cfg = build_case(case, tmp_path)
    from workbench.config.schema import save_toml
    path = save_toml(cfg, tmp_path / "c.toml")
    out = subprocess.run([sys.executable, "-m", "workbench", "plan", str(path), "--json"],
                         capture_output=True, text=True, check=True)
    plan = json.loads(out.stdout)
    assert set(plan) == {"num_train_images", "num_reg_images", "subsets", "images", "buckets",
                         "batches_per_epoch", "steps_per_epoch", "epochs", "total_steps"}
    assert plan["total_steps"] == case["expected"]["total_steps"]
    assert set(plan["images"][0]) == {"path", "size", "bucket", "resized", "repeats", "is_reg", "caption"}
    assert set(plan["subsets"][0]) == {"dir", "repeats", "class_tokens", "is_reg", "images"}
