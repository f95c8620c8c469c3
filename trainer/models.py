"""The base model and how each family uses it: SD1 / SD2 (one CLIP text encoder, clip_skip) and
SDXL (two encoders, penultimate layers concatenated, pooled embedding and size "time ids").

The families differ only in a small strategy (`Family`): the scaling factor of the VAE latents,
how a prompt becomes UNet conditioning, and which diffusers pipeline samples. The loop is one.

Loading: a diffusers folder, or a single-file checkpoint through diffusers' from_single_file with
the component configs shipped in trainer/model_configs (never a hub). The family is read from the
checkpoint (workbench/models/modelinfo.py, the rule preflight uses) and a contradiction with the v2/sdxl
flags is refused before anything heavy is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from trainer import token_windows, weighted_tokens
from trainer.token_windows import CLIP_WINDOW
from trainer.vae_file import load_vae
from workbench.models.hub import ensure_local, is_repo_id
from workbench.models.modelinfo import (
    ModelError,
    ModelInfo,
    contradiction,
    family_from_tensor_names,
    missing_components,
    model_info,
    prediction_mismatch,
)
from workbench.planning.buckets import sdxl_crop_ltrb

CONFIG_DIR = Path(__file__).parent / "model_configs"
SINGLE_FILE_CONFIGS = {("sd1", False): "sd15", ("sd2", False): "sd21-512", ("sd2", True): "sd21-768-v",
                       ("sdxl", False): "sdxl-base"}
# Hugging Face cache entries holding CLIP's BPE vocabulary (a single-file checkpoint has no tokenizer)
CLIP_TOKENIZER_REPOS = ("openai/clip-vit-large-patch14", "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k")
CLIP_VOCAB_SIZE = 49408


@dataclass
class Conditioning:
    hidden: torch.Tensor                 # (batch, 2 + n·75 tokens, cross-attention width); n = 1: 77
    pooled: torch.Tensor | None = None   # SDXL: (batch, 1280) from the second encoder's projection

    def unet_kwargs(self, time_ids: torch.Tensor | None, dtype) -> dict:
        kwargs = {"encoder_hidden_states": self.hidden.to(dtype)}
        if self.pooled is not None:
            kwargs["added_cond_kwargs"] = {"text_embeds": self.pooled.to(dtype), "time_ids": time_ids.to(dtype)}
        return kwargs


@dataclass
class Models:
    family: "Family"
    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoders: list
    tokenizers: list
    info: ModelInfo
    weighted: bool = False               # weighted_captions: (word:1.2) scales the word's encoder output

    def token_ids(self, index: int, captions: list[str], device, max_tokens: int = CLIP_WINDOW) -> torch.Tensor:
        """(batch · max_tokens/75, 77) ids: one 77-token window per 75 caption tokens."""
        tokenizer = self.tokenizers[index]
        if self.weighted:
            ids = weighted_tokens.batch_ids(tokenizer, captions, max_tokens)
        else:
            ids = tokenizer(captions, padding="max_length", max_length=max_tokens + 2,
                            truncation=True, return_tensors="pt").input_ids
        return (token_windows.windows(ids, tokenizer) if max_tokens > CLIP_WINDOW else ids).to(device)

    def encode(self, captions: list[str], clip_skip: int, device, max_tokens: int = CLIP_WINDOW) -> Conditioning:
        """max_tokens: max_token_length (75, 150 or 225 caption tokens). With weighted captions each
        token's row is scaled by its weight (SDXL: both encoders' rows, and not the pooled output,
        as sd-scripts does; their tokenizers split text alike, so the first one's weights serve)."""
        cond = self.family.encode(self, captions, clip_skip, device, max_tokens)
        if self.weighted:
            weights = weighted_tokens.batch_weights(self.tokenizers[0], captions, max_tokens)
            cond.hidden = cond.hidden * weights.to(cond.hidden)[..., None]
        return cond

    def prepare(self, device, dtype, gradient_checkpointing: bool, train_text_encoder: bool,
                vae_dtype=torch.float32) -> None:
        """Frozen base weights in `dtype` on `device`, the VAE in `vae_dtype` (float32 with
        no_half_vae: fp16 VAEs overflow, SDXL's does); checkpointing when asked (diffusers and
        transformers apply it in train mode)."""
        if self.vae is not None:
            self.vae.to(device, vae_dtype).requires_grad_(False).eval()
        for model in (self.unet, *self.text_encoders):
            model.to(device, dtype).requires_grad_(False)
        self.unet.train()           # SD's UNet has no dropout: train mode only enables checkpointing
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
            if train_text_encoder:
                for encoder in self.text_encoders:
                    _checkpoint_text_encoder(encoder)
                    encoder.train()     # CLIP has no dropout either


