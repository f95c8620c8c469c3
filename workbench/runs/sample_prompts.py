"""The sample prompt file in kohya's format, and the names sample images get, without torch: the
trainer renders from these prompts, the Training page's gallery reads them back (its column
headers) and parses the file names into when (epoch or step) × prompt index.

A prompt file has one prompt per line, options after it: --w width --h height --s steps --l guidance
scale --n negative prompt --d seed --ss sampler (in either letter case, as sd-scripts reads them).
Lines starting with # are comments.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.config.schema import SAMPLERS as SAMPLER_NAMES
from workbench.errors import UserError

DEFAULTS = {"width": 512, "height": 512, "steps": 30, "scale": 7.5}     # kohya's
MAX_STEPS = 1000        # sd-scripts clamps --s to 1 … 1000 (the training schedule's length)


@dataclass
class SamplePrompt:
    prompt: str
    negative: str = ""
    width: int = DEFAULTS["width"]
    height: int = DEFAULTS["height"]
    steps: int = DEFAULTS["steps"]
    scale: float = DEFAULTS["scale"]
    seed: int | None = None
    sampler: str | None = None          # --ss: this prompt's sampler instead of sample_sampler


OPTIONS = {"w": ("width", int), "h": ("height", int), "s": ("steps", int), "l": ("scale", float),
           "n": ("negative", str), "d": ("seed", int), "ss": ("sampler", str)}


def parse_prompt_line(line: str, where: str = "") -> SamplePrompt | None:
    """One line of a prompt file; None for blank lines and comments."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    prompt, *options = line.split(" --")
    sample = SamplePrompt(prompt.strip())
    for option in options:
        key, _, value = option.strip().partition(" ")
        key = key.lower()
        if key not in OPTIONS:
            continue      # kohya ignores options it does not know; so do we
        name, kind = OPTIONS[key]
        try:
            setattr(sample, name, kind(value.strip()))
        except ValueError:
            raise UserError(f"{where}: --{key} {value.strip()!r} is not a valid {kind.__name__}") from None
    # the UNet needs sides divisible by 8 (latents are 1/8 of the image)
    sample.width, sample.height = (max(64, v - v % 8) for v in (sample.width, sample.height))
    sample.steps = max(1, min(MAX_STEPS, sample.steps))
    if sample.sampler is not None and sample.sampler.lower() not in SAMPLER_NAMES:
        raise UserError(f"{where}: --ss {sample.sampler!r} is not a sampler; valid: {', '.join(SAMPLER_NAMES)}")
    sample.sampler = sample.sampler and sample.sampler.lower()
    return sample


def read_prompt_file(path: str | Path) -> list[SamplePrompt]:
    path = Path(path).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"sample_prompts: {path}: cannot read it ({exc.strerror})") from None
    prompts = [parse_prompt_line(line, f"sample_prompts: {path}:{i}") for i, line in enumerate(lines, 1)]
    return [p for p in prompts if p is not None]


def sample_file_name(output_name: str, at: str, index: int, seed: int | None, when: float | None = None) -> str:
    """sd-scripts' name: <output_name>_<at>_<prompt index:02d>_<local time YYYYmmddHHMMSS>, then
    _<seed> when the prompt gives --d; `at` is when_tag's e000002 (epoch 2) or 000150 (step 150)."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(when))
    return f"{output_name}_{at}_{index:02d}_{stamp}" + ("" if seed is None else f"_{seed}") + ".png"


def when_tag(epoch: int | None, step: int) -> str:
    return f"e{epoch:06d}" if epoch is not None else f"{step:06d}"


# the inverse of sample_file_name; the output name may itself hold underscores and digits, so the
# fixed-shape parts are matched from the end (sd-scripts pads, never cuts: more digits can appear)
SAMPLE_NAME = re.compile(r"^(?P<name>.+)_(?P<at>e\d{6,}|\d{6,})_(?P<index>\d{2,})_(?P<stamp>\d{14})"
                         r"(?:_(?P<seed>\d+))?\.png$")


@dataclass(frozen=True)
class SampleName:
    kind: str          # "epoch" or "step": when the sample was rendered
    number: int        # the epoch (1-based, as sd-scripts counts) or the optimizer step
    index: int         # the prompt's index in the prompt file (comments and blanks not counted)
    stamp: str         # local time YYYYmmddHHMMSS: two renders of one cell, the later wins


def parse_sample_name(file_name: str) -> SampleName | None:
    """When and which prompt a sample file is, from its name; None for any other file."""
    match = SAMPLE_NAME.match(file_name)
    if match is None:
        return None
    at = match["at"]
    kind, number = ("epoch", int(at[1:])) if at.startswith("e") else ("step", int(at))
    return SampleName(kind, number, int(match["index"]), match["stamp"])
