"""Our trainer beside its peers on one GPU, in one process (issue 11's proof):

    floor            the frozen UNet's forward + the backward to its input, text encoder without grad
    floor-compiled   the same under torch.compile of the whole UNet (inductor, static shapes)
    peft             diffusers' train_text_to_image_lora recipe: unet.add_adapter(LoraConfig(r=16, ...)),
                     LoRA params in fp32, AdamW, bf16 autocast, clip 1.0, eager
    trainer          trainer.stepper.Stepper at its fastest settings: rank 16 on the same modules, AdamW,
                     bf16, clip 1.0, cached text-encoder outputs, regional torch.compile (trainer/compile.py)

    python benchmarks/gpu_peers.py [--out FILE] [--budget-s 500]    # SD1.5 512 px b1/4/8, SDXL 1024 px b1/4
    python benchmarks/gpu_peers.py --tiny --out FILE                 # the demo's tiny SD1 on the CPU

Writes {"info": {device, date, torch}, "cells": [{name, model, resolution, batch, s_per_step,
peak_memory_gib, compile_s}], "compile_s_10_buckets"} after every cell (a kill keeps what ran).
compile_s: the warm-up's time beyond its steps' (the compile); compile_s_10_buckets: what the
trainer's first step of each of 10 bucket shapes costs beyond a step. Random weights, nothing
downloaded (the architectures come from trainer/model_configs, as in gpu_bench.py).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_bench import CAPTIONS, free, random_models, sync  # after the path is set

PEFT_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]
CELL_NAMES = ("floor", "floor-compiled", "peft", "trainer")
# most telling first: a budget that runs out still has SD1.5 and the 10-bucket compile (measured between)
GRID = [("sd15", 512, b) for b in (4, 1, 8)] + [("sdxl", 1024, b) for b in (1, 4)]
TINY_GRID = [("tiny-sd1", 128, b) for b in (1, 2)]
TEN_BUCKETS = [(512, 512), (448, 576), (576, 448), (384, 640), (640, 384), (384, 704), (704, 384), (320, 768),
               (768, 320), (448, 512)]       # px (width, height), SD1.5's 64-px buckets near 512²


class Setup:
    """One cell's models and inputs: fresh random weights, a fixed batch (latents, captions, ids)."""

    def __init__(self, model: str, resolution: int, batch: int, tiny_dir: Path, device):
        import torch

        from trainer.stepper import WEIGHT_DTYPES
        self.model, self.resolution, self.batch, self.device = model, resolution, batch, device
        self.models = random_models(model, device, tiny_dir)
        self.models.prepare(device, WEIGHT_DTYPES["bf16"], False, False)
        self.captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(batch)]
        self.latents = self.sized_latents(resolution, resolution)
        self.time_ids = (torch.tensor([[resolution] * 2 + [0, 0] + [resolution] * 2] * batch, device=device)
                         if model == "sdxl" else None)

    def sized_latents(self, width: int, height: int):
        import torch
        return torch.randn(self.batch, 4, height // 8, width // 8, device=self.device)

    def autocast(self):
        import torch
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def conditioning(self):
        import torch
        with torch.no_grad(), self.autocast():
            return self.models.encode(self.captions, 1, self.device).unet_kwargs(self.time_ids, torch.bfloat16)


# ---------------------------------------------------------------- the four step functions

def floor_step(setup: Setup, unet):
    """What any LoRA step must at least do: text encoder forward, UNet forward, backward to its input."""
    import torch
    cond = setup.conditioning()
    noisy = setup.latents.to(torch.bfloat16).requires_grad_()
    timesteps = torch.randint(0, 1000, (setup.batch,), device=setup.device)
    with setup.autocast():
        out = unet(noisy, timesteps, **cond).sample
    out.float().square().mean().backward()


def peft_stepper(setup: Setup):
    """diffusers' train_text_to_image_lora.py, its training step as it runs (eager)."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler
    from peft import LoraConfig
    unet = setup.models.unet
    unet.add_adapter(LoraConfig(r=16, lora_alpha=16, init_lora_weights="gaussian", target_modules=PEFT_TARGETS))
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()                 # cast_training_params(unet, dtype=torch.float32)
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    scheduler = DDPMScheduler(num_train_timesteps=1000)

    def step():
        cond = setup.conditioning()
        latents = setup.latents
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, 1000, (setup.batch,), device=setup.device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        with setup.autocast():
            pred = unet(noisy, timesteps, **cond).sample
        loss = F.mse_loss(pred.float(), noise.float(), reduction="mean")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad()
    return step


def trainer_stepper(setup: Setup, backend: str):
    from accelerate import Accelerator

    from trainer.stepper import MicroBatch, Stepper
    from workbench.config.schema import TrainConfig
    cfg = TrainConfig(network_dim=16, network_alpha=16.0, mixed_precision="bf16", optimizer_type="AdamW",
                      learning_rate=1e-4, lr_scheduler="constant", train_batch_size=setup.batch,
                      network_train_unet_only=True, cache_text_encoder_outputs=True, max_grad_norm=1.0,
                      sdxl=setup.model == "sdxl", torch_compile=True, dynamo_backend=backend)
    stepper = Stepper(cfg, setup.models, Accelerator(mixed_precision="bf16"), total_steps=10_000)
    stepper.cache_text(setup.captions)
    import torch
    weights = torch.ones(setup.batch, device=setup.device)
    stepper.batch_of = lambda latents: MicroBatch(latents, setup.captions, setup.time_ids, weights)
    return stepper, lambda: stepper.step([stepper.batch_of(setup.latents)], 1)


# ---------------------------------------------------------------- timing

def timed(step, warmup: int, steps: int, cuda: bool) -> dict:
    """Warm-up (compiles), then `steps` timed steps: median s/step, peak memory, compile seconds."""
    import torch
    began = time.perf_counter()
    for _ in range(warmup):
        step()
    sync(cuda)
    warmup_s = time.perf_counter() - began
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync(cuda)
        times.append(time.perf_counter() - start)
    s_per_step = statistics.median(times)
    return {"s_per_step": s_per_step, "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
            "compile_s": max(0.0, warmup_s - warmup * s_per_step)}


def run_cell(name: str, setup: Setup, args, backend: str) -> dict:
    import torch
    cuda = setup.device.type == "cuda"
    if name in ("floor", "floor-compiled"):
        unet = setup.models.unet
        if name == "floor-compiled":
            unet = torch.compile(unet, backend=backend, dynamic=False)
        return timed(lambda: floor_step(setup, unet), args.warmup, args.steps, cuda)
    if name == "peft":
        return timed(peft_stepper(setup), args.warmup, args.steps, cuda)
    _, step = trainer_stepper(setup, backend)
    return timed(lambda: step(), args.warmup, args.steps, cuda)


def ten_buckets_compile_s(setup: Setup, backend: str, scale: float) -> float:
    """The trainer's compile cost on a dataset of 10 bucket shapes: each shape's first step beyond
    a warm step of that shape (the steady step time)."""
    stepper, _ = trainer_stepper(setup, backend)
    cuda = setup.device.type == "cuda"
    extra = 0.0
    for width, height in TEN_BUCKETS:
        latents = setup.sized_latents(int(width * scale) // 8 * 8, int(height * scale) // 8 * 8)
        def one_step(latents=latents):
            stepper.step([stepper.batch_of(latents)], 1)
        first, again = _seconds(one_step, cuda), _seconds(one_step, cuda)
        extra += max(0.0, first - again)
    return extra


def _seconds(fn, cuda: bool) -> float:
    start = time.perf_counter()
    fn()
    sync(cuda)
    return time.perf_counter() - start


# ---------------------------------------------------------------- the run

def device_info() -> dict:
    import torch
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return {"device": device, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "torch": torch.__version__}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="all four cells on the demo's tiny SD1, on the CPU")
    default_out = Path(os.environ["OUT"]) / "gpu-peers.json" if os.environ.get("OUT") else \
        ROOT / "benchmarks" / "results" / "gpu-peers.json"
    parser.add_argument("--out", default=str(default_out), help="the JSON file (default $OUT/gpu-peers.json)")
    parser.add_argument("--budget-s", type=float, default=500.0, help="start no cell after this many seconds")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per cell (compiles happen here)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per cell (the median is reported)")
    parser.add_argument("--cells", default=",".join(CELL_NAMES), help="which of the four, comma-separated")
    parser.add_argument("--models", default="sd15,sdxl", help="sd15 and/or sdxl (ignored with --tiny)")
    args = parser.parse_args(argv)
    import torch

    from workbench.quiet import quiet_libraries
    quiet_libraries()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    backend = "aot_eager" if args.tiny else "inductor"       # inductor on the CPU: minutes per graph
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"info": device_info(), "backend": backend, "cells": [], "compile_s_10_buckets": None}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tiny_dir:
        grid = TINY_GRID if args.tiny else [g for g in GRID if g[0] in args.models.split(",")]
        for model, resolution, batch in grid:
            if model == "sdxl" and result["compile_s_10_buckets"] is None and "trainer" in args.cells:
                result["compile_s_10_buckets"] = _ten_buckets(args, backend, Path(tiny_dir), device)
            for name in [n for n in CELL_NAMES if n in args.cells.split(",")]:
                entry = {"name": name, "model": model, "resolution": resolution, "batch": batch}
                entry.update(_cell_or_error(name, model, resolution, batch, args, backend, Path(tiny_dir), device,
                                            time.monotonic() - started > args.budget_s))
                result["cells"].append(entry)
                print(json.dumps(entry), flush=True)
                out.write_text(json.dumps(result, indent=1))
        if result["compile_s_10_buckets"] is None and "trainer" in args.cells:
            result["compile_s_10_buckets"] = _ten_buckets(args, backend, Path(tiny_dir), device)
    result["wall_s"] = time.monotonic() - started
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


def _cell_or_error(name, model, resolution, batch, args, backend, tiny_dir, device, over_budget: bool) -> dict:
    if over_budget:
        return {"s_per_step": None, "peak_memory_gib": None, "compile_s": None, "skipped": "time budget"}
    import torch
    torch._dynamo.reset()
    setup = None
    try:
        setup = Setup(model, resolution, batch, tiny_dir, device)
        return run_cell(name, setup, args, backend)
    except Exception as exc:      # one failing cell (out of memory) must not end the run
        traceback.print_exc(limit=3)
        return {"s_per_step": None, "peak_memory_gib": None, "compile_s": None,
                "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]}
    finally:
        del setup
        free(device)


def _ten_buckets(args, backend, tiny_dir, device) -> float | None:
    import torch
    torch._dynamo.reset()
    try:
        model, resolution = ("tiny-sd1", 128) if args.tiny else ("sd15", 512)
        return ten_buckets_compile_s(Setup(model, resolution, 1 if args.tiny else 4, tiny_dir, device), backend,
                                     resolution / 512)
    except Exception:
        traceback.print_exc(limit=3)
        return None
    finally:
        free(device)


if __name__ == "__main__":
    sys.exit(main())
