"""The trainer's parts one rule at a time, on real small tensors, files and the demo's models:
batch order, captions, prompt files, optimizers, LR schedules, hashes, output names, prompt
encoding (clip_skip), the shipped single-file configs, precision checks."""
from __future__ import annotations

import hashlib
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import make_image
from trainer import data, optim, sampling, saving
from workbench.config.schema import TrainConfig, new_config, save_toml
from workbench.errors import UserError
from workbench.planning.plan import make_plan
from workbench.planning.schedules import curve, warmup_steps_for


@pytest.fixture
def small_plan(tmp_path):
    """Two subsets in three buckets: (w, h) sizes chosen so 128-px buckets differ."""
    for i, size in enumerate([(128, 128), (128, 128), (288, 96), (96, 288), (128, 128)]):
        make_image(tmp_path / "data" / "3_cat" / f"a{i}.png", size)
    for i, size in enumerate([(128, 128), (288, 96)]):
        make_image(tmp_path / "data" / "2_dog" / f"b{i}.png", size)
    cfg = new_config(train_data_dir=str(tmp_path / "data"), resolution="128,128", min_bucket_reso=64,
                      max_bucket_reso=256, train_batch_size=2, max_train_epochs=2)
    return cfg, make_plan(cfg)


# ---------------------------------------------------------------- batches

def test_an_epoch_is_the_plans_batches_one_bucket_each_every_repeat_once(small_plan):
    _, plan = small_plan
    batches = data.epoch_batches(plan, seed=7, epoch=0)
    assert len(batches) == plan.batches_per_epoch
    assert all(len({im.bucket for im in b.images}) == 1 for b in batches)
    seen = Counter(str(im.info.path) for b in batches for im in b.images)
    assert seen == {str(im.info.path): im.repeats for im in plan.used_images}


@pytest.mark.parametrize("batch_size", [1, 2, 4, 16])
def test_the_plans_batch_shapes_are_the_shapes_an_epoch_forms(small_plan, batch_size):
    # torch.compile's recompile budget comes from plan.batch_shapes(): it must list every shape
    plan = make_plan(small_plan[0].replace(train_batch_size=batch_size))
    formed = {(*b.bucket, len(b.images)) for epoch in range(3) for b in data.epoch_batches(plan, 5, epoch)}
    assert plan.batch_shapes() == formed


def test_batch_order_is_a_function_of_seed_and_epoch(small_plan):
    _, plan = small_plan
    def order(seed, epoch):
        return [[str(im.info.path) for im in b.images] for b in data.epoch_batches(plan, seed, epoch)]
    assert order(7, 1) == order(7, 1)
    assert order(7, 0) != order(7, 1) and order(7, 0) != order(8, 0)


def test_several_processes_get_equal_shares_covering_every_batch():
    batches = [data.Batch([], i) for i in range(7)]
    shares = [data.process_share(batches, i, 2) for i in range(2)]
    assert [len(s) for s in shares] == [4, 4]
    assert {b.index for s in shares for b in s} == set(range(7))


def test_the_last_short_accumulation_group_still_steps():
    batches = [data.Batch([], i) for i in range(7)]
    assert [len(g) for g in data.accumulation_groups(batches, 3)] == [3, 3, 1]


def test_shuffled_captions_keep_the_first_tokens(small_plan):
    _, plan = small_plan
    image = plan.used_images[0]
    image.info.caption = "trigger, a, b, c, d, e"
    rng = random.Random(0)
    shuffle = TrainConfig(shuffle_caption=True, keep_tokens=1)
    shuffled = {data.caption_of(image, shuffle, 0, rng) for _ in range(20)}
    assert all(c.startswith("trigger, ") for c in shuffled) and len(shuffled) > 1
    assert data.caption_of(image, TrainConfig(keep_tokens=1), 0, rng) == "trigger, a, b, c, d, e"


