"""One optimizer step of LoRA training (`Stepper`): the network on the models, its optimizer and LR
schedule, the diffusion loss, the text-encoder cache and the compiled UNet. The recipe
(trainer/recipe.py) feeds it the plan's batches; the benchmarks feed it synthetic ones, so what is
measured is what trains — as diffusers keeps its training helpers apart from the script."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from trainer import losses, masks, noise, optim, processes
from trainer import models as model_loading
from trainer.attention import set_attention
from trainer.compile import compile_repeated_blocks
from trainer.network_registry import create_network
from trainer.step_loss import StepLoss
from trainer.text_cache import TextCache

WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class MicroBatch:
    latents: torch.Tensor               # VAE latents × scaling factor, on the device
    captions: list[str]
    time_ids: torch.Tensor | None       # SDXL's size conditioning, (batch, 6)
    weights: torch.Tensor               # per-sample loss weight (prior_loss_weight for reg images)
    masks: torch.Tensor | None = None   # masked_loss / alpha_mask: (batch, H, W) in [0, 1] at pixel size


class Stepper:
    """One optimizer step of LoRA training: the network on the models, its optimizer and LR schedule,
    and the diffusion loss. The recipe feeds it the plan's batches; benchmarks/gpu_bench.py feeds it
    synthetic ones, so what is measured is what trains."""

    def __init__(self, cfg, models: model_loading.Models, accelerator, total_steps: int,
                 compile_unet: bool | None = None, log=print):
        """compile_unet: the fast path's choice (workbench/planning/fast_path.py); None: cfg.torch_compile."""
        self.cfg, self.models, self.accelerator = cfg, models, accelerator
        self.device, self.dtype = accelerator.device, WEIGHT_DTYPES[cfg.mixed_precision]
        self.noise_scheduler = model_loading.noise_scheduler(cfg.v_parameterization)
        alphas = self.noise_scheduler.alphas_cumprod
        self.snr = (alphas / (1 - alphas)).to(self.device)      # signal-to-noise ratio of each timestep
        if cfg.zero_terminal_snr:      # after the SNR: sd-scripts weights the loss by the original schedule's
            noise.zero_terminal_snr(self.noise_scheduler)
        models.weighted = cfg.weighted_captions
        self.network = create_network(cfg, models.unet, models.text_encoders)
        self.network.apply_to()
        # full_bf16 / full_fp16: the LoRA weights (so their gradients and optimizer state) in half precision
        self.network.to(self.device).train()
        if cfg.full_bf16 or cfg.full_fp16:
            self.network.to(dtype=self.dtype)
        self.unet = models.unet
        self.attention = set_attention(models.unet, cfg)       # before compiling: the processors are traced
        wanted = cfg.torch_compile if compile_unet is None else compile_unet
        self.compiled = compiled_unet(cfg, models.unet, wanted, log)     # in place: the same module names
        self.groups = self.network.param_groups(cfg.unet_lr_value(), cfg.text_encoder_lr_value(), cfg.loraplus_ratios())
        self.initial_lrs = {g["name"]: g["lr"] for g in self.groups}       # before the schedule scales them
        self.trainable = [p for g in self.groups for p in g["params"]]
        optimizer, self.optimizer_name = optim.build_optimizer(cfg, self.groups)
        self.scheduler = optim.build_scheduler(cfg, optimizer, total_steps)
        self.optimizer = accelerator.prepare_optimizer(optimizer)     # fp16: loss scaling, inf-step skipping
        if cfg.full_fp16 and accelerator.scaler is not None:
            allow_fp16_gradients(accelerator.scaler)
        self.text_encoder_frozen = False
        self.used_lrs: dict[str, float] = {}       # {group: LR} of the last step taken
        self.used_ds: dict[str, float | None] = {}  # {group: d} of D-Adaptation / Prodigy
        self.max_norm: tuple[int, float, float] | None = None    # scale_weight_norms: scaled, mean, max
        self.text_cache: TextCache | None = None    # cache_text_encoder_outputs: the recipe fills it
        self.last_loss: StepLoss | None = None      # the previous step's, checked for the NaN stop

    def encode(self, captions: list[str]):
        """The captions' conditioning: from the text cache when there is one, else the encoders."""
        if self.text_cache is not None:
            return self.text_cache.conditioning(captions)
        return self.run_text_encoders(captions)

    def run_text_encoders(self, captions: list[str]):
        return self.models.encode(captions, self.cfg.clip_skip, self.device, self.cfg.max_token_length)

    def cache_text(self, captions) -> int:
        """cache_text_encoder_outputs: encode these captions once now; returns how many."""
        def encode(chunk: list[str]):
            with self.accelerator.autocast():       # as the step encodes: the same numbers
                return self.run_text_encoders(chunk)
        self.text_cache = TextCache(encode)
        return self.text_cache.fill(captions)

    def unet_lr_used(self) -> float:
        """The UNet's LR of the last step; with per-block groups (down/mid/up_lr_weight) the
        unweighted one: unet_lr × the schedule's factor, read off the first block group."""
        if "unet" in self.used_lrs:
            return self.used_lrs["unet"]
        block = next((n for n in self.used_lrs if n.startswith("unet_block") and self.initial_lrs.get(n)), None)
        if block is None:
            return 0.0
        return self.cfg.unet_lr_value() * self.used_lrs[block] / self.initial_lrs[block]

    def freeze_text_encoder(self) -> None:
        self.network.set_text_encoder_trainable(False)
        self.text_encoder_frozen = True

    def step(self, micro_batches, count: int, where: str = "") -> StepLoss:
        """Forward and backward over `count` micro-batches, then one optimizer step; the mean loss, on
        its way to the host (trainer/step_loss.py: nothing here waits for the GPU)."""
        cfg, acc = self.cfg, self.accelerator
        total = torch.zeros((), device=self.device)
        for batch in micro_batches:
            with acc.autocast():
                loss = self.loss(batch)
            # accelerate's rule: divide by the configured accumulation even for a short last group
            acc.backward(loss / cfg.gradient_accumulation_steps)
            total += loss.detach()
        # the loss of every process: a NaN on one stops them all at once, none is left waiting
        mean = processes.average_gradients(acc, self.trainable, total / count)
        if self.last_loss is not None and not self.last_loss.checked:
            self.last_loss.value()      # the NaN stop, one step late: the GPU is busy with this step meanwhile
        self.last_loss = StepLoss.start(mean, where, cfg.learning_rate)
        if cfg.max_grad_norm:
            acc.clip_grad_norm_(self.trainable, cfg.max_grad_norm)
        self.optimizer.step()
        self.used_lrs = optim.group_lrs(self.optimizer, self.scheduler)     # this step's, before the schedule moves
        self.used_ds = optim.group_ds(self.optimizer)
        if not self.optimizer.step_was_skipped:      # fp16 skipped an inf step: sd-scripts' schedule waits too
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if cfg.scale_weight_norms:
            self.max_norm = self.network.apply_max_norm(cfg.scale_weight_norms, self.device)
        return self.last_loss

    def loss(self, batch: MicroBatch, fixed_timestep: int | None = None) -> torch.Tensor:
        """The diffusion loss of one batch (labelled as in diffusers' training examples); validation
        takes it at a `fixed_timestep`, under no_grad."""
        cfg, latents = self.cfg, batch.latents
        te_learns = self.network.trains_text_encoder and not self.text_encoder_frozen
        with torch.set_grad_enabled(torch.is_grad_enabled() and te_learns):
            cond = self.encode(batch.captions)
        eps = noise.training_noise(latents, cfg)                                    # ε (+ offset, pyramid)
        timesteps = (noise.timesteps_for(latents, cfg) if fixed_timestep is None    # uniform t
                     else torch.full((latents.shape[0],), fixed_timestep, device=latents.device))
        noisy = noise.noisy_latents(self.noise_scheduler, latents, eps, timesteps, cfg)      # q(x_t | x_0)
        pred = self.unet(noisy.to(self.dtype), timesteps, **cond.unet_kwargs(batch.time_ids, self.dtype)).sample
        target = (self.noise_scheduler.get_velocity(latents, eps, timesteps)       # v = α·ε − σ·x0
                  if cfg.v_parameterization else eps)
        threshold = losses.huber_threshold(cfg, timesteps, self.noise_scheduler.alphas_cumprod)   # huber's c
        loss = losses.elementwise_loss(pred.float(), target.float(), cfg.loss_type, threshold)
        loss = masks.masked(loss, batch.masks).mean(dim=(1, 2, 3))         # masked areas teach nothing
        return noise.weighted(loss * batch.weights, self.snr[timesteps], cfg).mean()


def allow_fp16_gradients(scaler) -> None:
    """full_fp16: torch's GradScaler refuses to unscale fp16 gradients; sd-scripts lets it
    (patch_accelerator_for_fp16_training), and so does this."""
    unscale = scaler._unscale_grads_

    def unscale_fp16_too(optimizer, inv_scale, found_inf, allow_fp16):
        return unscale(optimizer, inv_scale, found_inf, True)
    scaler._unscale_grads_ = unscale_fp16_too


def compiled_unet(cfg, unet, wanted: bool, log=print):
    """sd-scripts' --torch_compile, as regional compilation (trainer/compile.py): the UNet's repeated
    blocks compile once per block kind, whatever the bucket count; the LoRA stays hooked in and
    samples run eagerly. None when not wanted."""
    if not wanted:
        return None
    return compile_repeated_blocks(unet, cfg.dynamo_backend, log)
