"""Trainer overhead on the CPU: median s/step of `workbench train` on the demo against a bare loop
in the same run — the same UNet + text encoder with the same LoRA network, forward, MSE, backward,
gradient clipping and AdamW step, over the same batches of pre-encoded latents and token ids, with
no data loading, logging, metrics, status or saving. Writes benchmarks/out/trainer.json; the
target is a ratio within 1.10.

    python benchmarks/bench_trainer.py [--epochs 3]

The bare loop runs before and after the trainer (a shared machine's load drifts) and the faster
of its two medians is the baseline, so the ratio is not flattered by a slow baseline.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def trainer_seconds(cfg, work: Path) -> list[float]:
    """s_per_step of every step `workbench train` ran, but each epoch's first (it follows a save)."""
    from workbench.config.schema import save_toml
    from workbench.runs.registry import read_metrics
    save_toml(cfg, work / "bench.toml")
    env = {**os.environ, "WORKBENCH_HOME": str(work / "home")}
    done = subprocess.run([sys.executable, "-m", "workbench", "train", str(work / "bench.toml"), "--run-dir",
                           str(work / "run")], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"workbench train failed:\n{done.stderr}")
    steps = [e for e in read_metrics(work / "run") if e["event"] == "step"]
    return [e["s_per_step"] for prev, e in zip(steps, steps[1:]) if prev["epoch"] == e["epoch"]]


def bare_seconds(cfg, epochs: int) -> list[float]:
    """The same work per step, written plainly: no recipe, no events, nothing but the math."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from trainer.data import epoch_batches, load_pixels
    from trainer.network_registry import create_network
    from workbench.planning.plan import make_plan
    torch.set_num_threads(cfg.num_cpu_threads_per_process)
    torch.manual_seed(0)
    folder = cfg.pretrained_model_name_or_path
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet").requires_grad_(False)
    encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder").requires_grad_(False)
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae")
    tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    plan = make_plan(cfg)
    with torch.no_grad():
        latents = {im.info.path: vae.encode(load_pixels(im)[None]).latent_dist.sample()[0] * 0.18215
                   for im in plan.used_images}
        ids = {im.info.path: tokenizer(im.info.caption, padding="max_length", max_length=77, truncation=True,
                                       return_tensors="pt").input_ids[0] for im in plan.used_images}
    network = create_network(cfg, unet, [encoder])
    network.apply_to()
    params = [p for g in network.param_groups(cfg.learning_rate, cfg.learning_rate) for p in g["params"]]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate)
    times = []
    for epoch in range(epochs):
        for batch in epoch_batches(plan, cfg.seed, epoch):
            x0 = torch.stack([latents[im.info.path] for im in batch.images])
            tokens = torch.stack([ids[im.info.path] for im in batch.images])
            start = time.perf_counter()
            noise = torch.randn_like(x0)
            t = torch.randint(0, 1000, (x0.shape[0],))
            hidden = encoder(tokens).last_hidden_state
            pred = unet(scheduler.add_noise(x0, noise, t), t, encoder_hidden_states=hidden).sample
            loss = torch.nn.functional.mse_loss(pred.float(), noise.float())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            float(loss.detach())      # the trainer reads its loss every step too
            times.append(time.perf_counter() - start)
    return times[1:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "trainer.json"))
    args = parser.parse_args(argv)
    from workbench.config.schema import load_toml
    from workbench.models.demo import build_demo
    from workbench.quiet import quiet_libraries
    quiet_libraries()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        demo = build_demo(work / "demo")
        cfg, _ = load_toml(demo.config)
        cfg = cfg.replace(output_dir=str(work / "out"), max_train_epochs=args.epochs, sample_every_n_epochs=None,
                          optimizer_type="AdamW", mixed_precision="no")
        before = bare_seconds(cfg, args.epochs)
        trainer = trainer_seconds(cfg, work)
        after = bare_seconds(cfg, args.epochs)
    bare = min(statistics.median(before), statistics.median(after))
    result = {"what": "median s/step, workbench train on the demo (SD1 tiny, 128 px buckets, batch 4) vs a bare "
                      "loop of the same forward/backward/optimizer step on pre-encoded latents",
              "trainer_s_per_step": statistics.median(trainer), "bare_s_per_step": bare,
              "bare_s_per_step_before": statistics.median(before), "bare_s_per_step_after": statistics.median(after),
              "ratio": statistics.median(trainer) / bare, "target_ratio": 1.10, "trainer_steps_timed": len(trainer),
              "threads": cfg.num_cpu_threads_per_process, "load_average": os.getloadavg(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