def store_in_fp8(model: torch.nn.Module) -> int:
    """fp8_base: every Linear and Conv2d weight stored as float8_e4m3fn; autocast casts it to the
    fp16/bf16 it computes in (as sd-scripts relies on). Norms and embeddings keep their dtype: a
    CPU autocast cannot take fp8 norm weights, and they are a tiny part. Returns the weights cast."""
    cast = 0
    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            module.weight.data = module.weight.data.to(torch.float8_e4m3fn)
            cast += 1
    return cast


def _checkpoint_text_encoder(encoder) -> None:
    # non-reentrant: the frozen inputs need no grad for the LoRA weights inside to get theirs
    kwargs = {"use_reentrant": False}
    if hasattr(encoder, "activation_checkpointing_enable"):      # transformers 5 renamed it
        encoder.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _final_norm(encoder) -> torch.nn.Module:
    # transformers 5 flattened CLIPTextModel; 4.x keeps the layers under .text_model
    return getattr(encoder, "text_model", encoder).final_layer_norm


def encode_sd(models: Models, captions: list[str], clip_skip: int, device, max_tokens: int) -> Conditioning:
    """SD1/SD2: the last layer's output, or with clip_skip N the Nth-from-last layer put through
    the final layer norm (as sd-scripts and A1111 do); windows of 75 tokens joined after it."""
    encoder, count = models.text_encoders[0], max_tokens // CLIP_WINDOW
    out = encoder(models.token_ids(0, captions, device, max_tokens), output_hidden_states=clip_skip > 1)
    hidden = out.last_hidden_state if clip_skip <= 1 else _final_norm(encoder)(out.hidden_states[-clip_skip])
    return Conditioning(token_windows.joined(hidden, count))


def sdxl_time_ids(original_size: tuple[int, int], bucket: tuple[int, int], flipped: bool = False) -> list[int]:
    """SDXL's size conditioning as sd-scripts computes it: original (h, w), crop (top, left) from
    sd-scripts' fit-inside crop box (a mirrored image mirrors it), target (h, w) = the bucket."""
    (w, h), (bucket_w, bucket_h) = original_size, bucket
    left, top, right, _ = sdxl_crop_ltrb(original_size, bucket)
    if flipped:
        left = bucket_w - right
    return [h, w, int(top), int(left), bucket_h, bucket_w]


def encode_sdxl(models: Models, captions: list[str], clip_skip: int, device, max_tokens: int) -> Conditioning:
    """SDXL: both encoders' penultimate layers side by side (768 + 1280 = 2048 wide), and the
    second encoder's projected pooled output (its first window's). clip_skip does not apply (SDXL
    fixes the layer)."""
    (first, second), count = models.text_encoders, max_tokens // CLIP_WINDOW
    hidden1 = first(models.token_ids(0, captions, device, max_tokens), output_hidden_states=True).hidden_states[-2]
    out2 = second(models.token_ids(1, captions, device, max_tokens), output_hidden_states=True)
    hidden = torch.cat([hidden1, out2.hidden_states[-2].to(hidden1.dtype)], dim=-1)
    return Conditioning(token_windows.joined(hidden, count), token_windows.first_window(out2.text_embeds, count))


@dataclass(frozen=True)
class Family:
    name: str
    scaling_factor: float               # VAE latents × this = what the UNet sees
    encode: Callable[..., Conditioning]
    pipeline: str                       # diffusers pipeline class (sampling, single-file loading)
    text_encoder_folders: tuple[str, ...]

    @property
    def uses_time_ids(self) -> bool:
        return self.name == "sdxl"


SD_FOLDERS = ("text_encoder",)
FAMILIES = {
    "sd1": Family("sd1", 0.18215, encode_sd, "StableDiffusionPipeline", SD_FOLDERS),
    "sd2": Family("sd2", 0.18215, encode_sd, "StableDiffusionPipeline", SD_FOLDERS),
    "sdxl": Family("sdxl", 0.13025, encode_sdxl, "StableDiffusionXLPipeline", ("text_encoder", "text_encoder_2")),
}


def noise_scheduler(v_parameterization: bool):
    """sd-scripts' training schedule whatever the model folder says: DDPM, 1,000 steps,
    scaled_linear betas 0.00085–0.012, the class's other defaults (the samplers start from it)."""
    from diffusers import DDPMScheduler
    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, prediction_type="v_prediction" if v_parameterization else "epsilon")


# ---------------------------------------------------------------- which model

def checked_model_info(cfg, on_download=None) -> ModelInfo:
    """The base model's family, refused with one clear line when it contradicts the config. A
    Hugging Face repo id is the snapshot folder of the cache, downloaded first when it is not there
    (on_download(bytes done, bytes in all) as it goes)."""
    path = Path(cfg.pretrained_model_name_or_path).expanduser()
    if not cfg.pretrained_model_name_or_path:
        raise ModelError("pretrained_model_name_or_path: not set; choose a diffusers folder or a .safetensors file")
    if is_repo_id(cfg.pretrained_model_name_or_path):
        path = ensure_local(cfg.pretrained_model_name_or_path, on_download)
    if path.is_file() and path.suffix.lower() == ".ckpt":
        info = _ckpt_info(path)
    else:
        info = model_info(path)
    problem = contradiction(info, cfg)
    if problem:
        raise ModelError(problem)
    mismatch = prediction_mismatch(info, cfg)         # a warning the start check already showed
    if mismatch and mismatch[0] == "error":
        raise ModelError(mismatch[1])
    return info


