"""LoRA training speed on a GPU, through the trainer's own code: Models.prepare, the network,
optimizer and schedule of trainer.stepper.Stepper, and Stepper.step (forward, backward, clip,
optimizer step) on synthetic cached latents.

    python benchmarks/gpu_bench.py [--out DIR] [--budget-s 270]     # SD1.5 512 px + SDXL 1024 px grid
    python benchmarks/gpu_bench.py --compiled                       # the same cells with torch_compile (inductor)
    python benchmarks/gpu_bench.py --tiny                           # the demo's tiny models on the CPU

Nothing is downloaded: the UNets and text encoders are built from trainer/model_configs (the real
SD1.5 / SDXL architectures) with random weights. Per cell: s/step, images/s, peak memory, FLOPs
counted by torch's FlopCounterMode for one step and the TFLOP/s they make, SD1.5's against the
nominal 1.7 TFLOP per 512-px image and step, and the share of the GPU's dense bf16 peak. A cell
that fails (out of memory, say) is recorded with its error and the grid goes on; cells that would
start after the time budget are recorded as skipped. Needs torch, diffusers, transformers,
accelerate, bitsandbytes and safetensors only.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))          # runs from a bare checkout (no pip install on the GPU machine)

NOMINAL_SD15_FLOP_PER_IMAGE = 1.7e12   # forward + backward of SD1.5's UNet at 512 px
DENSE_BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "4090": 165e12}
CAPTIONS = ["wbdemo, circle, red", "wbdemo, square, blue gradient background", "a photo of a shape", "wbdemo"]


@dataclass(frozen=True)
class Cell:
    model: str                   # "sd15" | "sdxl" | "tiny-sd1"
    resolution: int              # px
    batch: int
    precision: str               # mixed_precision: "bf16" | "fp16" | "no"
    gradient_checkpointing: bool
    optimizer: str
    compiled: str = ""           # torch_compile's dynamo_backend ("": eager); the untimed warm-up compiles


def full_grid() -> list[Cell]:
    """Most telling first, so a short budget still measures them: SD1.5 bf16 with AdamW8bit, SDXL,
    then SD1.5 bf16 with AdamW, then fp16 (bf16's twin)."""
    def sd15(precision, optimizer):
        return [Cell("sd15", 512, b, precision, gc, optimizer) for b, gc in itertools.product((1, 4, 8), (False, True))]
    sdxl = [Cell("sdxl", 1024, b, "bf16", gc, "AdamW8bit") for gc, b in itertools.product((True, False), (1, 4))]
    return (sd15("bf16", "AdamW8bit") + sdxl + sd15("bf16", "AdamW")
            + sd15("fp16", "AdamW8bit") + sd15("fp16", "AdamW"))


def compiled_grid() -> list[Cell]:
    """torch_compile's cells: SD1.5 bf16 at every batch size, SDXL batch 1; each compiles for a minute
    or two in its warm-up, so they run apart from the eager grid."""
    return ([Cell("sd15", 512, b, "bf16", False, "AdamW8bit", "inductor") for b in (4, 8, 1)]
            + [Cell("sdxl", 1024, 1, "bf16", True, "AdamW8bit", "inductor")])


def tiny_grid() -> list[Cell]:
    return [Cell("tiny-sd1", 128, b, p, gc, o) for b, p, gc, o in
            itertools.product((1, 2), ("no", "bf16"), (False, True), ("AdamW", "AdamW8bit"))][:6]


def tiny_compiled_grid() -> list[Cell]:
    # dynamo's "eager" backend: the capture and the timing path in seconds, not inductor's minute on a CPU
    return [Cell("tiny-sd1", 128, 2, "no", False, "AdamW", "eager")]


# ---------------------------------------------------------------- models with random weights

def random_models(name: str, device, tiny_dir: Path):
    """trainer.models.Models of the real architecture (configs shipped with the trainer), random
    weights created on the device (no host-side init of 2.6 B parameters)."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from trainer.models import CONFIG_DIR, FAMILIES, Models, load_models
    from workbench.config.schema import TrainConfig
    from workbench.models.demo import build_demo, write_tokenizer
    from workbench.models.modelinfo import ModelInfo
    if name == "tiny-sd1":
        return load_models(TrainConfig(pretrained_model_name_or_path=str(build_demo(tiny_dir).sd1_model)))
    folder = CONFIG_DIR / ("sdxl-base" if name == "sdxl" else "sd15")
    family = FAMILIES["sdxl" if name == "sdxl" else "sd1"]
    write_tokenizer(tiny_dir / "tokenizer")          # byte-level BPE: ids fit CLIP's 49,408-token embedding
    tokenizer = CLIPTokenizer.from_pretrained(tiny_dir / "tokenizer")
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))
        encoders = [CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder"))]
        if name == "sdxl":
            encoders.append(CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(folder / "text_encoder_2")))
    return Models(family, unet, None, encoders, [tokenizer] * len(encoders),
                  ModelInfo(folder, family.name, False, "random weights"))


# ---------------------------------------------------------------- one cell

def micro_batch(cell: Cell, device):
    import torch

    from trainer.stepper import MicroBatch
    side = cell.resolution // 8
    time_ids = None
    if cell.model == "sdxl":
        time_ids = torch.tensor([[cell.resolution] * 2 + [0, 0] + [cell.resolution] * 2] * cell.batch, device=device)
    return MicroBatch(torch.randn(cell.batch, 4, side, side, device=device),
                      [CAPTIONS[i % len(CAPTIONS)] for i in range(cell.batch)], time_ids,
                      torch.ones(cell.batch, device=device))


FLOPS_SEEN: dict[tuple, float | None] = {}     # precision and optimizer do not change a step's FLOPs


def run_cell(cell: Cell, warmup: int, steps: int, tiny_dir: Path) -> dict:
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from trainer.stepper import WEIGHT_DTYPES, Stepper
    from workbench.config.schema import TrainConfig
    cfg = TrainConfig(network_dim=16, network_alpha=16.0, mixed_precision=cell.precision,
                      gradient_checkpointing=cell.gradient_checkpointing, optimizer_type=cell.optimizer,
                      learning_rate=1e-4, lr_scheduler="constant", train_batch_size=cell.batch,
                      sdxl=cell.model == "sdxl",
                      torch_compile=bool(cell.compiled), dynamo_backend=cell.compiled or "inductor")
    accelerator = Accelerator(mixed_precision=cell.precision)
    device = accelerator.device
    try:
        cuda = device.type == "cuda"
        models = random_models(cell.model, device, tiny_dir)
        models.prepare(device, WEIGHT_DTYPES[cell.precision], cell.gradient_checkpointing, cfg.trains_text_encoder())
        stepper = Stepper(cfg, models, accelerator, total_steps=warmup + steps + 1)
        batch = micro_batch(cell, device)
        from torch._dynamo.utils import counters
        graphs_before = counters["stats"]["unique_graphs"]
        for _ in range(warmup):
            stepper.step([batch], 1)
        graphs = counters["stats"]["unique_graphs"] - graphs_before     # > 0: the compiled UNet really ran
        shape = (cell.model, cell.resolution, cell.batch, cell.gradient_checkpointing)
        if shape not in FLOPS_SEEN:
            FLOPS_SEEN[shape] = counted_flops(stepper, batch)
        flops = FLOPS_SEEN[shape]
        sync(cuda)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            stepper.step([batch], 1)
            sync(cuda)
            times.append(time.perf_counter() - start)
        return {**summary(cell, times, flops, device), "compiled_graphs": graphs}
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        free(device)


def counted_flops(stepper, batch) -> float | None:
    """FLOPs of one whole step as executed (checkpointing's recomputed forward included), counted
    on the eager UNet: a compiled one does the same arithmetic in fewer kernels."""
    from torch.utils.flop_counter import FlopCounterMode

    from trainer.compile import eager_blocks
    try:
        with eager_blocks(stepper.unet), FlopCounterMode(display=False) as counter:
            stepper.step([batch], 1).value()
        return float(counter.get_total_flops())
    except Exception as exc:      # a counting failure must not lose the timing
        print(f"  flop counting failed: {exc}", flush=True)
        return None


def sync(cuda: bool) -> None:
    if cuda:
        import torch
        torch.cuda.synchronize()


def free(device) -> None:
    import gc

    import torch
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def summary(cell: Cell, times: list[float], flops: float | None, device) -> dict:
    import torch
    s_per_step = statistics.median(times)
    out = {"s_per_step": s_per_step, "s_per_step_min": min(times), "images_per_s": cell.batch / s_per_step,
           "steps_timed": len(times), "flops_per_step": flops,
           "tflops_achieved": flops / s_per_step / 1e12 if flops else None}
    if cell.model == "sd15" and cell.resolution == 512:
        out["tflops_nominal"] = NOMINAL_SD15_FLOP_PER_IMAGE * cell.batch / s_per_step / 1e12
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        peak = next((v for k, v in DENSE_BF16_PEAK.items() if k in torch.cuda.get_device_name()), None)
        if peak and out["tflops_achieved"]:
            out["share_of_peak"] = out["tflops_achieved"] * 1e12 / peak
    return out


# ---------------------------------------------------------------- the grid

def device_info() -> dict:
    import diffusers
    import torch
    import transformers
    info = {"torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        memory_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
        info.update(device=torch.cuda.get_device_name(), memory_gib=memory_gib)
    else:
        info["device"] = "cpu"
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true",
                        help="the demo's tiny SD1 model on the CPU (checks the script runs)")
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "benchmarks" / "out"),
                        help="output folder (default $OUT, else benchmarks/out)")
    parser.add_argument("--compiled", action="store_true",
                        help="the torch_compile (inductor) cells instead of the eager grid")
    parser.add_argument("--budget-s", type=float, default=270.0, help="start no cell after this many seconds")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per cell")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per cell (the median is reported)")
    args = parser.parse_args(argv)
    from workbench.quiet import quiet_libraries
    quiet_libraries()
    cells = ((tiny_compiled_grid() if args.compiled else tiny_grid()) if args.tiny
             else compiled_grid() if args.compiled else full_grid())
    result = {"info": device_info(), "cells": []}
    started = time.monotonic()
    name = "gpu_bench" + ("_tiny" if args.tiny else "") + ("_compiled" if args.compiled else "")
    out = Path(args.out) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tiny_dir:
        for cell in cells:
            entry = {**asdict(cell)}
            if time.monotonic() - started > args.budget_s:
                entry["skipped"] = "time budget"
            else:
                entry.update(timed_cell(cell, args, Path(tiny_dir)))
            result["cells"].append(entry)
            print(json.dumps(entry), flush=True)
            out.write_text(json.dumps(result, indent=1))      # what ran so far survives a kill
    result["wall_s"] = time.monotonic() - started
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


def timed_cell(cell: Cell, args, tiny_dir: Path) -> dict:
    began = time.monotonic()
    try:
        entry = run_cell(cell, args.warmup, args.steps, tiny_dir)
    except Exception as exc:      # one failing cell (out of memory, a missing kernel) must not end the grid
        entry = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]}
        traceback.print_exc(limit=3)
    entry["cell_wall_s"] = time.monotonic() - began
    return entry


if __name__ == "__main__":
    sys.exit(main())
