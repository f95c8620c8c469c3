"""The offline demo: tiny SD1- and SDXL-shaped models with RANDOM weights, a generated dataset, a
prompt file and two configs whose training finishes in well under a minute on 2 CPU cores.

    DIR/README.txt             says what this is (random weights: the LoRA it trains draws noise)
    DIR/models/tiny-sd1/       diffusers folder: StableDiffusionPipeline.from_pretrained loads it
    DIR/models/tiny-sdxl/      diffusers folder: StableDiffusionXLPipeline.from_pretrained loads it
    DIR/dataset/train/<repeats>_<name>/   PNG shapes of several sizes with .txt tag captions
    DIR/dataset/reg/1_shape/   a few regularisation images
    DIR/prompts.txt            sample prompts in kohya's format
    DIR/demo.toml, DIR/demo-sdxl.toml

Idempotent: every part is built in a temporary sibling and renamed into place, and a part that
exists is kept. The models are shaped like the real ones where it matters (a 4-block VAE so latents
are 1/8 of the image, CLIP text encoders, SDXL's text_time conditioning) but tiny.
torch, diffusers and transformers are imported inside the builders only.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from workbench.config.schema import TrainConfig, new_config, save_toml
from workbench.fileio import write_text_atomic
from workbench.quiet import quiet_libraries

TRIGGER = "wbdemo"
RANDOM_WEIGHTS_NOTE = ("LoRA Workbench demo: the base model has RANDOM weights; training runs for real "
                       "but the LoRA it makes draws noise")
SEED = 0                      # the demo is the same bytes on every machine
VOCAB_WORDS = (TRIGGER, "circle", "square", "triangle", "shape", "red", "green", "blue", "yellow",
               "purple", "orange", "gradient", "background", "a", "photo", "of", "on", "blurry")
IMAGE_SIZES = ((128, 128), (288, 96), (96, 288), (160, 160), (320, 80), (112, 176))   # (w, h) px: four buckets at 128
COLORS = {"red": (220, 40, 40), "green": (40, 180, 70), "blue": (40, 80, 220), "yellow": (235, 210, 40),
          "purple": (140, 60, 190), "orange": (240, 140, 30)}
SUBSETS = (("train", "2_wbdemo circle", "circle", 12), ("train", "1_wbdemo square", "square", 12),
           ("reg", "1_shape", "triangle", 6))


@dataclass
class Demo:
    root: Path
    built: list[str] = field(default_factory=list)     # parts made by this call (the rest existed)

    sd1_model = property(lambda self: self.root / "models" / "tiny-sd1")
    sdxl_model = property(lambda self: self.root / "models" / "tiny-sdxl")
    train_dir = property(lambda self: self.root / "dataset" / "train")
    reg_dir = property(lambda self: self.root / "dataset" / "reg")
    prompts = property(lambda self: self.root / "prompts.txt")
    config = property(lambda self: self.root / "demo.toml")
    config_sdxl = property(lambda self: self.root / "demo-sdxl.toml")


def build_demo(root: str | Path) -> Demo:
    """Build whatever part of the demo under `root` is missing; returns where everything is."""
    demo = Demo(Path(root).expanduser().absolute())
    demo.root.mkdir(parents=True, exist_ok=True)
    parts = ((demo.root / "README.txt", _write_readme), (demo.sd1_model, _build_sd1),
             (demo.sdxl_model, _build_sdxl), (demo.root / "dataset", _build_dataset),
             (demo.prompts, _write_prompts), (demo.config, lambda p: _write_config(demo, p, sdxl=False)),
             (demo.config_sdxl, lambda p: _write_config(demo, p, sdxl=True)))
    for target, builder in parts:
        if _build_once(target, builder):
            demo.built.append(str(target.relative_to(demo.root)))
    return demo


def _build_once(target: Path, builder) -> bool:
    """Build into a temporary sibling, then rename: a part is either whole or absent."""
    if target.exists():
        return False
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        builder(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return True


def _write_readme(path: Path) -> None:
    write_text_atomic(path, f"{RANDOM_WEIGHTS_NOTE}.\n\nBuilt offline by `workbench demo`. The models under "
                      "models/ are tiny diffusers folders shaped like SD 1.5 and SDXL; the dataset under "
                      "dataset/ is generated shapes with tag captions. Train with:\n\n"
                      "    workbench train demo.toml\n    workbench train demo-sdxl.toml\n")


# ---------------------------------------------------------------- tokenizer

def _byte_symbols() -> list[str]:
    """CLIP's byte-level alphabet: printable bytes stand for themselves, the others are shifted
    past 255 so every byte has a visible character (the GPT-2 / CLIP convention)."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    symbols, shifted = [], 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(256 + shifted))
            shifted += 1
    return symbols