def _ckpt_info(path: Path) -> ModelInfo:
    """A pickle checkpoint's family from its tensor names: weights_only refuses code, mmap avoids reading it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:   # torch raises many types for a damaged or unsafe file
        raise ModelError(f"{path}: not a loadable checkpoint ({exc.__class__.__name__}); "
                         "convert it to .safetensors") from None
    family = family_from_tensor_names(state.get("state_dict", state))
    if family is None:
        raise ModelError(f"{path}: not a Stable Diffusion checkpoint (no UNet / text-encoder tensors found)")
    return ModelInfo(path, family, None, "single_file")


# ---------------------------------------------------------------- loading

def load_models(cfg, on_download=None) -> Models:
    """UNet, VAE, text encoder(s) and tokenizer(s) in float32 on the CPU; the recipe moves them."""
    info = checked_model_info(cfg, on_download)
    family = FAMILIES[info.family]
    if info.layout == "diffusers":
        parts = _load_folder(info.path, family)
    else:
        parts = _load_single_file(info.path, family, cfg.v_parameterization)
    if cfg.vae:
        parts["vae"] = load_vae(cfg.vae, parts["vae"])
    return Models(family, parts["unet"], parts["vae"], parts["text_encoders"], parts["tokenizers"], info)


def _load_folder(folder: Path, family: Family) -> dict:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
    encoder_classes = (CLIPTextModel, CLIPTextModelWithProjection)
    missing = missing_components(folder, family.name)
    if missing:
        raise ModelError(f"{folder}: incomplete diffusers folder, missing {', '.join(missing)}; "
                         "download or convert the whole model")
    try:
        encoders = [cls.from_pretrained(folder, subfolder=name)
                    for cls, name in zip(encoder_classes, family.text_encoder_folders)]
        tokenizers = [CLIPTokenizer.from_pretrained(folder, subfolder=name.replace("text_encoder", "tokenizer"))
                      for name in family.text_encoder_folders]
        return {"unet": UNet2DConditionModel.from_pretrained(folder, subfolder="unet"),
                "vae": AutoencoderKL.from_pretrained(folder, subfolder="vae"),
                "text_encoders": encoders, "tokenizers": tokenizers}
    except (OSError, ValueError) as exc:         # a corrupt or mismatched part: the user's file, not a bug
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{folder}: cannot load this diffusers model ({first[:200]})") from None


def _load_single_file(path: Path, family: Family, v_parameterization: bool) -> dict:
    import diffusers
    config = CONFIG_DIR / SINGLE_FILE_CONFIGS[(family.name, v_parameterization and family.name == "sd2")]
    pipeline_class = getattr(diffusers, family.pipeline)
    tokenizers = {"tokenizer": clip_tokenizer("<|endoftext|>" if family.name == "sd1" else "!")}
    if family.name == "sdxl":
        tokenizers = {"tokenizer": clip_tokenizer("<|endoftext|>"), "tokenizer_2": clip_tokenizer("!")}
    extra = {} if family.name == "sdxl" else {"safety_checker": None, "feature_extractor": None}
    pipe = pipeline_class.from_single_file(str(path), config=str(config), local_files_only=True,
                                           **tokenizers, **extra)
    encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if family.name == "sdxl" else [])
    return {"unet": pipe.unet, "vae": pipe.vae, "text_encoders": encoders, "tokenizers": list(tokenizers.values())}


def clip_tokenizer(pad_token: str):
    """CLIP's tokenizer from the local Hugging Face cache (kohya and diffusers users have it);
    a single-file checkpoint holds no vocabulary and nothing is downloaded."""
    from transformers import CLIPTokenizer
    for repo in CLIP_TOKENIZER_REPOS:
        try:
            tokenizer = CLIPTokenizer.from_pretrained(repo, local_files_only=True, pad_token=pad_token)
        except OSError:
            continue
        if tokenizer.vocab_size == CLIP_VOCAB_SIZE:     # transformers 5 gives an empty tokenizer for a missing repo
            return tokenizer
    raise ModelError("a single-file checkpoint has no tokenizer, and CLIP's (openai/clip-vit-large-patch14) is not "
                     "in the Hugging Face cache; use the model as a diffusers folder, or put the tokenizer in the "
                     "cache once (huggingface-cli download openai/clip-vit-large-patch14 vocab.json merges.txt "
                     "tokenizer_config.json special_tokens_map.json)")