def test_prefix_suffix_and_the_keep_tokens_separator(small_plan):
    _, plan = small_plan
    image = plan.used_images[0]
    image.info.caption = "sks, a, b"
    rng = random.Random(0)
    wrapped = TrainConfig(caption_prefix="photo of", caption_suffix="high quality")
    assert data.caption_of(image, wrapped, 0, rng) == "photo of sks, a, b high quality"       # sd-scripts: + " "
    image.info.caption = "sks, dog ||| a, b, c, d, e ||| best, detailed"
    split = TrainConfig(shuffle_caption=True, keep_tokens=3, keep_tokens_separator="|||")
    shuffled = [data.caption_of(image, split, 0, rng).split(", ") for _ in range(30)]
    assert all(c[:2] == ["sks", "dog"] and c[-2:] == ["best", "detailed"] and sorted(c[2:-2]) == list("abcde")
               for c in shuffled)
    assert len({tuple(c) for c in shuffled}) > 1
    image.info.caption = "sks, a, b, c"           # no separator in this caption: keep_tokens is used
    assert all(data.caption_of(image, split, 0, rng).startswith("sks, a, b, ") for _ in range(10))


def test_token_warmup_grows_the_free_tags_to_all_of_them(small_plan):
    _, plan = small_plan
    image = plan.used_images[0]
    image.info.caption = "sks, a, b, c, d, e, f, g, h, i, j"
    rng = random.Random(0)
    # 10 free tags, min 2, warmup over the first 40% of 100 steps: ⌊step × 8 / 40⌋ + 2 tags
    warm = TrainConfig(keep_tokens=1, token_warmup_min=2, token_warmup_step=0.4)
    lengths = [len(data.caption_of(image, warm, 0, rng, step, 100).split(", ")) - 1 for step in (0, 5, 20, 39, 40, 99)]
    assert lengths == [2, 3, 6, 9, 10, 10]
    steps = TrainConfig(token_warmup_min=1, token_warmup_step=10)             # whole steps, nothing kept
    assert data.caption_of(image, steps, 0, rng, 0, 100) == "sks"
    assert data.caption_of(image, steps, 0, rng, 5, 100) == "sks, a, b, c, d, e"   # ⌊5 × 10 / 10⌋ + 1


def test_caption_dropout_rules_are_sd_scripts(small_plan):
    _, plan = small_plan
    image = plan.used_images[0]
    image.info.caption = "trigger, a, b, c, d, e"
    rng = random.Random(0)
    # every 2nd epoch counted from 1 (sd-scripts' current_epoch): 0-based epochs 1, 3 drop every caption
    every = TrainConfig(caption_dropout_every_n_epochs=2)
    assert [data.caption_of(image, every, epoch, rng) for epoch in range(4)] == ["trigger, a, b, c, d, e", "", ] * 2
    dropped = [data.caption_of(image, TrainConfig(caption_dropout_rate=0.3), 0, rng) for _ in range(2000)]
    assert 0.26 < dropped.count("") / 2000 < 0.34 and set(dropped) == {"", "trigger, a, b, c, d, e"}
    tags = TrainConfig(caption_tag_dropout_rate=0.5, keep_tokens=1)
    kept = [data.caption_of(image, tags, 0, rng).split(", ") for _ in range(2000)]
    assert all(k[0] == "trigger" and k[1:] == [t for t in "abcde" if t in k[1:]] for k in kept)   # order kept
    assert 0.45 < sum(len(k) - 1 for k in kept) / (5 * 2000) < 0.55                   # half the other tags stay


def test_pixels_cover_and_centre_crop_to_the_bucket(small_plan):
    _, plan = small_plan
    wide = next(im for im in plan.used_images if im.info.size == (288, 96))
    pixels = data.load_pixels(wide)
    assert tuple(pixels.shape) == (3, wide.bucket[1], wide.bucket[0])
    assert -1.0 <= float(pixels.min()) and float(pixels.max()) <= 1.0


