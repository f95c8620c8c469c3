"""The training recipe: setup / train / save / cleanup, sd-scripts' semantics.

`run(run_dir)` is the whole process: read RUN_DIR/config.toml, run the plan that workbench made
(make_plan: buckets, repeats, reg balancing, steps), report through metrics.jsonl / status.json /
TensorBoard, save kohya-format LoRAs, and end with state finished, stopped (SIGTERM) or failed
(with a one-line error). A "step" is an optimizer step everywhere.
"""
from __future__ import annotations

import random
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from trainer import data, optim, processes, sampling, saving, trackers, validation
from trainer import models as model_loading
from trainer.events import LossWindow, RunEvents, StopRequest
from trainer.masks import Masks
from trainer.stepper import WEIGHT_DTYPES, MicroBatch, Stepper
from workbench.config.schema import load_toml
from workbench.errors import UserError
from workbench.lora import write_metadata as metadata
from workbench.lora.hashes import hashes_of_bytes
from workbench.planning import fast_path, holdout
from workbench.planning.plan import make_plan
from workbench.planning.schedules import stop_text_encoder_step
from workbench.quiet import quiet_libraries
from workbench.runs import outputs
from workbench.runs import tensorboard_tags as tb_tags
from workbench.runs.registry import start_blockers
from workbench.runs.resume import STATE_FOLDER

