"""Reference LR curves, and our pure-Python schedules against transformers' own functions."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from tests.conftest import load_reference
from workbench.config.schema import TrainConfig, save_toml
from workbench.planning.schedules import lr_lambda, make_schedule

CASES = load_reference("schedule-cases.json")


def config_of(params) -> TrainConfig:
    return TrainConfig(lr_scheduler=params["lr_scheduler"], max_train_steps=params["max_train_steps"],
                       max_train_epochs=None, lr_warmup_steps=params["lr_warmup_steps"],
                       learning_rate=params["learning_rate"], unet_lr=params.get("unet_lr"),
                       text_encoder_lr=params.get("text_encoder_lr"),
                       lr_scheduler_num_cycles=params["lr_scheduler_num_cycles"],
                       lr_scheduler_power=params["lr_scheduler_power"])


def close(a, b):
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15) for x, y in zip(a, b))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["params"]["lr_scheduler"])
def test_schedule_matches_reference(case):
    exp = case["expected"]
    sched = make_schedule(config_of(case["params"]), exp["total_steps"])
    assert sched.warmup_steps == exp["warmup_steps"]
    assert close(sched.unet, exp["unet"])
    if "text_encoder" in exp:
        assert close(sched.text_encoder, exp["text_encoder"])


def test_schedule_cli_json(tmp_path):
    case = CASES[0]
    path = save_toml(config_of(case["params"]), tmp_path / "s.toml")
    out = subprocess.run([sys.executable, "-m", "workbench", "schedule", str(path), "--json"],
                         capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert set(data) == {"total_steps", "warmup_steps", "unet", "text_encoder"}
    assert close(data["unet"], case["expected"]["unet"])
    assert close(data["text_encoder"], case["expected"]["text_encoder"])


@pytest.mark.parametrize("name", ["constant", "constant_with_warmup", "linear", "cosine",
                                  "cosine_with_restarts", "polynomial"])
@pytest.mark.parametrize("warmup,total,cycles,power", [(0, 50, 1, 1.0), (7, 113, 3, 2.0), (10, 12, 2, 0.5)])
def test_lambda_equals_transformers(name, warmup, total, cycles, power):
    """The trainer and the preview use lr_lambda; it must be transformers' schedule exactly."""
    import torch
    from transformers import get_scheduler
    lr = 3e-4
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    kwargs = {}
    if name == "cosine_with_restarts":
        kwargs["scheduler_specific_kwargs"] = {"num_cycles": cycles}
    if name == "polynomial":
        kwargs["scheduler_specific_kwargs"] = {"power": power}
    sched = get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=total, **kwargs)
    f = lr_lambda(name, warmup, total, cycles, power, lr_init=lr)
    theirs, ours = [], []
    for s in range(total):
        theirs.append(opt.param_groups[0]["lr"])
        ours.append(lr * f(s))
        opt.step()
        sched.step()
    assert close(ours, theirs)
