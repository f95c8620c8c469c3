"""Sample images during training from a prompt file in kohya's format (read by
workbench.runs.sample_prompts, which the Training page's gallery reads too). Images go to
RUN_DIR/samples under sd-scripts' names, one sample event each.
"""
from __future__ import annotations

import random
from pathlib import Path

from workbench.errors import UserError
from workbench.runs.sample_prompts import SamplePrompt, read_prompt_file, sample_file_name, when_tag  # noqa: F401

# the prompts are read and the files named by workbench.runs.sample_prompts, as the gallery reads them back

# sample_sampler -> (diffusers scheduler class, extra config); k_* are sd-scripts' aliases
SAMPLERS = {
    "ddim": ("DDIMScheduler", {}), "pndm": ("PNDMScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}), "k_lms": ("LMSDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}), "k_euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}), "k_euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpm_2": ("KDPM2DiscreteScheduler", {}), "k_dpm_2": ("KDPM2DiscreteScheduler", {}),
    "dpm_2_a": ("KDPM2AncestralDiscreteScheduler", {}), "k_dpm_2_a": ("KDPM2AncestralDiscreteScheduler", {}),
    # diffusers refuses dpmsolver's default final sigma of zero
    "dpmsolver": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"}),
    "dpmsolver++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "dpmsingle": ("DPMSolverSinglestepScheduler", {}),
}


def make_scheduler(name: str, training_scheduler):
    """The sampler as sd-scripts builds it: the class's own defaults on the training schedule's
    betas and prediction type (not the model folder's scheduler config), with clip_sample turned
    on where the class has it (sd-scripts does so for DDIM)."""
    import diffusers
    if name not in SAMPLERS:
        raise UserError(f"sample_sampler: unknown {name!r}; valid: {', '.join(SAMPLERS)}")
    class_name, extra = SAMPLERS[name]
    schedule = training_scheduler.config
    scheduler = getattr(diffusers, class_name)(       # LMS needs scipy: a project dependency
        num_train_timesteps=schedule.num_train_timesteps, beta_start=schedule.beta_start,
        beta_end=schedule.beta_end, beta_schedule=schedule.beta_schedule,
        prediction_type=schedule.prediction_type, **extra)
    if "clip_sample" in scheduler.config:
        scheduler.register_to_config(clip_sample=True)
    return scheduler


def prompt_scheduler(sample: SamplePrompt, default_name: str, default, training_scheduler):
    """A prompt's --ss sampler, built fresh as sd-scripts builds one per prompt; otherwise `default`,
    the pipeline's own sample_sampler scheduler."""
    if sample.sampler and sample.sampler != default_name:
        return make_scheduler(sample.sampler, training_scheduler)
    return default


def build_pipeline(models, noise_scheduler, sampler: str):
    """The family's diffusers pipeline around the models being trained (LoRA applied in place)."""
    import diffusers
    pipeline_class = getattr(diffusers, models.family.pipeline)
    scheduler = make_scheduler(sampler, noise_scheduler)
    if "steps_offset" in scheduler.config:
        # the SD pipelines set steps_offset 1 themselves, with a FutureWarning calling the config outdated
        scheduler.register_to_config(steps_offset=1)
    parts = {"unet": models.unet, "vae": models.vae, "text_encoder": models.text_encoders[0],
             "tokenizer": models.tokenizers[0], "scheduler": scheduler}
    if models.family.name == "sdxl":
        parts.update(text_encoder_2=models.text_encoders[1], tokenizer_2=models.tokenizers[1])
    else:
        parts.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe = pipeline_class(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def render(pipe, sample: SamplePrompt, fallback_seed: int, encode):
    """One image (PIL), its prompt conditioned as training conditions captions: `encode` (texts ->
    Conditioning) applies clip_skip and max_token_length, as sd-scripts' sampling does. A prompt
    without --d gets a seed from the run's step, so reruns agree."""
    import torch
    seed = sample.seed if sample.seed is not None else random.Random(fallback_seed).randrange(2**31)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        return pipe(**prompt_embeddings(sample, encode), width=sample.width, height=sample.height,
                    num_inference_steps=sample.steps, guidance_scale=sample.scale, generator=generator).images[0]


def prompt_embeddings(sample: SamplePrompt, encode) -> dict:
    """The pipeline's prompt and negative-prompt embeddings (SDXL: with the pooled ones). Without a
    negative prompt SD takes the empty prompt's embedding and SDXL zeros, as diffusers does."""
    import torch
    cond = encode([sample.prompt])
    if cond.pooled is None:
        return {"prompt_embeds": cond.hidden, "negative_prompt_embeds": encode([sample.negative]).hidden}
    negative = encode([sample.negative]) if sample.negative else None
    return {"prompt_embeds": cond.hidden, "pooled_prompt_embeds": cond.pooled,
            "negative_prompt_embeds": negative.hidden if negative else torch.zeros_like(cond.hidden),
            "negative_pooled_prompt_embeds": negative.pooled if negative else torch.zeros_like(cond.pooled)}


def sample_path(samples_dir: Path, output_name: str, at: str, index: int, sample: SamplePrompt,
                when: float | None = None) -> Path:
    """Where a sample goes: samples_dir / sd-scripts' name (workbench.runs.sample_prompts.sample_file_name)."""
    return samples_dir / sample_file_name(output_name, at, index, sample.seed, when)