def _word_merges(words) -> list[str]:
    """Left-to-right merges that make each demo word one token ("c i", "ci r", … "circl e</w>")."""
    merges: list[str] = []
    for word in words:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        joined = pieces[0]
        for piece in pieces[1:]:
            merge = f"{joined} {piece}"
            if merge not in merges:
                merges.append(merge)
            joined += piece
    return merges


def write_tokenizer(folder: Path) -> int:
    """vocab.json + merges.txt of a small byte-level BPE that CLIPTokenizer loads; returns the vocab
    size. As in CLIP: bytes, bytes + "</w>", merged symbols, then the two special tokens last."""
    symbols = _byte_symbols()
    merges = _word_merges(VOCAB_WORDS)
    vocab = symbols + [s + "</w>" for s in symbols]
    vocab += [m.replace(" ", "") for m in merges if m.replace(" ", "") not in vocab]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}))
    return len(vocab)


# ---------------------------------------------------------------- models

def _text_encoder_config(vocab_size: int, projection_dim: int = 32):
    from transformers import CLIPTextConfig
    # hidden 32, 2 layers (so clip_skip 2 has a layer to skip to); eos is the last id, as in CLIP
    return CLIPTextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                          projection_dim=projection_dim, bos_token_id=vocab_size - 2,
                          eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)


def _vae(scaling_factor: float):
    from diffusers import AutoencoderKL
    # four blocks → three downsamplings → latents are 1/8 of the image, as in SD
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         block_out_channels=(8, 16, 32, 32), norm_num_groups=8, sample_size=128,
                         scaling_factor=scaling_factor)


def _noise_scheduler():
    from diffusers import DDPMScheduler
    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, steps_offset=1, prediction_type="epsilon")


def _build_sd1(folder: Path) -> None:
    quiet_libraries()
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer
    torch.manual_seed(SEED)
    vocab_size = write_tokenizer(folder / "tokenizer")
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32)
    pipe = StableDiffusionPipeline(
        vae=_vae(0.18215), text_encoder=CLIPTextModel(_text_encoder_config(vocab_size)),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"), unet=unet, scheduler=_noise_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    _save_pipeline(pipe, folder)


def _build_sdxl(folder: Path) -> None:
    quiet_libraries()
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
    torch.manual_seed(SEED)
    vocab_size = write_tokenizer(folder / "tokenizer")
    write_tokenizer(folder / "tokenizer_2")
    time_embed_dim, pooled_dim = 8, 32
    # SDXL's layout in miniature: three levels (no attention in the first), two resnets per level,
    # linear projections, cross-attention on both encoders' hidden states concatenated (32 + 32)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64, 64), layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1, 2), attention_head_dim=(2, 4, 8), use_linear_projection=True,
        cross_attention_dim=64, addition_embed_type="text_time", addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=6 * time_embed_dim + pooled_dim, norm_num_groups=32)
    pipe = StableDiffusionXLPipeline(
        vae=_vae(0.13025), text_encoder=CLIPTextModel(_text_encoder_config(vocab_size)),
        text_encoder_2=CLIPTextModelWithProjection(_text_encoder_config(vocab_size, pooled_dim)),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2"), unet=unet,
        scheduler=_noise_scheduler())
    _save_pipeline(pipe, folder)


