"""Whether a run compiles its UNet: the fast path's one decision, from the plan and the device.

torch.compile (regional, trainer/compile.py) costs a compile once per run and then saves time on
every step; a short run does not win back the compile. So on a CUDA GPU the fast path is on by
default when the plan's steps pay for it, and off otherwise; on the CPU it is off (inductor spends
minutes there and the steps are barely faster). sd-scripts' `torch_compile = true` always compiles;
workbench's `fast_path = "off"` turns the automatic choice off (only torch_compile then compiles).
The trainer logs this choice and the Training page shows the same line: one function, both sides.
Compiling changes no number: the losses, the saved files and their metadata are those of eager.
"""
from __future__ import annotations

from dataclasses import dataclass

# Estimates until benchmarks/results/gpu-peers.json measures regional compilation on an H100/H200:
COMPILE_S = 60.0          # s: inductor compiling the repeated blocks once (whatever the bucket count)
SAVED_S_PER_STEP = {"sd1": 0.08, "sdxl": 0.25}   # s/step: SD1.5 batch 4 eager 225 ms → compiled 144 ms (H200)
PAYBACK = 2.0             # compile only when the steps win back twice the compile: the estimates are rough


@dataclass(frozen=True)
class FastPath:
    compile: bool
    reason: str

    def line(self) -> str:
        return f"fast path: {'torch.compile on' if self.compile else 'eager (no compile)'} — {self.reason}"


def decide(cfg, total_steps: int, cuda: bool) -> FastPath:
    """The choice for a run of `total_steps` optimizer steps on this machine (`cuda`: a CUDA GPU)."""
    if cfg.torch_compile:
        return FastPath(True, "torch_compile = true")
    if cfg.fast_path == "off":
        return FastPath(False, 'fast_path = "off"')
    if not cuda:
        return FastPath(False, "no CUDA GPU: compiling costs minutes on the CPU and saves little")
    per_step = SAVED_S_PER_STEP["sdxl" if cfg.sdxl else "sd1"]
    saved = total_steps * per_step
    estimate = f"{total_steps:,} steps × ~{per_step:g} s saved ≈ {saved:.0f} s"
    if saved >= PAYBACK * COMPILE_S:
        return FastPath(True, f"{estimate}, more than ~{COMPILE_S:.0f} s of compiling pays back")
    return FastPath(False, f"{estimate}, too short to win back ~{COMPILE_S:.0f} s of compiling; "
                           "torch_compile = true compiles anyway")
