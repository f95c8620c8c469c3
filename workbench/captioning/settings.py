"""What the user chose for a caption run, checked once for the CLI, the page and the job process.

Every field says what it does; `check()` raises a UserError naming the field, so a value that
cannot run is never saved into a job."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from workbench.captioning.tags import TagRule
from workbench.errors import UserError

EXISTING_POLICIES = {
    "skip": "keep a caption that exists as it is (the default; a rerun resumes where it stopped)",
    "append": "add the new tags after the existing ones, without duplicates",
    "overwrite": "replace the first line with the new caption (other lines are kept)",
}


@dataclass(frozen=True)
class CaptionSettings:
    model: str                             # a folder, or a Hugging Face repo id
    threshold: float = 0.35                # tagger: general tags at this score or above
    character_threshold: float = 0.85      # tagger: character tags at this score or above
    rating: bool = False                   # tagger: also write the most likely rating tag
    exclude: tuple[str, ...] = ()          # tagger: tags never written
    prefix: str = ""                       # tag(s) put first, once (a trigger word)
    prefix_class_tokens: bool = False      # put the folder's class tokens first, once
    existing: str = "skip"                 # a key of EXISTING_POLICIES
    extension: str = ".txt"                # caption file extension
    batch_size: int = 8                    # images per model call
    max_length: int = 75                   # sentence captioner: new tokens at most
    num_beams: int = 1                     # sentence captioner: beam search width (1: greedy)
    prompt: str = ""                       # sentence captioner: text the model continues or its task token

    def check(self) -> CaptionSettings:
        if not self.model.strip():
            raise UserError("model: give a folder or a Hugging Face repo id (e.g. SmilingWolf/wd-vit-tagger-v3)")
        for name in ("threshold", "character_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"{name}: {getattr(self, name)} is not a score between 0 and 1")
        if self.existing not in EXISTING_POLICIES:
            raise UserError(f"existing: {self.existing!r} is not one of {', '.join(EXISTING_POLICIES)}")
        if not self.extension.startswith(".") or len(self.extension) < 2 or "/" in self.extension:
            raise UserError(f"extension: {self.extension!r} must look like .txt")
        for name in ("batch_size", "max_length", "num_beams"):
            if getattr(self, name) < 1:
                raise UserError(f"{name}: must be 1 or more, not {getattr(self, name)}")
        if "\n" in self.prefix or "\n" in self.prompt:
            raise UserError("prefix and prompt: must be one line")
        return self

    @property
    def tag_rule(self) -> TagRule:
        return TagRule(self.threshold, self.character_threshold, self.rating, self.exclude)

    def to_json(self) -> dict:
        return {**asdict(self), "exclude": list(self.exclude)}

    @classmethod
    def from_json(cls, data: dict) -> CaptionSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"caption settings: unknown keys {', '.join(unknown)}")
        values = dict(data)
        values["exclude"] = tuple(values.get("exclude") or ())
        return cls(**values)


# the options only one kind of model uses: (field, CLI option)
TAGGER_ONLY = (("threshold", "--threshold"), ("character_threshold", "--character-threshold"),
               ("rating", "--rating"), ("exclude", "--exclude"))
SENTENCES_ONLY = (("max_length", "--max-length"), ("num_beams", "--beams"), ("prompt", "--prompt"))


def unused_options(settings: CaptionSettings, is_tagger: bool) -> str:
    """A note naming the options the user changed that this kind of model does not use, or ""."""
    default = CaptionSettings(model=settings.model)
    other = SENTENCES_ONLY if is_tagger else TAGGER_ONLY
    changed = [option for name, option in other if getattr(settings, name) != getattr(default, name)]
    if not changed:
        return ""
    kind = "a WD14 tagger" if is_tagger else "an image-to-text captioner"
    return f"{', '.join(changed)}: not used, {settings.model} is {kind}"


def split_list(text: str) -> tuple[str, ...]:
    """"a, b,,c " -> ("a", "b", "c"): the --exclude and prefix lists."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def cli_args(settings: CaptionSettings) -> list[str]:
    """The `workbench caption` options that give these settings (defaults left out): the page
    shows them and runs its preview through them."""
    default = CaptionSettings(model=settings.model)
    args = ["--model", settings.model]
    flags = {"rating": "--rating", "prefix_class_tokens": "--prefix-class-tokens"}
    options = {"threshold": "--threshold", "character_threshold": "--character-threshold", "prefix": "--prefix",
               "existing": "--existing", "extension": "--extension", "batch_size": "--batch-size",
               "max_length": "--max-length", "num_beams": "--beams", "prompt": "--prompt"}
    for name, flag in flags.items():
        if getattr(settings, name):
            args.append(flag)
    for name, option in options.items():
        if getattr(settings, name) != getattr(default, name):
            args += [option, str(getattr(settings, name))]
    if settings.exclude:
        args += ["--exclude", ",".join(settings.exclude)]
    return args