def _save_pipeline(pipe, folder: Path) -> None:
    pipe.save_pretrained(folder, safe_serialization=True)
    # save_pretrained rewrites the tokenizer folders; put back the vocab.json + merges.txt pair
    for name in ("tokenizer", "tokenizer_2"):
        if (folder / name).is_dir():
            for extra in ("tokenizer.json", "special_tokens_map.json"):
                (folder / name / extra).unlink(missing_ok=True)
            write_tokenizer(folder / name)
    (folder / "WORKBENCH_DEMO.txt").write_text(RANDOM_WEIGHTS_NOTE + ".\n")


# ---------------------------------------------------------------- dataset

def draw_image(size: tuple[int, int], shape: str, color: str, background: tuple[str, str], vertical: bool):
    """A shape of one colour on a two-colour gradient: easy for a person to tell apart."""
    from PIL import Image, ImageDraw
    w, h = size
    top, bottom = COLORS[background[0]], COLORS[background[1]]
    span = h if vertical else w
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for i in range(span):
        mix = tuple(int(a + (b - a) * i / max(1, span - 1)) for a, b in zip(top, bottom))
        draw.line([(0, i), (w, i)] if vertical else [(i, 0), (i, h)], fill=mix)
    r = min(w, h) // 3
    cx, cy = w // 2, h // 2
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=COLORS[color], outline=(255, 255, 255), width=2)
    elif shape == "square":
        draw.rectangle(box, fill=COLORS[color], outline=(255, 255, 255), width=2)
    else:
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=COLORS[color])
    return image


def _build_dataset(folder: Path) -> None:
    names = list(COLORS)
    for kind, subset, shape, count in SUBSETS:
        target = folder / kind / subset
        target.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            color, bg1, bg2 = names[i % 6], names[(i + 2) % 6], names[(i + 4) % 6]
            size = IMAGE_SIZES[i % len(IMAGE_SIZES)]
            # the second round of six flips the gradient's direction: no two images alike (preflight
            # would rightly call them duplicates)
            vertical = (i + i // 6) % 2 == 0
            draw_image(size, shape, color, (bg1, bg2), vertical).save(target / f"{shape}_{i:02d}.png")
            tags = ([TRIGGER] if kind == "train" else []) + [shape, color, f"{bg1} {bg2} gradient background"]
            (target / f"{shape}_{i:02d}.txt").write_text(", ".join(tags) + "\n")


def _write_prompts(path: Path) -> None:
    write_text_atomic(path, "# sample prompts, kohya format: --w width --h height --s steps --l guidance "
                      "--n negative prompt --d seed --ss sampler\n"
                      f"{TRIGGER}, circle, red, blue green gradient background --w 128 --h 128 --s 4 --l 5 --d 1\n"
                      f"{TRIGGER}, square, yellow --w 128 --h 128 --s 4 --l 5 --n blurry --d 2 --ss ddim\n")


# ---------------------------------------------------------------- configs

def demo_config(demo: Demo, sdxl: bool) -> TrainConfig:
    """Small and quick: 128 px buckets, a few epochs, a save and samples every epoch."""
    return new_config(
        pretrained_model_name_or_path=str(demo.sdxl_model if sdxl else demo.sd1_model), sdxl=sdxl,
        train_data_dir=str(demo.train_dir), reg_data_dir=str(demo.reg_dir), output_dir=str(demo.root / "output"),
        output_name="demo-sdxl-lora" if sdxl else "demo-lora", training_comment=RANDOM_WEIGHTS_NOTE,
        resolution="128,128", enable_bucket=True, min_bucket_reso=64, max_bucket_reso=256, bucket_reso_steps=64,
        train_batch_size=4, max_train_epochs=3, save_every_n_epochs=1, mixed_precision="no",
        num_cpu_threads_per_process=1,     # tiny matmuls: a second thread only adds contention
        save_precision="fp16", seed=42, optimizer_type="AdamW", learning_rate=1e-3, lr_scheduler="cosine",
        lr_warmup_steps=0.1, network_dim=4, network_alpha=2.0, sample_prompts=str(demo.prompts),
        sample_every_n_epochs=1, sample_sampler="euler_a", cache_latents=True)


def _write_config(demo: Demo, path: Path, sdxl: bool) -> None:
    save_toml(demo_config(demo, sdxl), path)
