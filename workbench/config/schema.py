"""The one typed config of a LoRA run.

Keys are named exactly as sd-scripts' arguments, so a kohya user recognises every key and an
export to sd-scripts is a rename-free dump. Each field carries its help text (the app shows it),
the topic (`group`) and section it sits in on the Parameters page, the label kohya_ss users know it
by, and, where it has one, its list of valid values.
Validation lives in `validate()` (workbench/config/validate.py holds the rules); TOML in/out is here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from workbench.errors import UserError
from workbench.fileio import write_text_atomic

CONFIG_VERSION = 1

SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts",
              "polynomial", "adafactor")
OPTIMIZERS = ("AdamW", "AdamW8bit", "PagedAdamW8bit", "Lion", "Lion8bit", "SGDNesterov",
              "SGDNesterov8bit", "Adafactor", "DAdaptation", "DAdaptAdam", "DAdaptAdaGrad",
              "DAdaptAdan", "DAdaptLion", "DAdaptSGD", "Prodigy")
NETWORK_MODULES = ("networks.lora", "lycoris.kohya")
PRECISIONS = ("no", "fp16", "bf16")
# torch.compile backends that ship with PyTorch (sd-scripts lists more; they need extra packages)
DYNAMO_BACKENDS = ("inductor", "aot_eager", "eager", "cudagraphs")
SAVE_PRECISIONS = ("float", "fp16", "bf16")
LOG_WITH = ("tensorboard", "wandb", "all")
LOSS_TYPES = ("l2", "l1", "huber", "smooth_l1")
HUBER_SCHEDULES = ("snr", "exponential", "constant")
SAMPLERS = ("ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver",
            "dpmsolver++", "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a")


class ConfigError(UserError):
    """A config that cannot be read: the message names the file or key and what to do."""


def opt(default: Any, help: str, group: str, choices: tuple | None = None, *, section: str | None = None,
        label: str | None = None, **extra) -> Any:
    """A config field: default, one-line help, its Parameters-page topic (`group`), valid values;
    the sub-section of the topic it sits in and the words kohya_ss users know it by (`label`; the
    key itself where none is given — workbench/config/topics.py reads both)."""
    meta = {"help": help, "group": group, "choices": choices, "section": section, "label": label, **extra}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


# the Parameters page's topics, in its order: kohya_ss' LoRA tab (Model, Folders, the Parameters
# accordion's Basic / Advanced / Samples), its Basic split by subject
MODEL, FOLDERS, TRAINING, LEARNING, NETWORK, BUCKETS, CAPTIONS, SAVING, SAMPLES, VALIDATION, LOGGING, ADVANCED = (
    "Model", "Folders", "Training", "Learning rate & schedule", "Network", "Buckets", "Captions", "Saving",
    "Samples", "Validation", "Logging", "Advanced")


@dataclass
class TrainConfig:
    # Fields stay in the order they were added; the Parameters page orders them by topic and
    # section (each field's `group` and `section`), not by this order.
    pretrained_model_name_or_path: str = opt("", "Base model: a diffusers folder, a .safetensors/.ckpt checkpoint file, or a Hugging Face repo id (owner/name).", MODEL, path="model", section="Base model", label="Pretrained model name or path")
    v2: bool = opt(False, "The base model is SD 2.x (OpenCLIP text encoder).", MODEL, section="Base model", label="SD 2.x model (v2)")
    v_parameterization: bool = opt(False, "Train with v-prediction (SD 2.x 768-v models).", MODEL, section="Base model", label="v-parameterization")
    sdxl: bool = opt(False, "The base model is SDXL (two text encoders, size conditioning).", MODEL, section="Base model", label="SDXL model")
    vae: str = opt("", "A separate VAE instead of the model's own: a .safetensors/.ckpt file or a diffusers folder (empty: the model's).", MODEL, path="file", section="VAE", label="VAE")
    no_half_vae: bool = opt(True, "Keep the VAE in float32 under fp16/bf16 (SDXL's VAE overflows in fp16). On here; kohya_ss's default is off.", MODEL, section="VAE", label="No half VAE")
    vae_batch_size: int = opt(4, "Images the VAE encodes at once while caching latents (sd-scripts' default 1; more is faster, needs more memory).", TRAINING, min=1, section="Caching", label="VAE batch size")
    train_data_dir: str = opt("", "Folder holding the <repeats>_<class tokens> image folders.", FOLDERS, path="dir", section="Images", label="Image folder")
    reg_data_dir: str = opt("", "Folder holding the regularisation <repeats>_<class> folders (optional).", FOLDERS, path="dir", section="Images", label="Regularisation folder")
    output_dir: str = opt("", "Where the LoRA files are written.", FOLDERS, path="dir", section="Output", label="Output folder")
    output_name: str = opt("last", "File name of the LoRA, without extension.", FOLDERS, section="Output", label="Trained model output name")
    logging_dir: str = opt("", "TensorBoard log folder (empty: the run directory's tb/).", LOGGING, path="dir", section="Where", label="Logging folder")
    log_with: str = opt("tensorboard", "Where the loss and learning rates are logged: tensorboard, wandb (Weights & Biases: pip install 'lora-workbench[wandb]'; the API key only from WANDB_API_KEY) or all.", LOGGING, choices=LOG_WITH, section="Where", label="Log with")
    log_prefix: str = opt("", "TensorBoard: log into a <prefix><date-time> folder inside the log folder (empty: the folder itself).", LOGGING, section="Where", label="Log prefix")
    log_tracker_name: str = opt("", "wandb project name (empty: sd-scripts' network_train).", LOGGING, section="Weights & Biases", label="Log tracker name")
    wandb_run_name: str = opt("", "wandb run name (empty: wandb picks one).", LOGGING, section="Weights & Biases", label="WANDB run name")
    save_model_as: str = opt("safetensors", "File format of the LoRA: safetensors (recommended) or ckpt.", SAVING, choices=("safetensors", "ckpt"), section="Files", label="Save trained model as")
    training_comment: str = opt("", "Free text stored in the LoRA's metadata (ss_training_comment).", SAVING, section="Files", label="Training comment")
    conditioning_data_dir: str = opt("", "masked_loss: folder of mask images, one per training image with the same file stem (any image type, the image's size); white trains, black is ignored (the red channel is read). Empty: none.", ADVANCED, path="dir", section="Masked loss", label="Conditioning data (mask) folder")
    train_batch_size: int = opt(1, "Images per batch; a batch only ever holds images of one bucket.", TRAINING, min=1, section="Batches & length", label="Train batch size")
    # not set in a file = sd-scripts' "not given": steps decide then (new_config() writes an explicit epoch count)
    max_train_epochs: int | None = opt(None, "Epochs to train (kohya_ss's Epoch); when set it decides the total steps and max_train_steps is ignored (as in sd-scripts). Empty: max_train_steps decides.", TRAINING, min=1, section="Batches & length", label="Max train epoch")
    max_train_steps: int = opt(0, "Total optimizer steps, used when max_train_epochs is empty: epochs = ⌈steps / steps per epoch⌉ (0 here, not sd-scripts' hidden 1,600).", TRAINING, min=0, section="Batches & length", label="Max train steps")
    save_every_n_epochs: int | None = opt(1, "Save an intermediate LoRA every N epochs (empty: only at the end).", SAVING, min=1, section="When", label="Save every N epochs")
    save_every_n_steps: int | None = opt(None, "Also save a LoRA every N steps, as <output_name>-step00000500 (empty: off).", SAVING, min=1, section="When", label="Save every N steps")
    caption_extension: str = opt(".txt", "Extension of the caption files beside the images; files with another extension are ignored (sd-scripts' own default is .caption).", CAPTIONS, section="Caption files", label="Caption extension")
    mixed_precision: str = opt("fp16", "Precision of the forward/backward pass: no (fp32), fp16 or bf16.", TRAINING, choices=PRECISIONS, section="Precision", label="Mixed precision")
    save_precision: str = opt("fp16", "Precision of the tensors in the saved LoRA.", SAVING, choices=SAVE_PRECISIONS, section="Files", label="Save precision")
    num_cpu_threads_per_process: int = opt(2, "CPU threads for each training process.", TRAINING, min=1, section="Data loading", label="CPU threads per process")
    seed: int | None = opt(None, "Random seed (empty: a random one, recorded in the LoRA's metadata).", TRAINING, min=0, section="Batches & length", label="Seed")
    cache_latents: bool = opt(True, "Encode every image with the VAE once and keep the latents in memory (about a third less work per step).", TRAINING, section="Caching", label="Cache latents")
    cache_latents_to_disk: bool = opt(False, "Also keep the latents on disk beside the images (.npz), reused across runs.", TRAINING, section="Caching", label="Cache latents to disk")
    cache_text_encoder_outputs: bool = opt(False, "Encode each caption once at the start, not every step (faster), when the text encoder does not train; not with shuffle_caption or caption (tag) dropout. SD1/SD2 too (sd-scripts: SDXL only).", TRAINING, section="Caching", label="Cache text encoder outputs")
    learning_rate: float = opt(1e-4, "Base learning rate; used where unet_lr or text_encoder_lr are empty.", LEARNING, min=0.0, section="Learning rates", label="Learning rate")
    unet_lr: float | None = opt(None, "Learning rate of the UNet's LoRA modules (empty: learning_rate).", LEARNING, min=0.0, section="Learning rates", label="Unet learning rate")
    text_encoder_lr: float | None = opt(None, "Learning rate of the text encoder's LoRA modules (empty: learning_rate; 0: UNet only — kohya_ss's default 0 silently trains the UNet only).", LEARNING, min=0.0, section="Learning rates", label="Text Encoder learning rate")
    lr_scheduler: str = opt("cosine", "Learning-rate schedule over the run.", LEARNING, choices=SCHEDULERS, section="Schedule", label="LR scheduler")
    lr_warmup_steps: float = opt(0.1, "Warmup: an integer is a number of steps; a value below 1 is a fraction of the total steps (0.1 = kohya_ss's 10%).", LEARNING, min=0.0, section="Schedule", label="LR warmup")
    lr_scheduler_num_cycles: int = opt(1, "Number of restarts for cosine_with_restarts.", LEARNING, min=1, section="Schedule", label="LR # cycles")
    lr_scheduler_power: float = opt(1.0, "Power of the polynomial schedule (1 = linear decay).", LEARNING, min=0.0, section="Schedule", label="LR power")
    optimizer_type: str = opt("AdamW8bit", "Optimizer. The 8-bit ones (bitsandbytes) need CUDA to be worth it.", LEARNING, choices=OPTIMIZERS, section="Optimizer", label="Optimizer")
    optimizer_args: list[str] = opt([], 'Extra optimizer arguments, each "key=value" (e.g. weight_decay=0.01, betas=(0.9,0.99)).', LEARNING, section="Optimizer", label="Optimizer extra arguments")
    resolution: str = opt("512,512", 'Training resolution "W,H" (or one number for a square); buckets keep about its area.', BUCKETS, section="Resolution", label="Max resolution")
    stop_text_encoder_training: int = opt(0, "Percent of the total steps after which the text encoder stops learning (0: never).", LEARNING, min=0, max=100, section="Learning rates", label="Stop TE (% of total steps)")
    enable_bucket: bool = opt(True, "Aspect-ratio bucketing: images are grouped by shape instead of cropped to a square.", BUCKETS, section="Resolution", label="Enable buckets")
    min_bucket_reso: int = opt(256, "Smallest bucket side, in pixels.", BUCKETS, min=64, section="Bucket sizes", label="Minimum bucket resolution")
    max_bucket_reso: int = opt(2048, "Largest bucket side, in pixels.", BUCKETS, min=64, section="Bucket sizes", label="Maximum bucket resolution")
    bucket_reso_steps: int = opt(64, "Bucket sides are multiples of this (64 for SD1/SD2; 32 allowed for SDXL).", BUCKETS, min=8, section="Bucket sizes", label="Bucket resolution steps")
    bucket_no_upscale: bool = opt(False, "Never upscale: small images keep their size, bucketed to its multiple of bucket_reso_steps; min/max_bucket_reso are then ignored (off here, on in kohya_ss).", BUCKETS, section="Bucket sizes", label="Don't upscale bucket resolution")
    network_module: str = opt("networks.lora", "networks.lora (kohya LoRA/LoCon) or lycoris.kohya (LoCon, LoHa, LoKr ... via network_args algo=).", NETWORK, choices=NETWORK_MODULES, section="Structure", label="Network module")
    network_dim: int = opt(8, "Rank of the LoRA (network_dim).", NETWORK, min=1, section="Structure", label="Network rank (Dimension)")
    network_alpha: float = opt(1.0, "Alpha: the update is scaled by alpha / rank. Usually ≤ rank.", NETWORK, min=0.0, section="Structure", label="Network alpha")
    network_args: list[str] = opt([], 'Network arguments, each "key=value": conv_dim, conv_alpha, rank_dropout, module_dropout, loraplus_lr_ratio (LoRA+: lora_up LR × ratio, ~16; also _unet_/_text_encoder_), algo ...', NETWORK, section="Structure", label="Network extra arguments")
    network_dropout: float = opt(0.0, "Dropout on the rank activations of each LoRA module (0 to 1).", NETWORK, min=0.0, max=1.0, section="Regularisation", label="Network dropout")
    network_weights: str = opt("", "Continue training from this LoRA file (optional).", NETWORK, path="file", section="Continue from a LoRA", label="Network weights")
    dim_from_weights: bool = opt(False, "Take rank and alpha from network_weights.", NETWORK, section="Continue from a LoRA", label="DIM from weights")
    network_train_unet_only: bool = opt(False, "Train the UNet only; the text encoder is left as it is.", NETWORK, section="Structure", label="Train UNet only")
    scale_weight_norms: float = opt(0.0, "Max norm of each module's weight update (0: off); larger ones are scaled down after each step.", NETWORK, min=0.0, section="Regularisation", label="Scale weight norms")
    gradient_accumulation_steps: int = opt(1, "Batches whose gradients add up before one optimizer step.", TRAINING, min=1, section="Batches & length", label="Gradient accumulate steps")
    fp8_base: bool = opt(False, "Keep the base UNet's and text encoders' Linear/Conv weights in fp8 (needs fp16/bf16): about half their fp16 memory (SDXL UNet 5.1 → 2.6 GB, text encoders 1.6 → 0.8 GB).", TRAINING, section="Precision", label="fp8 base")
    fp8_base_unet: bool = opt(False, "fp8 for the UNet only; the text encoders stay in fp16/bf16 (SDXL: saves about 2.6 GB).", TRAINING, section="Precision", label="fp8 base UNet")
    full_bf16: bool = opt(False, "LoRA weights, gradients and optimizer state in bf16, not fp32 (needs mixed_precision bf16): halves their memory (rank 32 SDXL LoRA with AdamW: about 0.9 → 0.45 GB).", TRAINING, section="Precision", label="Full bf16 training")
    full_fp16: bool = opt(False, "As full_bf16 in fp16 (needs mixed_precision fp16 and a CUDA GPU); fp16 gradients can underflow.", TRAINING, section="Precision", label="Full fp16 training")
    gradient_checkpointing: bool = opt(False, "Recompute activations in the backward pass: less VRAM, about 20-30% slower.", TRAINING, section="Speed & memory", label="Gradient checkpointing")
    torch_compile: bool = opt(False, "Always compile the UNet's repeated blocks with torch.compile (once per run, whatever the bucket count); fast_path auto already does on a GPU when the run pays.", TRAINING, section="Speed & memory", label="torch.compile")
    dynamo_backend: str = opt("inductor", "torch.compile backend, with torch_compile: inductor makes fused GPU kernels; aot_eager/eager only check that the model compiles.", TRAINING, choices=DYNAMO_BACKENDS, section="Speed & memory", label="Dynamo backend")
    fast_path: str = opt("auto", "auto: on a CUDA GPU, compile the UNet when the run is long enough to win back the compile; off: only torch_compile compiles. Same losses and files either way (workbench only).", TRAINING, choices=("auto", "off"), section="Speed & memory", label="Fast path (workbench)")
    max_grad_norm: float = opt(1.0, "Clip the gradient norm to this (0: no clipping).", LEARNING, min=0.0, section="Optimizer", label="Max grad norm")
    max_token_length: int = opt(75, "Caption tokens the text encoder reads: 75 (CLIP's one window), or 150 / 225 as windows of 75 joined (sd-scripts' way); the rest is cut. Sample prompts read as many.", CAPTIONS, choices=(75, 150, 225), section="Text encoder", label="Max token length")
    clip_skip: int = opt(1, "Use the output of the Nth-from-last text-encoder layer (2 for many anime models).", CAPTIONS, min=1, max=12, section="Text encoder", label="Clip skip")
    noise_offset: float = opt(0.0, "Noise offset (about 0.05-0.1 helps very dark/bright images; 0: off).", ADVANCED, min=0.0, section="Noise", label="Noise offset")
    noise_offset_random_strength: bool = opt(False, "Each step uses a random noise offset between 0 and noise_offset.", ADVANCED, section="Noise", label="Noise offset random strength")
    adaptive_noise_scale: float | None = opt(None, "Add this × |mean of each latent channel| to noise_offset (needs noise_offset; about 0.01; empty: off).", ADVANCED, section="Noise", label="Adaptive noise scale")
    zero_terminal_snr: bool = opt(False, "Rescale the noise schedule so the last timestep is pure noise (SNR 0); meant for v-prediction.", ADVANCED, section="Timesteps & SNR", label="Zero terminal SNR")
    min_snr_gamma: float = opt(0.0, "Min-SNR loss weighting gamma (5 is the paper's value; 0: off).", ADVANCED, min=0.0, section="Timesteps & SNR", label="Min SNR gamma")
    multires_noise_iterations: int = opt(0, "Multi-resolution (pyramid) noise: levels of coarser noise added (6-10 usual; 0: off).", ADVANCED, min=0, section="Noise", label="Multires noise iterations")
    multires_noise_discount: float = opt(0.3, "With multires noise: each coarser level's strength relative to the one before (0.1-0.3 usual).", ADVANCED, min=0.0, max=1.0, section="Noise", label="Multires noise discount")
    ip_noise_gamma: float = opt(0.0, "Input perturbation: extra noise on the noisy latents only, not the target (about 0.1; 0: off).", ADVANCED, min=0.0, section="Noise", label="IP noise gamma")
    ip_noise_gamma_random_strength: bool = opt(False, "Each step uses a random input perturbation between 0 and ip_noise_gamma.", ADVANCED, section="Noise", label="IP noise gamma random strength")
    min_timestep: int = opt(0, "Smallest diffusion timestep trained (0-999; 0: all).", ADVANCED, min=0, max=999, section="Timesteps & SNR", label="Min timestep")
    max_timestep: int = opt(1000, "Timesteps below this are trained (1-1000; 1000: all).", ADVANCED, min=1, max=1000, section="Timesteps & SNR", label="Max timestep")
    debiased_estimation_loss: bool = opt(False, "Weight each sample's loss by 1/√SNR (debiased estimation).", ADVANCED, section="Timesteps & SNR", label="Debiased estimation loss")
    scale_v_pred_loss_like_noise_pred: bool = opt(False, "v-prediction: scale the loss by SNR/(SNR+1), like ε-prediction's.", ADVANCED, section="Timesteps & SNR", label="Scale v prediction loss")
    v_pred_like_loss: float = opt(0.0, "Add this much of a v-prediction-like loss to the ε-prediction loss (0: off).", ADVANCED, min=0.0, section="Timesteps & SNR", label="V pred like loss")
    prior_loss_weight: float = opt(1.0, "Loss weight of regularisation images.", ADVANCED, min=0.0, section="Loss", label="Prior loss weight")
    loss_type: str = opt("l2", "Loss between prediction and target: l2 (squared error), l1 (absolute), huber or smooth_l1 (quadratic below huber_c, linear above: fewer outliers).", ADVANCED, choices=LOSS_TYPES, section="Loss", label="Loss type")
    huber_schedule: str = opt("snr", "huber/smooth_l1: how the threshold moves with the timestep: snr (small at noisy steps), exponential, constant.", ADVANCED, choices=HUBER_SCHEDULES, section="Loss", label="Huber schedule")
    huber_c: float = opt(0.1, "huber/smooth_l1: the threshold between the quadratic and the linear part (snr: at the noisiest step; exponential: at t = 1000).", ADVANCED, min=0.0, section="Loss", label="Huber C")
    huber_scale: float = opt(1.0, "huber/smooth_l1: multiplies the threshold of the exponential and constant schedules (snr ignores it).", ADVANCED, min=0.0, section="Loss", label="Huber scale")
    shuffle_caption: bool = opt(False, "Shuffle the comma-separated tags of each caption every step.", CAPTIONS, section="Shuffle & keep", label="Shuffle caption")
    keep_tokens: int = opt(0, "With shuffle_caption: keep the first N tags in place (e.g. the trigger word).", CAPTIONS, min=0, section="Shuffle & keep", label="Keep n tokens")
    keep_tokens_separator: str = opt("", "Where a caption has this text (e.g. |||), the tags before it stay in place when shuffled or warmed up, and so do tags after a second one; keep_tokens is then not used.", CAPTIONS, section="Shuffle & keep", label="Keep tokens separator")
    caption_prefix: str = opt("", "Text put before every caption, with a space (e.g. a trigger word): it counts as the first tags.", CAPTIONS, section="Caption files", label="Caption prefix")
    caption_suffix: str = opt("", "Text put after every caption, with a space.", CAPTIONS, section="Caption files", label="Caption suffix")
    token_warmup_step: float = opt(0.0, "Token warmup: captions grow from token_warmup_min tags to all of them by this step (below 1: a fraction of the total steps; 0: off).", CAPTIONS, min=0.0, section="Shuffle & keep", label="Token warmup step")
    token_warmup_min: int = opt(1, "Token warmup: the tags (after the kept ones) each caption starts with.", CAPTIONS, min=0, section="Shuffle & keep", label="Token warmup min")
    caption_dropout_rate: float = opt(0.0, "Chance that an image trains with an empty caption (0 to 1).", CAPTIONS, min=0.0, max=1.0, section="Dropout", label="Rate of caption dropout")
    caption_dropout_every_n_epochs: int = opt(0, "Every Nth epoch trains every image with an empty caption (0: never).", CAPTIONS, min=0, section="Dropout", label="Dropout caption every n epochs")
    caption_tag_dropout_rate: float = opt(0.0, "Chance that each tag after the first keep_tokens is left out of a caption (0 to 1).", CAPTIONS, min=0.0, max=1.0, section="Dropout", label="Caption tag dropout rate")
    color_aug: bool = opt(False, "Colour augmentation: one use in three shifts the hue a little or applies a small gamma (needs cache_latents off).", ADVANCED, section="Augmentation", label="Color augmentation")
    random_crop: bool = opt(False, "Cut images that overhang their bucket at a random place instead of the centre (needs cache_latents off).", ADVANCED, section="Augmentation", label="Random crop instead of center crop")
    max_data_loader_n_workers: int = opt(8, "Threads that read and decode images while latents are not cached (0: in the training loop; with cache_latents nothing is read while training).", TRAINING, min=0, section="Data loading", label="Max num workers for DataLoader")
    persistent_data_loader_workers: bool = opt(False, "Keep the image-reading threads from one epoch to the next instead of starting them again.", TRAINING, section="Data loading", label="Persistent data loader")
    flip_aug: bool = opt(False, "Randomly mirror images horizontally (not with cached latents).", ADVANCED, section="Augmentation", label="Flip augmentation")
    save_state: bool = opt(False, "Also save the optimizer/scheduler state with each save, so the run can be resumed.", SAVING, section="State & resume", label="Save training state")
    save_state_on_train_end: bool = opt(False, "Save the state once at the end (<output_name>-state), even without save_state.", SAVING, section="State & resume", label="Save training state at end of training")
    save_last_n_epochs: int | None = opt(None, "Keep only the last N files of save_every_n_epochs: the file of epoch E − every × N is deleted when epoch E is saved (empty: keep all).", SAVING, min=1, section="Keep", label="Save last N epochs")
    save_last_n_epochs_state: int | None = opt(None, "Keep only the last N epoch state folders (empty: as save_last_n_epochs).", SAVING, min=1, section="State & resume", label="Save last N epochs state")
    save_last_n_steps: int | None = opt(None, "Keep the save_every_n_steps files of only the last N steps: older ones are deleted (empty: keep all).", SAVING, min=1, section="Keep", label="Save last N steps")
    save_last_n_steps_state: int | None = opt(None, "Keep the step state folders of only the last N steps (empty: as save_last_n_steps).", SAVING, min=1, section="State & resume", label="Save last N steps state")
    resume: str = opt("", "Resume from a saved state folder (continues steps, LR schedule and data order).", SAVING, path="dir", section="State & resume", label="Resume from saved training state")
    masked_loss: bool = opt(False, "Multiply the loss by a mask (from conditioning_data_dir, else the alpha channel with alpha_mask), shrunk to the latent size: black areas teach nothing.", ADVANCED, section="Masked loss", label="Masked loss")
    alpha_mask: bool = opt(False, "Use each image's alpha channel as its loss mask (transparent: not learned); masks the loss even without masked_loss, as in sd-scripts. Images without alpha train everywhere.", ADVANCED, section="Masked loss", label="Alpha mask")
    face_crop_aug_range: str = opt("", 'No buckets, no latent cache: crop around the face named in the file (<name>_<x>_<y>_<w>_<h>.png), face "low,high" times smaller than the resolution (e.g. "2.0,4.0"); empty: off.', ADVANCED, section="Augmentation", label="Face crop aug range")
    weighted_captions: bool = opt(False, "Read (word:1.2), (word) = ×1.1 and [word] = ÷1.1 in captions: each token's text-encoder output is multiplied by its weight. No commas inside the brackets (shuffling and dropout split on commas).", CAPTIONS, section="Text encoder", label="Weighted captions")
    mem_eff_attn: bool = opt(False, "Memory-efficient attention: sd-scripts' own chunked attention, here diffusers' sliced attention (set_attention_slice auto): less memory, slower. Wins over xformers and sdpa.", TRAINING, section="Speed & memory", label="Memory efficient attention")
    xformers: bool = opt(False, "xformers' memory-efficient attention in the UNet (pip install xformers; CUDA only). Wins over sdpa.", TRAINING, section="Speed & memory", label="CrossAttention: xformers")
    sdpa: bool = opt(True, "PyTorch's scaled_dot_product_attention in the UNet (fast, flash kernels on a GPU). On here; sd-scripts' default is off (its plain attention, used here when all three are off).", TRAINING, section="Speed & memory", label="CrossAttention: SDPA")
    sample_prompts: str = opt("", "Prompt file for sample images (one prompt per line, with --w --h --s --l --n --d).", SAMPLES, path="file", section="Prompts", label="Sample prompts")
    sample_every_n_epochs: int | None = opt(None, "Render the sample prompts every N epochs (empty: never).", SAMPLES, min=1, section="When", label="Sample every n epochs")
    sample_every_n_steps: int | None = opt(None, "Render the sample prompts every N steps; ignored when sample_every_n_epochs is set, as in sd-scripts (empty: never).", SAMPLES, min=1, section="When", label="Sample every n steps")
    sample_sampler: str = opt("euler_a", "Sampler for sample images.", SAMPLES, choices=SAMPLERS, section="Prompts", label="Sample sampler")
    validation_split: float = opt(0.0, "Fraction of each training folder's images held out to measure a validation loss (e.g. 0.1; 0: off). They no longer train, so the steps go down.", VALIDATION, min=0.0, section="Held-out images", label="Validation split")
    validation_seed: int | None = opt(None, "Seed that picks the held-out images (empty: the run's seed).", VALIDATION, min=0, section="Held-out images", label="Validation seed")
    validate_every_n_epochs: int | None = opt(None, "Validate after every Nth epoch (empty: after every epoch).", VALIDATION, min=1, section="When", label="Validate every N epochs")
    validate_every_n_steps: int | None = opt(None, "Also validate every N steps (empty: only after epochs).", VALIDATION, min=1, section="When", label="Validate every N steps")
    max_validation_steps: int | None = opt(None, "Batches of held-out images each validation runs, each at 4 timesteps (empty: all of them).", VALIDATION, min=1, section="When", label="Max validation steps")

    # ---- derived numbers (one place for each)
    def resolution_wh(self) -> tuple[int, int]:
        return parse_resolution(self.resolution)

    def unet_lr_value(self) -> float:
        return self.learning_rate if self.unet_lr is None else self.unet_lr

    def text_encoder_lr_value(self) -> float:
        return self.learning_rate if self.text_encoder_lr is None else self.text_encoder_lr

    def trains_text_encoder(self) -> bool:
        return not self.network_train_unet_only and self.text_encoder_lr_value() > 0

    def network_args_dict(self) -> dict[str, str]:
        return parse_key_values(self.network_args, "network_args")

    def loraplus_ratios(self) -> dict[str, float | None]:
        """LoRA+ (networks.lora's network_args): the LR ratio of the lora_up weights per part, the
        part's own ratio first, then loraplus_lr_ratio; None: off. ConfigError on a non-number."""
        args = self.network_args_dict()
        both = _ratio(args, "loraplus_lr_ratio")
        return {"unet": _ratio(args, "loraplus_unet_lr_ratio") or both,
                "text_encoder": _ratio(args, "loraplus_text_encoder_lr_ratio") or both}

    def face_crop_range(self) -> tuple[float, float] | None:
        """face_crop_aug_range "low,high" -> (low, high); None when empty. ConfigError when it is not
        two numbers with low ≤ high (sd-scripts' assertion)."""
        return parse_face_crop_range(self.face_crop_aug_range)

    def model_family(self) -> str:
        """sd1, sd2 or sdxl, from the flags (checks.py compares it with the checkpoint)."""
        return "sdxl" if self.sdxl else "sd2" if self.v2 else "sd1"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def new_config(**values) -> TrainConfig:
    """A config made from scratch by the app or the demo: an explicit epoch count (kohya_ss' "Epoch 1"
    habit), since a config with neither epochs nor steps cannot run."""
    return TrainConfig(**{"max_train_epochs": 1, **values})


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(TrainConfig)}