SAVE_DTYPES = {"float": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Progress:
    step: int = 0            # optimizer steps done
    epoch: int = 0           # 0-based epoch in progress
    groups_done: int = 0     # optimizer steps done inside that epoch
    seed: int = 0
    processes: int = 1       # that trained together: the steps and the data order depend on it


class Recipe:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir).absolute()
        self.events = RunEvents(self.run_dir, enabled=processes.launched_rank() == 0)   # only process 0 writes
        self.stop = StopRequest()
        self.progress = Progress()
        self.outputs: list[str] = []
        self.pipeline = None

    # ================================================================ setup
    def setup(self) -> None:
        self.events.starting()
        cfg = self.cfg = read_config(self.run_dir)
        quiet_libraries()
        from accelerate.utils import set_seed
        self.accelerator = processes.make_accelerator(cfg.mixed_precision)
        self.device, self.dtype = self.accelerator.device, WEIGHT_DTYPES[cfg.mixed_precision]
        torch.set_num_threads(cfg.num_cpu_threads_per_process)
        resumed = saving.load_state(Path(cfg.resume)) if cfg.resume else None
        if resumed:
            self.progress = resumed_progress(resumed["progress"], cfg.resume, self.accelerator.num_processes)
        else:
            drawn = cfg.seed if cfg.seed is not None else random.SystemRandom().randrange(2**31)
            self.progress.seed = processes.from_process_zero(self.accelerator, drawn)
            self.progress.processes = self.accelerator.num_processes
        # after the seed: without validation_seed it picks the held-out images
        self.plan = make_plan(cfg, num_processes=self.accelerator.num_processes, seed=self.progress.seed)
        samples_wanted = (cfg.sample_every_n_epochs or cfg.sample_every_n_steps) and cfg.sample_prompts
        self.prompts = sampling.read_prompt_file(cfg.sample_prompts) if samples_wanted else []
        self.events.status(total_steps=self.plan.total_steps, seed=self.progress.seed)
        set_seed(self.progress.seed)        # the same on every process: the same initial LoRA weights
        self.load_models()
        self.build_network()
        if resumed:
            self.restore(resumed)
        self.check_processes_agree("initial LoRA weights")
        self.fill_latents()
        if cfg.cache_text_encoder_outputs:
            count = self.stepper.cache_text(data.fixed_captions(self.plan, cfg))
            self.events.log(f"cache_text_encoder_outputs: {count} caption(s) encoded once; the text encoder does "
                            "not run in the steps")
        self.metadata = metadata.training_metadata(cfg, self.plan, self.run_facts())
        self.loss_window = LossWindow(self.plan.steps_per_epoch)
        self.unet_only = tb_tags.unet_only(cfg)          # sd-scripts' lr/group<i> numbering depends on it
        self.open_trackers()

    def open_trackers(self) -> None:
        """log_with: TensorBoard and/or wandb (process 0 only, as it alone writes)."""
        cfg = self.cfg
        if trackers.uses_tensorboard(cfg):
            tb = self.events.open_tensorboard(str(trackers.tensorboard_folder(cfg, self.run_dir)))
            self.events.log(f"TensorBoard: {tb}")
        if trackers.uses_wandb(cfg) and self.events.enabled:
            self.events.wandb = trackers.open_wandb(cfg, self.run_dir)
            self.events.log(f"wandb: project {cfg.log_tracker_name or trackers.DEFAULT_PROJECT}, "
                            f"run {self.events.wandb.name}")

    def load_models(self) -> None:
        cfg = self.cfg
        self.models = model_loading.load_models(cfg, self.events.download)
        vae_dtype = torch.float32 if cfg.no_half_vae else self.dtype        # sd-scripts' no_half_vae
        self.models.prepare(self.device, self.dtype, cfg.gradient_checkpointing, cfg.trains_text_encoder(), vae_dtype)
        self.store_base_in_fp8()
        m = self.models
        self.events.log(f"model: {m.info.path} ({m.info.family_name}, {m.info.layout}); device {self.device}, "
                        f"mixed precision {cfg.mixed_precision}, base weights {str(self.dtype).removeprefix('torch.')}, "
                        f"VAE {cfg.vae or 'of the model'} in {str(vae_dtype).removeprefix('torch.')}")

    def store_base_in_fp8(self) -> None:
        """fp8_base: UNet and text encoders; fp8_base_unet: the UNet only (sd-scripts' rule)."""
        cfg = self.cfg
        if not (cfg.fp8_base or cfg.fp8_base_unet):
            return
        models = [self.models.unet] + ([] if cfg.fp8_base_unet else list(self.models.text_encoders))
        cast = sum(model_loading.store_in_fp8(m) for m in models)
        self.events.log(f"fp8: {cast} Linear/Conv weights of the {'UNet' if cfg.fp8_base_unet else 'UNet and text encoders'} "
                        "stored as float8_e4m3fn")

    def build_network(self) -> None:
        cfg = self.cfg
        choice = fast_path.decide(cfg, self.plan.total_steps, self.device.type == "cuda")
        self.events.log(choice.line())          # the Training page shows the same line before the start
        self.stepper = Stepper(cfg, self.models, self.accelerator, self.plan.total_steps, choice.compile,
                               self.events.log)
        self.events.log(self.stepper.attention)
        if self.stepper.compiled:
            self.events.log(self.stepper.compiled.describe() + "; the first step compiles first")
        self.network, self.optimizer = self.stepper.network, self.stepper.optimizer
        self.scheduler = self.stepper.scheduler
        self.te_stop_step = stop_text_encoder_step(cfg, self.plan.total_steps)   # the chart marks the same step
        self.events.log(self.describe_network(self.stepper.groups))

    def fill_latents(self) -> None:
        """The latent cache: every process encodes every image with the run's seed, so all hold the
        same latents (each trains on any image over the epochs). With cache_latents_to_disk process 0
        encodes and writes the .npz files first and the others read them. Batches encoded as they
        come (no cache) draw each process's own sampling noise."""
        cfg, seed = self.cfg, self.progress.seed
        noise_seed = seed if cfg.cache_latents else processes.process_seed(seed, self.accelerator.process_index)
        self.latents = data.Latents(self.models.vae, self.models.family.scaling_factor, self.device, noise_seed, cfg)
        self.masks = Masks(cfg, self.device)
        with processes.main_process_first(self.accelerator, wanted=cfg.cache_latents and cfg.cache_latents_to_disk):
            self.latents.fill_cache(self.plan, log=self.events.log)
        if self.plan.validation_batches and self.accelerator.is_main_process:    # only process 0 validates
            # their own latents and generator: validating never shifts the training's random draws
            self.validation_latents = data.Latents(self.models.vae, self.models.family.scaling_factor, self.device,
                                                   self.plan.split_seed,
                                                   cfg.replace(flip_aug=False, random_crop=False, color_aug=False,
                                                               face_crop_aug_range=""))
            self.validation_latents.fill_cache(self.plan, self.events.log, self.plan.validation_images)
            self.events.log(f"validation: {len(self.plan.validation_images)} held-out images "
                            f"({self.plan.num_validation_images} with repeats), {self.plan.validation_batches} "
                            f"batches × timesteps {list(self.plan.validation_timesteps)}")

    def check_processes_agree(self, what: str, tensors: dict[str, torch.Tensor] | None = None) -> None:
        """Several processes: refuse to go on unless all hold these exact tensors (the network's by
        default), compared by the sshs_model_hash they would have in a file."""
        if self.accelerator.num_processes == 1:
            return
        from safetensors.torch import save
        tensors = tensors if tensors is not None else self.network.kohya_state_dict()
        digest = hashes_of_bytes(save(tensors))[0]
        processes.agree(self.accelerator, digest, what)
        self.events.log(f"{what}: the same on all {self.accelerator.num_processes} processes "
                        f"(sshs_model_hash {digest})")

    def describe_network(self, groups) -> str:
        n = self.network
        sizes = ", ".join(f"{g['name']} {sum(p.numel() for p in g['params']):,} params at lr "
                          f"{g.get('initial_lr', g['lr']):g}" for g in groups)
        p = self.plan
        shared = f" shared by {p.num_processes} processes" if p.num_processes > 1 else ""
        return (f"network: {self.cfg.network_module} {n.algo} rank {n.rank} alpha {n.alpha:g}: "
                f"{len(n.unet_modules)} UNet + {len(n.text_encoder_modules)} text-encoder modules; {sizes}\n"
                f"optimizer: {self.stepper.optimizer_name}, schedule {optim.scheduler_name(self.cfg)}\n"
                f"plan: {p.num_train_images} train images × repeats, {p.num_reg_images} reg; {p.batches_per_epoch} "
                f"batches/epoch of {p.train_batch_size}{shared} → {p.steps_per_epoch} steps/epoch × {p.epochs} "
                f"epochs = {p.total_steps} steps; seed {self.progress.seed}")

    def restore(self, state: dict) -> None:
        """Continue a saved run: weights, optimizer and LR schedule, RNG, step and data position."""
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler") and self.accelerator.scaler is not None:
            self.accelerator.scaler.load_state_dict(state["scaler"])
        self.resumed_rng = state["rng"]
        self.events.log(f"resumed {self.cfg.resume}: step {self.progress.step}, epoch {self.progress.epoch + 1}")

    def run_facts(self) -> metadata.RunFacts:
        legacy, sha = saving.base_model_hashes(self.models.info.path)
        return metadata.RunFacts(
            seed=self.progress.seed, session_id=random.SystemRandom().randrange(2**32), started_at=time.time(),
            optimizer=self.stepper.optimizer_name, lr_scheduler=optim.scheduler_name(self.cfg),
            network_dim=self.network.rank, network_alpha=self.network.alpha, sd_model_hash=legacy,
            new_sd_model_hash=sha, num_processes=self.accelerator.num_processes,
            vae_hashes=saving.base_model_hashes(Path(self.cfg.vae).expanduser()) if self.cfg.vae else None)

    # ================================================================ train
    def train(self) -> str:
        p, s = self.plan, self.progress
        self.seed_noise()
        self.events.emit("start", total_steps=p.total_steps, epochs=p.epochs, batches_per_epoch=p.batches_per_epoch,
                         initial_step=s.step, num_processes=p.num_processes)
        self.events.status(state="running", step=s.step)
        last = time.perf_counter()
        for epoch in range(s.epoch, p.epochs):
            groups = self.epoch_groups(epoch)
            for index in range(s.groups_done, len(groups)):
                loss = self.optimizer_step(groups[index], epoch)
                s.step, s.groups_done = s.step + 1, index + 1
                now = time.perf_counter()
                self.after_step(epoch, loss, now - last, sum(len(b.images) for b in groups[index]))
                last = time.perf_counter() if self.step_outputs(epoch) else now   # saves are not step time
                if self.stop_requested() or s.step >= p.total_steps:
                    break
            if s.step < p.total_steps and self.stop_requested():
                return self.save_stopped()
            s.epoch, s.groups_done = epoch + 1, 0
            self.end_epoch(epoch + 1)
            last = time.perf_counter()      # saving and sampling are not part of the next step's time
            if s.step >= p.total_steps:
                break
        self.save(outputs.lora_path(self.cfg), p.epochs)
        return "finished"

    def seed_noise(self) -> None:
        """The noise, timesteps and dropout of the steps: process 0 draws on from where setup left
        the RNG (a resumed run from its saved state), as a run in one process does; every other
        process from its own seed."""
        from accelerate.utils import set_seed
        if getattr(self, "resumed_rng", None):
            saving.set_rng_state(self.resumed_rng)      # after the cache: its encoding drew no training noise
        if self.accelerator.process_index > 0:
            set_seed(processes.process_seed(self.progress.seed, self.accelerator.process_index, self.progress.step))

    def epoch_groups(self, epoch: int) -> list[list[data.Batch]]:
        batches = data.epoch_batches(self.plan, self.progress.seed, epoch)
        mine = data.process_share(batches, self.accelerator.process_index, self.accelerator.num_processes)
        return data.accumulation_groups(mine, self.cfg.gradient_accumulation_steps)

    def optimizer_step(self, group: list[data.Batch], epoch: int) -> float:
        self.maybe_freeze_text_encoder()
        where = f"step {self.progress.step + 1} (epoch {epoch + 1})"
        # the log reads each step's loss: the host waits here, after the whole step is queued
        return self.stepper.step((self.micro_batch(batch, epoch) for batch in group), len(group), where).value()

    def micro_batch(self, batch: data.Batch, epoch: int, validation: bool = False) -> "MicroBatch":
        """What the step needs from a planned batch: latents, captions, SDXL size ids, loss weights.
        A validation batch: the held-out images' latents, unmirrored, and their captions as written."""
        cfg, seed = self.cfg, self.progress.seed
        source = self.validation_latents if validation else self.latents
        latents, flips = source.for_batch(batch, random.Random(f"{seed}/{epoch}/{batch.index}"))
        time_ids = (torch.tensor([model_loading.sdxl_time_ids(im.info.size, im.bucket, flipped)
                                  for im, flipped in zip(batch.images, flips)], device=self.device)
                    if self.models.family.uses_time_ids else None)
        weights = torch.tensor([cfg.prior_loss_weight if im.is_reg else 1.0 for im in batch.images], device=self.device)
        captions = ([data.with_prefix_and_suffix(im.info.caption, cfg) for im in batch.images] if validation
                    else data.batch_captions(batch, cfg, seed, epoch, self.progress.step, self.plan.total_steps))
        masks = self.masks.for_images(batch.images, flips, source.last_geometry)
        return MicroBatch(latents, captions, time_ids, weights, masks)

    def maybe_freeze_text_encoder(self) -> None:
        due = self.te_stop_step is not None and self.progress.step >= self.te_stop_step
        if due and not self.stepper.text_encoder_frozen:
            self.stepper.freeze_text_encoder()
            self.events.log(f"step {self.progress.step}: stop_text_encoder_training reached; the UNet goes on")

    def stop_requested(self) -> bool:
        """SIGTERM reaches one process (the app's Stop: process 0) or all (the launcher's); every
        process must stop after the same step."""
        return processes.any_process(self.accelerator, self.stop.requested)

    def after_step(self, epoch: int, loss: float, seconds: float, images: int) -> None:
        s = self.progress
        lrs = self.stepper.used_lrs
        lr_unet, lr_te = self.stepper.unet_lr_used(), 0.0 if self.stepper.text_encoder_frozen else lrs.get("text_encoder", 0.0)
        loss_avg = self.loss_window.add(loss)
        self.events.emit("step", step=s.step, epoch=epoch + 1, loss=loss, loss_avg=loss_avg, lr_unet=lr_unet,
                         lr_te=lr_te, s_per_step=seconds)
        self.events.scalars(s.step, tb_tags.step_scalars(loss, loss_avg, self.logged_lrs(), self.unet_only,
                                                         self.stepper.max_norm))
        self.events.step_status(s.step)
        if self.events.progress_due() or s.step == self.plan.total_steps:
            eta = (self.plan.total_steps - s.step) * seconds
            self.events.log(f"step {s.step}/{self.plan.total_steps} epoch {epoch + 1} loss {loss:.4f} "
                            f"(avg {loss_avg:.4f}) lr {lr_unet:.3g} {seconds:.3f} s/step "
                            f"{images / max(seconds, 1e-9):.1f} img/s ETA {eta:.0f} s")

    def logged_lrs(self) -> list[tuple[str, float, float | None]]:
        """(sd-scripts' description, LR used, d) per optimizer group, text encoder first; a text
        encoder stopped by stop_text_encoder_training logs 0."""
        step = self.stepper
        frozen = step.text_encoder_frozen
        groups = [(tb_tags.lr_description(name), 0.0 if frozen and name.startswith("text_encoder") else lr,
                   step.used_ds.get(name)) for name, lr in step.used_lrs.items()]
        return tb_tags.sd_scripts_order(groups)

    def step_outputs(self, epoch: int) -> bool:
        """save_every_n_steps and sample_every_n_steps (unless sample_every_n_epochs is set, as in
        sd-scripts); a step save records the epochs done, as sd-scripts' does. True if any ran."""
        cfg, step = self.cfg, self.progress.step
        saves = outputs.saves_step(cfg, step)
        if saves:
            self.save(outputs.lora_path(cfg, outputs.step_tag(step)), epoch, every="step")
        samples = bool(self.prompts) and outputs.samples_step(cfg, step)
        if samples:
            self.sample(None)
        validates = bool(self.plan.validation_batches) and holdout.validates_after_step(cfg, step)
        if validates:
            self.validate(epoch + 1, per="step")
        return saves or samples or validates

    def end_epoch(self, epoch: int) -> None:
        self.latents.epoch_done()           # loader threads end with the epoch unless persistent
        if self.plan.validation_batches and holdout.validates_after_epoch(self.cfg, epoch):
            self.validate(epoch, per="epoch")
        self.events.emit("epoch", epoch=epoch, step=self.progress.step, loss_avg=self.loss_window.mean)
        self.events.scalars(epoch, tb_tags.epoch_scalars(self.loss_window.mean))
        if outputs.saves_epoch(self.cfg, epoch, self.plan.epochs):
            self.save(outputs.lora_path(self.cfg, outputs.epoch_tag(epoch)), epoch, every="epoch")
        if self.prompts and self.cfg.sample_every_n_epochs and epoch % self.cfg.sample_every_n_epochs == 0:
            self.sample(epoch)

    def validate(self, epoch: int, per: str) -> None:
        """The held-out images' loss now, to metrics.jsonl and TensorBoard (per step at the step, per
        epoch at the epoch, as sd-scripts); divergence = validation − the training loss's moving average."""
        if not self.accelerator.is_main_process:
            return
        batches = data.validation_batches(self.plan, self.plan.split_seed)
        self.validation_latents.generator.manual_seed(self.plan.split_seed)    # uncached: the same samples
        loss = validation.validation_loss(self.stepper, batches, lambda b: self.micro_batch(b, 0, validation=True),
                                          self.plan.validation_timesteps, self.plan.split_seed,
                                          self.accelerator.autocast)
        train = self.loss_window.mean
        divergence = loss - train if train is not None else None
        step = self.progress.step
        self.events.emit("validation", per=per, step=step, epoch=epoch, loss=loss, divergence=divergence)
        self.events.scalars(step if per == "step" else epoch, tb_tags.validation_scalars(per, loss, divergence))
        self.events.log(f"validation after {per} {step if per == 'step' else epoch}: loss {loss:.4f}"
                        + (f" (training {train:.4f})" if train is not None else ""))

    # ================================================================ save
    def save(self, path: Path, epoch: int, every: str = "end") -> None:
        """Save the LoRA (and its state); `every`: "epoch" or "step" for the periodic saves that
        save_last_n_* thin out, "end" for the final and the stop save (save_state_on_train_end)."""
        cfg, step = self.cfg, self.progress.step
        tensors = self.network.kohya_state_dict(dtype=SAVE_DTYPES[cfg.save_precision])
        self.check_processes_agree(f"LoRA weights at step {step}", tensors)
        if not self.accelerator.is_main_process:
            return
        saving.save_lora(path, tensors, metadata.for_save(self.metadata, cfg, epoch, step, time.time()))
        state = (self.network, self.optimizer, self.scheduler, self.accelerator.scaler, asdict(self.progress))
        if cfg.save_state or (every == "end" and cfg.save_state_on_train_end):
            saving.save_state(outputs.state_dir(path), *state)
        saving.save_state(self.run_dir / STATE_FOLDER, *state)     # what Resume continues from, save_state or not
        self.outputs.append(str(path))
        self.events.emit("save", path=str(path), epoch=epoch, step=step)
        self.events.log(f"saved {path}")
        if every != "end":
            self.remove_superseded(path, epoch if every == "epoch" else None, step)
        self.events.status(outputs=self.outputs, step=step)

    def remove_superseded(self, path: Path, epoch: int | None, step: int) -> None:
        """save_last_n_epochs / _steps (and their _state): delete the save that fell out of the
        last N, as sd-scripts does after each periodic save."""
        for old in outputs.superseded(self.cfg, path, epoch, step):
            if saving.remove_output(old):
                self.outputs = [p for p in self.outputs if p != str(old)]
                self.events.emit("remove", path=str(old), step=step)
                self.events.log(f"removed {old} (keeping the last saves: save_last_n_*)")

    def save_stopped(self) -> str:
        if self.progress.step == 0:
            self.events.log("stopped before the first step: nothing to save")
            return "stopped"
        path = outputs.unique_path(outputs.lora_path(self.cfg, outputs.stopped_tag(self.progress.step)))
        self.save(path, self.progress.epoch + 1)
        return "stopped"

    def sample(self, epoch: int | None) -> None:
        """The prompts at the end of `epoch`, or at the current step when epoch is None."""
        if not self.accelerator.is_main_process:
            return
        if self.pipeline is None:
            self.pipeline = sampling.build_pipeline(self.models, self.stepper.noise_scheduler, self.cfg.sample_sampler)
            self.sampler = self.pipeline.scheduler      # sample_sampler's, as the pipeline set it up
        samples_dir = self.run_dir / "samples"
        samples_dir.mkdir(exist_ok=True)
        self.network.eval()
        try:
            for i, prompt in enumerate(self.prompts):
                self.pipeline.scheduler = sampling.prompt_scheduler(prompt, self.cfg.sample_sampler,
                                                                    self.sampler, self.stepper.noise_scheduler)
                with self.accelerator.autocast():
                    image = sampling.render(self.pipeline, prompt, self.progress.seed + self.progress.step + i,
                                            self.encode_prompt)
                at = sampling.when_tag(epoch, self.progress.step)
                path = sampling.sample_path(samples_dir, self.cfg.output_name, at, i, prompt)
                image.save(path)
                self.events.emit("sample", path=str(path), prompt=prompt.prompt, step=self.progress.step,
                                 epoch=self.progress.epoch + 1 if epoch is None else epoch)
        finally:
            self.network.train()
            self.models.unet.train()

    def encode_prompt(self, texts: list[str]):
        return self.models.encode(texts, self.cfg.clip_skip, self.device, self.cfg.max_token_length)

    # ================================================================ end
    def finish(self, state: str, error: str | None = None) -> None:
        if error and not self.events.enabled:      # another process than 0: its error goes to the log only
            print(f"process {processes.launched_rank()}: {state}: {error}", file=sys.stderr, flush=True)
        fields = {"error": error} if error else {}
        self.events.emit("end", status=state, step=self.progress.step, **fields)
        # the estimate of a later run with these settings reads it (workbench/planning/estimate.py)
        peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
        self.events.status(state=state, step=self.progress.step, error=error, finished_at=time.time(),
                           peak_gpu_memory_bytes=peak)
        self.events.log(f"{state}" + (f": {error}" if error else ""))

    def cleanup(self) -> None:
        if getattr(self, "latents", None) is not None:
            self.latents.close()
        self.events.close()
        self.stop.restore()
        # accelerate keeps one process-wide state; reset it so another run in this process may
        # choose another mixed precision (tests, benchmarks)
        from accelerate.state import AcceleratorState
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()     # local: a process that ends needs no peer for it
        AcceleratorState._reset_state(reset_partial_state=True)


