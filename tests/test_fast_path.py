"""The fast path's decision (workbench/planning/fast_path.py): compile on a CUDA GPU when the plan's steps win
back the compile, never on the CPU unless torch_compile asks, and one switch turns it off; the
export to sd-scripts leaves the workbench-only switch out and says so."""
from __future__ import annotations

import pytest

from workbench.config.kohya import export_sd_scripts
from workbench.config.schema import new_config
from workbench.config.validate import validate
from workbench.planning import fast_path


def steps_that_pay(sdxl: bool) -> int:
    per_step = fast_path.SAVED_S_PER_STEP["sdxl" if sdxl else "sd1"]
    return int(fast_path.PAYBACK * fast_path.COMPILE_S / per_step) + 1


@pytest.mark.parametrize("sdxl", [False, True])
def test_on_cuda_a_long_run_compiles_and_a_short_one_does_not(sdxl):
    cfg = new_config(sdxl=sdxl)
    long, short = steps_that_pay(sdxl), steps_that_pay(sdxl) - 2
    assert fast_path.decide(cfg, long, cuda=True).compile
    choice = fast_path.decide(cfg, short, cuda=True)
    assert not choice.compile and "too short to win back" in choice.line()
    assert choice.line().startswith(f"fast path: eager (no compile) — {short:,} steps × ")


def test_sdxl_pays_back_in_fewer_steps_than_sd1():
    assert steps_that_pay(sdxl=True) < steps_that_pay(sdxl=False)


def test_the_cpu_never_compiles_by_itself_but_torch_compile_always_does():
    assert fast_path.decide(new_config(), 1_000_000, cuda=False) == fast_path.FastPath(
        False, "no CUDA GPU: compiling costs minutes on the CPU and saves little")
    for cuda in (False, True):
        assert fast_path.decide(new_config(torch_compile=True), 1, cuda).compile
        assert fast_path.decide(new_config(torch_compile=True, fast_path="off"), 1, cuda).compile


def test_fast_path_off_turns_the_automatic_compile_off():
    choice = fast_path.decide(new_config(fast_path="off"), 1_000_000, cuda=True)
    assert not choice.compile and choice.line() == 'fast path: eager (no compile) — fast_path = "off"'


def test_fast_path_takes_only_auto_or_off():
    [problem] = [f for f in validate(new_config(fast_path="always")) if f.field == "fast_path"]
    assert problem.level == "error" and "auto" in problem.message and "off" in problem.message


def test_the_export_leaves_fast_path_out_and_notes_it():
    auto = export_sd_scripts(new_config())
    assert "fast_path" not in auto.values
    assert any(n.startswith("fast_path left out: sd-scripts compiles only with torch_compile") for n in auto.notes)
    assert not any("fast_path" in n for n in export_sd_scripts(new_config(fast_path="off")).notes)
    assert export_sd_scripts(new_config(torch_compile=True)).values["torch_compile"] is True