def field_help(name: str) -> str:
    return FIELDS[name].metadata["help"]


def fields_in_group(group: str) -> list[dataclasses.Field]:
    return [f for f in FIELDS.values() if f.metadata["group"] == group]


GROUPS = (MODEL, FOLDERS, TRAINING, LEARNING, NETWORK, BUCKETS, CAPTIONS, SAVING, SAMPLES, VALIDATION, LOGGING,
          ADVANCED)


def parse_resolution(text: str | int | list | tuple) -> tuple[int, int]:
    """ "512" -> (512, 512); "768,512" -> (768, 512); [768, 512] -> (768, 512)."""
    if isinstance(text, (list, tuple)):
        parts = [str(p) for p in text]
    else:
        parts = [p.strip() for p in str(text).replace("x", ",").split(",") if p.strip()]
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f'resolution: "{text}" is not "W,H" in pixels (e.g. "512,512")') from None
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or min(sizes) <= 0:
        raise ConfigError(f'resolution: "{text}" is not "W,H" in pixels (e.g. "512,512")')
    return sizes[0], sizes[1]


def parse_face_crop_range(text: str) -> tuple[float, float] | None:
    if not str(text).strip():
        return None
    try:
        low, high = (float(p) for p in str(text).split(","))
    except ValueError:
        raise ConfigError(f'face_crop_aug_range: "{text}" is not "low,high" (e.g. "2.0,4.0")') from None
    if not 0 < low <= high:
        raise ConfigError(f'face_crop_aug_range: "{text}": low must be above 0 and not above high (e.g. "2.0,4.0")')
    return low, high