def test_latent_cache_on_disk_is_reused_only_while_image_and_bucket_are_unchanged(small_plan):
    _, plan = small_plan
    image = plan.used_images[0]
    latent = torch.randn(4, image.bucket[1] // 8, image.bucket[0] // 8)
    data.write_npz(image, latent)
    cached, mirrored = data.read_npz(image)
    assert torch.equal(cached, latent) and mirrored is None
    assert data.read_npz(image, mirrored=True) is None          # flip_aug needs the mirrored latents too
    data.write_npz(image, latent, -latent)
    cached, mirrored = data.read_npz(image, mirrored=True)
    assert torch.equal(cached, latent) and torch.equal(mirrored, -latent)
    make_image(image.info.path, image.info.size, color=(1, 2, 3))      # the image changed
    assert data.read_npz(image) is None


def test_flip_aug_with_cached_latents_mirrors_about_half_the_uses(small_plan):
    """sd-scripts caches the mirrored latents too and picks one per image and use with p = 0.5;
    a deterministic VAE stand-in (average-pool to 1/8) shows which version each use got."""
    cfg, plan = small_plan

    class PoolVAE(torch.nn.Module):          # encode(x).latent_dist with mean = 8x8 average, std 0
        dtype = torch.float32

        def encode(self, pixels):
            pooled = torch.nn.functional.avg_pool2d(pixels, 8)
            dist = type("Dist", (), {"mean": pooled.repeat(1, 2, 1, 1)[:, :4], "std": torch.zeros(())})
            return type("Out", (), {"latent_dist": dist})()

    cfg = cfg.replace(flip_aug=True, cache_latents=True)
    latents = data.Latents(PoolVAE(), 1.0, "cpu", 0, cfg)
    latents.fill_cache(plan, log=lambda _: None)
    wide = next(im for im in plan.used_images if im.info.size == (288, 96))
    plain, mirrored = latents.cache[wide.info.path]
    assert torch.equal(mirrored, plain.flip(-1))
    flips = []
    for i in range(200):
        out, chosen = latents.for_batch(data.Batch([wide], i), random.Random(i))
        assert torch.equal(out[0], mirrored if chosen[0] else plain)
        flips += chosen
    assert 70 < sum(flips) < 130


def test_a_latent_cache_that_cannot_be_written_is_a_clear_error(small_plan):
    _, plan = small_plan
    image = plan.used_images[0]
    data.npz_path(image).mkdir()            # something in the way that is not a file
    with pytest.raises(UserError, match=r"\.npz: cannot write the latent cache .*turn off cache_latents_to_disk"):
        data.write_npz(image, torch.zeros(4, 16, 16))


# ---------------------------------------------------------------- sample prompts

def test_prompt_file_lines_in_kohyas_format(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("# a comment\n\na cat, sitting --w 300 --h 200 --s 12 --l 6.5 --n blurry, ugly --d 42\nplain dog\n")
    first, second = sampling.read_prompt_file(path)
    assert (first.prompt, first.width, first.height, first.steps, first.scale, first.negative, first.seed) == \
        ("a cat, sitting", 296, 200, 12, 6.5, "blurry, ugly", 42)
    assert (second.prompt, second.width, second.steps, second.seed) == ("plain dog", 512, 30, None)
    path.write_text("cat --s many\n")
    with pytest.raises(UserError, match=r"prompts.txt:1: --s 'many' is not a valid int"):
        sampling.read_prompt_file(path)


def test_ss_picks_a_prompts_own_sampler_and_an_unknown_one_is_refused_by_line(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("a cat --SS DDIM --d 3\na dog\n")
    cat, dog = sampling.read_prompt_file(path)
    assert (cat.sampler, dog.sampler) == ("ddim", None)
    path.write_text("a dog\na cat --ss turbo\n")
    with pytest.raises(UserError, match=r"prompts.txt:2: --ss 'turbo' is not a sampler; valid: ddim"):
        sampling.read_prompt_file(path)


def test_a_prompt_gets_its_own_sampler_only_when_it_names_another():
    from trainer.models import noise_scheduler
    default = object()
    ddim = sampling.SamplePrompt("a", sampler="ddim")
    own = sampling.prompt_scheduler(ddim, "euler_a", default, noise_scheduler(False))
    assert type(own).__name__ == "DDIMScheduler"
    for sampler in (None, "euler_a"):
        same = sampling.SamplePrompt("a", sampler=sampler)
        assert sampling.prompt_scheduler(same, "euler_a", default, None) is default


def test_sample_names_are_sd_scripts(tmp_path):
    import time
    when = time.mktime((2026, 11, 26, 9, 5, 7, 0, 0, -1))       # local time, as sd-scripts stamps it
    seeded, unseeded = sampling.SamplePrompt("a", seed=42), sampling.SamplePrompt("b")
    at_epoch, at_step = sampling.when_tag(3, 150), sampling.when_tag(None, 150)
    assert sampling.sample_path(tmp_path, "dog", at_epoch, 1, seeded, when).name == \
        "dog_e000003_01_20261126090507_42.png"
    assert sampling.sample_path(tmp_path, "dog", at_step, 0, unseeded, when).name == "dog_000150_00_20261126090507.png"


@pytest.mark.parametrize("name", list(sampling.SAMPLERS))
def test_every_sampler_denoises_on_the_training_schedule(name):
    """Every offered sampler runs on the training schedule (diffusers 0.42 refuses dpmsolver with a
    zero final sigma; LMS needs scipy, a dependency)."""
    import inspect

    from trainer.models import noise_scheduler
    scheduler = sampling.make_scheduler(name, noise_scheduler(False))
    scheduler.set_timesteps(6)
    start = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
    noisy = start
    ancestral = "generator" in inspect.signature(scheduler.step).parameters
    extra = {"generator": torch.Generator().manual_seed(1)} if ancestral else {}
    for t in scheduler.timesteps:
        scheduler.scale_model_input(noisy, t)       # the model's input; the "model" here is random numbers
        model_output = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(int(t)))
        noisy = scheduler.step(model_output, t, noisy, **extra).prev_sample
    assert torch.isfinite(noisy).all() and not torch.equal(noisy, start)


# ---------------------------------------------------------------- optimizers and schedules

def test_optimizer_args_are_python_literals():
    assert optim.parse_optimizer_args(["weight_decay=0.01", "betas=(0.9,0.99)", "decouple=True"]) == \
        {"weight_decay": 0.01, "betas": (0.9, 0.99), "decouple": True}
    with pytest.raises(UserError, match='optimizer_args: betas="oops" is not a Python value'):
        optim.parse_optimizer_args(["betas=oops"])


@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
def test_every_optimizer_builds_and_steps(name):
    param = torch.nn.Parameter(torch.ones(64, 80))    # above bitsandbytes' 4,096-element 8-bit threshold
    lr = 1.0 if name.startswith("DAdapt") or name == "Prodigy" else 1e-2   # D-adaptation and Prodigy expect lr ~1
    cfg = TrainConfig(optimizer_type=name, learning_rate=lr, lr_scheduler="constant")
    optimizer, description = optim.build_optimizer(cfg, [{"params": [param], "lr": lr, "name": "unet"}])
    scheduler = optim.build_scheduler(cfg, optimizer, 10)
    param.grad = torch.randn_like(param)
    optimizer.step()
    scheduler.step()
    assert not torch.equal(param.detach(), torch.ones(64, 80))
    assert description.partition("(")[0].endswith(type(optimizer).__name__)     # class path, then any args
    d = optim.group_ds(optimizer)["unet"]          # TensorBoard's lr/d*lr/… for the adaptive ones
    assert (d is not None and d > 0) if name.startswith("DAdapt") or name == "Prodigy" else d is None


def test_lambda_schedule_is_the_curve_the_app_draws():
    cfg = TrainConfig(lr_scheduler="cosine_with_restarts", lr_warmup_steps=0.1, lr_scheduler_num_cycles=2,
                      optimizer_type="AdamW")
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    optimizer, _ = optim.build_optimizer(cfg, [{"params": [params[0]], "lr": 1e-3, "name": "unet"},
                                               {"params": [params[1]], "lr": 5e-5, "name": "text_encoder"}])
    scheduler = optim.build_scheduler(cfg, optimizer, 50)
    seen = {"unet": [], "text_encoder": []}
    for _ in range(50):
        for group in optimizer.param_groups:
            seen[group["name"]].append(group["lr"])
        optimizer.step()
        scheduler.step()
    warmup = warmup_steps_for(0.1, 50)
    assert seen["unet"] == pytest.approx(curve("cosine_with_restarts", 1e-3, warmup, 50, 2, 1.0))
    assert seen["text_encoder"] == pytest.approx(curve("cosine_with_restarts", 5e-5, warmup, 50, 2, 1.0))


def test_adafactor_relative_step_runs_its_own_schedule():
    cfg = TrainConfig(optimizer_type="Adafactor", learning_rate=1e-3, lr_scheduler="cosine")
    assert optim.scheduler_name(cfg) == "adafactor:0.001"
    optimizer, _ = optim.build_optimizer(cfg, [{"params": [torch.nn.Parameter(torch.ones(3))], "lr": 1e-3}])
    assert type(optim.build_scheduler(cfg, optimizer, 10)).__name__ == "AdafactorSchedule"
    with pytest.raises(UserError, match="lr_scheduler: adafactor only works with optimizer_type Adafactor"):
        optim.build_scheduler(cfg.replace(optimizer_type="AdamW", lr_scheduler="adafactor"), optimizer, 10)


# ---------------------------------------------------------------- files

def test_lora_bytes_carry_sd_scripts_hashes_of_the_tensor_bytes():
    import json

    from safetensors.torch import load
    tensors = {"lora_unet_x.lora_down.weight": torch.randn(4, 8), "lora_unet_x.alpha": torch.tensor(4.0)}
    blob = saving.lora_bytes(tensors, {"ss_a": "1", "modelspec.title": "t"})
    n = int.from_bytes(blob[:8], "little")
    meta = json.loads(blob[8:8 + n])["__metadata__"]
    assert meta["sshs_model_hash"] == hashlib.sha256(blob[8 + n:]).hexdigest()
    assert meta["modelspec.title"] == "t" and meta["ss_a"] == "1" and len(meta["sshs_legacy_hash"]) == 8
    assert set(load(blob)) == set(tensors)


def test_fp16_on_the_cpu_is_refused_before_loading_anything(tmp_path):
    from trainer.recipe import read_config
    make_image(tmp_path / "data" / "1_a" / "a.png", (64, 64))
    cfg = new_config(pretrained_model_name_or_path="m", train_data_dir=str(tmp_path / "data"),
                      output_dir=str(tmp_path / "out"), mixed_precision="fp16", resolution="64,64",
                      min_bucket_reso=64)
    save_toml(cfg, tmp_path / "config.toml")
    if torch.cuda.is_available():
        assert read_config(tmp_path).mixed_precision == "fp16"
    else:
        with pytest.raises(UserError, match="mixed_precision: fp16 needs a CUDA GPU; on the CPU choose bf16 or no"):
            read_config(tmp_path)


# ---------------------------------------------------------------- models

@pytest.fixture(scope="module")
def sd1(tmp_path_factory):
    from trainer.models import load_models
    from workbench.models.demo import build_demo
    demo = build_demo(tmp_path_factory.getbasetemp() / "demo")
    return load_models(TrainConfig(pretrained_model_name_or_path=str(demo.sd1_model)))


@pytest.mark.slow
def test_clip_skip_takes_an_earlier_layer_through_the_final_norm(sd1):
    encoder = sd1.text_encoders[0]
    with torch.no_grad():
        last = sd1.encode(["wbdemo, red circle"], clip_skip=1, device="cpu").hidden
        skipped = sd1.encode(["wbdemo, red circle"], clip_skip=2, device="cpu").hidden
        ids = sd1.token_ids(0, ["wbdemo, red circle"], "cpu")
        hidden = encoder(ids, output_hidden_states=True).hidden_states
    assert torch.allclose(last, encoder(ids).last_hidden_state)
    assert torch.allclose(skipped, encoder.final_layer_norm(hidden[-2]))
    assert not torch.allclose(last, skipped)
    assert tuple(skipped.shape) == (1, 77, 32)


LONG_CAPTION = ", ".join(f"wbdemo, red circle {i}, blue square" for i in range(40))     # ≈ 400 tokens


@pytest.mark.slow
def test_caption_windows_join_back_into_the_caption(sd1):
    from trainer import token_windows
    tokenizer = sd1.tokenizers[0]
    ids = tokenizer([LONG_CAPTION, "wbdemo"], padding="max_length", max_length=227, truncation=True,
                    return_tensors="pt").input_ids
    windows = token_windows.windows(ids, tokenizer)
    assert tuple(windows.shape) == (6, 77) and bool((windows[:, 0] == tokenizer.bos_token_id).all())
    # an "encoder" that returns each id as its output: joining undoes the windowing exactly
    assert torch.equal(token_windows.joined(windows[..., None].float(), 3)[..., 0], ids.float())


@pytest.mark.slow
def test_windows_of_a_tokenizer_that_pads_with_another_token(sd1, tmp_path):
    from transformers import CLIPTokenizer

    from trainer import token_windows
    sd1.tokenizers[0].save_pretrained(tmp_path)
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path, pad_token="!")          # as SD2's and SDXL's second
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    ids = tokenizer([LONG_CAPTION, "wbdemo"], padding="max_length", max_length=227, truncation=True,
                    return_tensors="pt").input_ids
    long, short = token_windows.windows(ids, tokenizer).reshape(2, 3, 77)
    assert [int(w[-1]) for w in long] == [eos] * 3            # every window ends inside the text: EOS put there
    assert int(short[0, -1]) == pad and [int(w[1]) for w in short[1:]] == [eos, eos]   # empty windows: BOS EOS pad…


@pytest.mark.slow
def test_max_token_length_reads_more_of_the_caption_and_keeps_the_first_window(sd1):
    with torch.no_grad():
        for clip_skip in (1, 2):
            short = sd1.encode([LONG_CAPTION], clip_skip, "cpu").hidden
            long = sd1.encode([LONG_CAPTION], clip_skip, "cpu", max_tokens=225).hidden
            assert tuple(short.shape) == (1, 77, 32) and tuple(long.shape) == (1, 227, 32)
            # CLIP attends only backwards: BOS and the first 75 tokens read the same either way
            assert torch.allclose(long[:, :76], short[:, :76], atol=1e-5)
            assert not torch.allclose(long[:, 76:77], short[:, 76:77])      # token 76 is text now, not EOS


def test_a_pickle_checkpoint_is_read_without_code_and_its_family_checked(tmp_path):
    from trainer.models import checked_model_info
    from workbench.models.modelinfo import ModelError
    path = tmp_path / "xl.ckpt"
    torch.save({"state_dict": {"conditioner.embedders.1.model.token_embedding.weight": torch.zeros(2, 2),
                               "model.diffusion_model.out.2.weight": torch.zeros(2)}}, path)
    cfg = TrainConfig(pretrained_model_name_or_path=str(path))
    with pytest.raises(ModelError, match="xl.ckpt is an SDXL model but the config says SD 1.x; set sdxl = true"):
        checked_model_info(cfg)
    assert checked_model_info(cfg.replace(sdxl=True)).family == "sdxl"
    path.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="xl.ckpt: not a loadable checkpoint"):
        checked_model_info(cfg)