def read_config(run_dir: Path):
    """The frozen config, refused with every start blocker in one line (the run registry's start
    decision, the one the page and `workbench train` asked before launching this process)."""
    cfg, unknown = load_toml(run_dir / "config.toml")
    problems = start_blockers(cfg, num_processes=processes.launched_world_size())
    if problems:
        raise UserError("; ".join(problems))
    return cfg


def resumed_progress(saved: dict, folder: str, num_processes: int) -> Progress:
    """Where a saved state left off; refused when another number of processes would train on (the
    steps of an epoch and each process's batches depend on it)."""
    progress = Progress(**{key: saved.get(key, default) for key, default in asdict(Progress()).items()})
    if progress.processes != num_processes:
        raise UserError(f"resume: {folder} was trained by {progress.processes} process(es); resume it with "
                        f"{progress.processes} (now {num_processes}): the steps per epoch depend on it")
    return progress


def failure_message(exc: BaseException, recipe: Recipe) -> str:
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return (f"out of memory at step {recipe.progress.step + 1}: lower "
                "train_batch_size or resolution, turn on gradient_checkpointing, or use mixed_precision bf16/fp16")
    return f"{type(exc).__name__}: {exc} (a bug in the trainer; trainer.log has the traceback)"


def run(run_dir: str | Path, early_signals: list[int] | None = None) -> int:
    """The trainer process: 0 when finished or stopped, 1 when failed. `early_signals`: SIGTERMs that
    arrived while the process was still importing torch (python -m trainer records them)."""
    recipe = Recipe(Path(run_dir))
    recipe.stop.requested |= bool(early_signals)
    try:
        # Stop pressed while starting: don't load models to throw them away (several processes must
        # meet first: one that left now would leave the others waiting for it)
        if recipe.stop.requested and processes.launched_world_size() == 1:
            recipe.events.starting()
            recipe.finish("stopped")
            return 0
        recipe.setup()
        state = "stopped" if recipe.stop_requested() else recipe.train()
        recipe.finish(state)
        return 0
    except Exception as exc:   # every failure ends the run with its reason in status.json and the end event
        if not isinstance(exc, UserError):
            traceback.print_exc()
        recipe.finish("failed", failure_message(exc, recipe))
        return 1
    finally:
        recipe.cleanup()