def parse_key_values(items: list[str], key: str) -> dict[str, str]:
    """["conv_dim=4", "algo=locon"] -> {"conv_dim": "4", "algo": "locon"}."""
    out = {}
    for item in items:
        name, sep, value = str(item).partition("=")
        if not sep or not name.strip():
            raise ConfigError(f'{key}: "{item}" is not "key=value"')
        out[name.strip()] = value.strip()
    return out


def _ratio(args: dict[str, str], key: str) -> float | None:
    if key not in args:
        return None
    try:
        value = float(args[key])
    except ValueError:
        raise ConfigError(f'network_args: {key}="{args[key]}" is not a number (e.g. 16)') from None
    if value <= 0:
        raise ConfigError(f"network_args: {key}={args[key]} must be above 0 (LoRA+ multiplies the LR by it)")
    return value


# ---------------------------------------------------------------- reading values

KIND_WORDS = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "a text",
              "list": 'a list of "key=value" texts'}


def field_type(name: str) -> tuple[str, bool]:
    """("int" | "float" | "bool" | "str" | "list", optional) of a field."""
    text = str(FIELDS[name].type)
    return text.split("[")[0].split(" ")[0], "None" in text


def _coerce(name: str, value: Any) -> Any:
    """Turn a TOML/JSON value into the field's type, or raise a ConfigError naming the key."""
    kind, optional = field_type(name)
    if value is None or (optional and value == ""):
        if optional:
            return None
        raise ConfigError(f"{name}: a value is required ({field_help(name)})")
    try:
        return CONVERTERS[kind](name, value)
    except ConfigError:
        raise
    except (ValueError, TypeError):
        raise ConfigError(f"{name}: {value!r} is not {KIND_WORDS[kind]} ({field_help(name)})") from None


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError


def _to_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError
        return int(value)
    return int(str(value).strip())


def _to_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    return float(value)


def _to_str(name: str, value: Any) -> str:
    if name == "resolution" and not isinstance(value, (bool, float, dict)):
        w, h = parse_resolution(value)          # "512", 512, [768, 512], "768x512" -> "W,H"
        return f"{w},{h}"
    if isinstance(value, (dict, list, bool)):
        raise ValueError
    return str(value)


def _to_list(name: str, value: Any) -> list[str]:
    """A list of "key=value" texts; also one space-separated text, or a table {key = value}."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, dict):
        return [f"{k}={v}" for k, v in value.items()]
    if not isinstance(value, (list, tuple)) or any(isinstance(v, (dict, list)) for v in value):
        raise ValueError
    return [str(v) for v in value]


CONVERTERS = {"bool": _to_bool, "int": _to_int, "float": _to_float, "str": _to_str, "list": _to_list}


def _warmup(value: Any) -> float | int:
    """lr_warmup_steps: an int is steps, a float below 1 a ratio of the total (as sd-scripts)."""
    if isinstance(value, bool):
        raise ConfigError("lr_warmup_steps: give a number of steps or a ratio below 1")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"lr_warmup_steps: {value!r} is not a number of steps or a ratio below 1") from None
    if number < 0:
        raise ConfigError("lr_warmup_steps: must be 0 or more")
    if number < 1:
        return number
    if not number.is_integer():
        raise ConfigError(f"lr_warmup_steps: {value!r} — give whole steps, or a ratio below 1")
    return int(number)


def flatten(data: dict[str, Any]) -> dict[str, Any]:
    """Tables only group keys (as in sd-scripts' --config_file): lift their keys to the top.
    A table named after a list field (e.g. [network_args]) is that field's key=value pairs.
    A key given twice, in two tables, is an error rather than a silent last-one-wins."""
    flat: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, value, table in _walk(data, ""):
        if name in flat:
            raise ConfigError(f"{name}: given twice (in [{origin[name]}] and [{table}]); keep one")
        flat[name], origin[name] = value, table
    return flat


def _walk(data: dict[str, Any], table: str):
    """(key, value, table it sits in) for every non-table value, tables entered recursively."""
    for key, value in data.items():
        if isinstance(value, dict) and not _is_list_field(key):
            yield from _walk(value, f"{table}.{key}" if table else key)
        else:
            yield key, value, table or "top level"


def _is_list_field(key: str) -> bool:
    return key in FIELDS and field_type(key)[0] == "list"


def from_dict(data: dict[str, Any]) -> tuple[TrainConfig, list[str]]:
    """Build a config from flat or grouped keys. Returns it and the unknown keys (reported, not used)."""
    flat = flatten(data)
    version = flat.pop("config_version", CONFIG_VERSION)
    if not isinstance(version, int) or version > CONFIG_VERSION:
        raise ConfigError(f"config_version: {version!r} was written by a newer workbench (this one reads "
                          f"version {CONFIG_VERSION}); update the workbench")
    known, unknown = {}, []
    for key, value in flat.items():
        if key not in FIELDS:
            unknown.append(key)
        elif key == "lr_warmup_steps":
            known[key] = _warmup(value)
        else:
            known[key] = _coerce(key, value)
    return TrainConfig(**known), unknown


def load_toml(path: str | Path) -> tuple[TrainConfig, list[str]]:
    """Read a config TOML. Raises ConfigError with the file name and what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give the config .toml file")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        return from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def to_toml(cfg: TrainConfig, grouped: bool = False) -> str:
    """TOML text of a config. TOML has no null: an empty optional value is written as "" (which
    reads back as empty), so a config round-trips exactly."""
    import tomli_w
    values = {k: ("" if v is None else v) for k, v in cfg.to_dict().items()}
    if not grouped:
        return tomli_w.dumps({"config_version": CONFIG_VERSION, **values})
    tables: dict[str, dict] = {}
    for key, value in values.items():
        group = table_name(FIELDS[key].metadata["group"])
        tables.setdefault(group, {})[key] = value
    return tomli_w.dumps({"config_version": CONFIG_VERSION, **tables})


def table_name(group: str) -> str:
    """A topic as a bare TOML table name: "Learning rate & schedule" -> "learning_rate_schedule"."""
    return "_".join("".join(c if c.isalnum() else " " for c in group.lower()).split())


def save_toml(cfg: TrainConfig, path: str | Path, grouped: bool = False) -> Path:
    path = Path(path)
    write_text_atomic(path, to_toml(cfg, grouped))
    return path