def test_a_single_file_without_a_cached_clip_tokenizer_is_refused_clearly(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from trainer import models
    path = tmp_path / "sd15.safetensors"
    save_file({"model.diffusion_model.out.2.weight": torch.zeros(2),
               "cond_stage_model.transformer.text_model.final_layer_norm.weight": torch.zeros(2)}, str(path))
    monkeypatch.setattr(models, "CLIP_TOKENIZER_REPOS", ("workbench-test/no-such-tokenizer",))
    with pytest.raises(UserError, match="a single-file checkpoint has no tokenizer, and CLIP's .* is not in the "
                                        "Hugging Face cache"):
        models.load_models(TrainConfig(pretrained_model_name_or_path=str(path)))


def test_shipped_single_file_configs_are_the_real_architectures():
    """Parameter counts of SD1.5, SD2.1 and SDXL base (built on the meta device: no memory)."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from trainer.models import CONFIG_DIR, SINGLE_FILE_CONFIGS
    def count(model):
        return sum(p.numel() for p in model.parameters())
    expected = {"sd15": (859_520_964, 123_060_480), "sd21-512": (865_910_724, 340_387_840),
                "sd21-768-v": (865_910_724, 340_387_840), "sdxl-base": (2_567_463_684, 123_060_480)}
    assert set(SINGLE_FILE_CONFIGS.values()) == set(expected)
    with init_empty_weights():
        for name, (unet_params, te_params) in expected.items():
            folder = CONFIG_DIR / name
            unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))
            assert count(unet) == unet_params
            assert count(AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))) == 83_653_863
            assert count(CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder"))) == te_params
        te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(CONFIG_DIR / "sdxl-base" / "text_encoder_2"))
        assert count(te2) == 694_659_840
    scheduler = CONFIG_DIR / "sd21-768-v" / "scheduler" / "scheduler_config.json"
    assert Path(scheduler).read_text().count("v_prediction") == 1


# ---------------------------------------------------------------- noise and loss weights

def test_snr_loss_weights_are_sd_scripts_formulas():
    from trainer.noise import weighted
    snr, loss = torch.tensor([0.5, 4.0, 2000.0]), torch.ones(3)
    capped = torch.tensor([0.5, 4.0, 1000.0])                     # sd-scripts caps SNR at 1000 where it divides
    cases = [
        (TrainConfig(min_snr_gamma=5.0), torch.tensor([1.0, 1.0, 5 / 2000])),
        (TrainConfig(min_snr_gamma=5.0, v_parameterization=True), torch.tensor([0.5 / 1.5, 4 / 5, 5 / 2001])),
        (TrainConfig(debiased_estimation_loss=True), 1 / capped.sqrt()),
        (TrainConfig(debiased_estimation_loss=True, v_parameterization=True), 1 / (capped + 1)),
        (TrainConfig(scale_v_pred_loss_like_noise_pred=True), capped / (capped + 1)),
        (TrainConfig(v_pred_like_loss=0.1), 1 + 0.1 * (capped + 1) / capped),
        (TrainConfig(), torch.ones(3)),
    ]
    for cfg, expected in cases:
        assert torch.allclose(weighted(loss, snr, cfg), expected), cfg


def test_noise_options_timesteps_and_input_perturbation():
    from trainer import models, noise
    torch.manual_seed(0)
    random.seed(0)
    latents = torch.randn(4, 4, 32, 32)
    pyramid = noise.training_noise(latents, TrainConfig(multires_noise_iterations=6, multires_noise_discount=0.8))
    assert pyramid.shape == latents.shape and abs(float(pyramid.std()) - 1) < 1e-4
    low_freq = torch.nn.functional.avg_pool2d(pyramid, 8).std()     # coarse structure the plain noise lacks
    assert float(low_freq) > 2 * float(torch.nn.functional.avg_pool2d(torch.randn_like(latents), 8).std())
    window = TrainConfig(min_timestep=200, max_timestep=300)
    steps = torch.cat([noise.timesteps_for(latents, window) for _ in range(50)])
    assert int(steps.min()) >= 200 and int(steps.max()) < 300
    scheduler, eps, t = models.noise_scheduler(False), torch.randn_like(latents), torch.full((4,), 500)
    torch.manual_seed(1)
    perturbed = noise.noisy_latents(scheduler, latents, eps, t, TrainConfig(ip_noise_gamma=0.1))
    torch.manual_seed(1)
    assert torch.allclose(perturbed, scheduler.add_noise(latents, eps + 0.1 * torch.randn_like(latents), t))
    plain = noise.noisy_latents(scheduler, latents, eps, t, TrainConfig())
    assert torch.equal(plain, scheduler.add_noise(latents, eps, t))


@pytest.mark.slow
def test_samples_are_conditioned_like_training_clip_skip_and_long_prompts(sd1):
    from trainer.models import noise_scheduler
    pipe = sampling.build_pipeline(sd1, noise_scheduler(False), "euler")
    base = ", ".join(f"wbdemo, red circle {i}" for i in range(20))   # ≈ 130 tokens with the demo's tokenizer
    long, tail = base + ", blue square", base + ", green star"        # the same first 75 tokens, another tail

    def image(prompt: str, clip_skip: int = 1, max_tokens: int = 75):
        sample = sampling.SamplePrompt(prompt, width=64, height=64, steps=2, seed=3)
        encode = lambda texts: sd1.encode(texts, clip_skip, "cpu", max_tokens)     # noqa: E731
        return np.asarray(sampling.render(pipe, sample, 0, encode), dtype=np.int16)

    assert np.array_equal(image(long), image(tail))                          # 75 tokens: the tail is cut
    assert not np.array_equal(image(long, max_tokens=225), image(tail, max_tokens=225))
    assert not np.array_equal(image("wbdemo, red circle"), image("wbdemo, red circle", clip_skip=2))


def test_random_crop_and_color_aug_change_an_image_at_each_use(tmp_path):
    from PIL import Image
    noise = np.random.default_rng(0).integers(0, 255, (100, 200, 3), dtype=np.uint8)
    (tmp_path / "1_x").mkdir()
    Image.fromarray(noise).save(tmp_path / "1_x" / "wide.png")          # 200 × 100: overhangs its bucket
    cfg = new_config(train_data_dir=str(tmp_path), resolution="128,128", min_bucket_reso=64, max_bucket_reso=256,
                     bucket_reso_steps=64, max_train_epochs=1)
    wide = make_plan(cfg).used_images[0]
    assert wide.resized != wide.bucket
    centre = data.load_pixels(wide)
    crops = {tuple(data.load_pixels(wide, rng=random.Random(i), random_crop=True)[0, 0, :4].tolist())
             for i in range(12)}
    assert len(crops) > 1 and data.load_pixels(wide, rng=random.Random(0), random_crop=True).shape == centre.shape
    changed = sum(not torch.equal(data.load_pixels(wide, rng=random.Random(i), color_aug=True), centre)
                  for i in range(300))
    assert 0.25 < changed / 300 < 0.42                       # one use in three, as sd-scripts' AugHelper


def test_augmentations_are_refused_with_cached_latents():
    from workbench.config.validate import validate
    found = {f.field: f for f in validate(TrainConfig(max_train_epochs=1, color_aug=True, random_crop=True))}
    assert found["color_aug"].level == "error" and "cache_latents" in found["color_aug"].message
    assert found["random_crop"].level == "error"
    quiet = validate(TrainConfig(max_train_epochs=1, color_aug=True, random_crop=True, cache_latents=False))
    assert not [f for f in quiet if f.field in ("color_aug", "random_crop")]


def test_loader_threads_read_the_same_pixels_and_end_with_the_epoch_unless_persistent(small_plan):
    cfg, plan = small_plan
    batch = data.epoch_batches(plan, 3, 0)[0]

    class Identity(torch.nn.Module):          # stands in for the VAE: the latents are the pixels themselves
        dtype = torch.float32

        def encode(self, pixels):
            from types import SimpleNamespace
            return SimpleNamespace(latent_dist=SimpleNamespace(mean=pixels, std=torch.zeros_like(pixels)))
    opts = cfg.replace(cache_latents=False, random_crop=True, color_aug=True, flip_aug=True)
    inline = data.Latents(Identity(), 1.0, "cpu", 0, opts.replace(max_data_loader_n_workers=0))
    threaded = data.Latents(Identity(), 1.0, "cpu", 0, opts.replace(max_data_loader_n_workers=2))
    for seed in range(4):
        a, flips_a = inline.for_batch(batch, random.Random(seed))
        b, flips_b = threaded.for_batch(batch, random.Random(seed))
        assert torch.equal(a, b) and flips_a == flips_b
    assert threaded.pool is not None and threaded.pool._max_workers == 2 and inline.pool is None
    threaded.epoch_done()
    assert threaded.pool is None                                   # not persistent: started again next epoch
    kept = data.Latents(Identity(), 1.0, "cpu", 0, opts.replace(persistent_data_loader_workers=True))
    kept.for_batch(batch, random.Random(0))
    kept.epoch_done()
    assert kept.pool is not None
    kept.close()
