"""A run's sample gallery as a grid: rows = when the samples were rendered (epoch or step, in
order), columns = the prompts of the sample prompt file (the prompt text as header), None where a
sample is missing, so every row has every column and a sample lines up with the ones above it.
And two runs' samples of one prompt side by side, rows aligned by epoch/step.

Read from the files only (sd-scripts' sample names, workbench.runs.sample_prompts), so runs made by
any version of the trainer, or copied from sd-scripts' own sample folders, show the same way.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from workbench.config.schema import load_toml
from workbench.errors import UserError
from workbench.runs.sample_prompts import parse_sample_name, read_prompt_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True, order=True)
class When:
    """When a row of samples was rendered. Ordered epochs first, then steps (a run samples by
    one or the other: sample_every_n_epochs wins over sample_every_n_steps, as in sd-scripts)."""
    kind: str          # "epoch" or "step"
    number: int

    def label(self) -> str:
        return f"{self.kind} {self.number}"


@dataclass
class SampleGrid:
    prompts: list[str]                                       # column headers, by prompt index
    rows: list[tuple[When, list[Path | None]]] = field(default_factory=list)     # oldest first
    others: list[Path] = field(default_factory=list)         # images without a sample name

    def newest_first(self) -> list[tuple[When, list[Path | None]]]:
        return self.rows[::-1]

    def column(self, index: int) -> dict[When, Path | None]:
        """One prompt's samples by when (None where that row has none of it)."""
        return {when: cells[index] if index < len(cells) else None for when, cells in self.rows}


def build_grid(files: Iterable[Path], prompts: Sequence[str] = ()) -> SampleGrid:
    """The grid of these sample files. Columns: the given prompt texts, widened to the highest
    prompt index a file has (its header then "prompt N"); two files of one cell (a resumed run
    rendered it again): the later time stamp."""
    cells: dict[tuple[When, int], tuple[str, Path]] = {}
    others = []
    for path in sorted(Path(f) for f in files):
        name = parse_sample_name(path.name)
        if name is None:
            others.append(path)
            continue
        key = (When(name.kind, name.number), name.index)
        if key not in cells or cells[key][0] <= name.stamp:
            cells[key] = (name.stamp, path)
    width = max([len(prompts)] + [index + 1 for _, index in cells])
    headers = list(prompts) + [f"prompt {i}" for i in range(len(prompts), width)]
    rows = [(when, [cells[(when, i)][1] if (when, i) in cells else None for i in range(width)])
            for when in sorted({when for when, _ in cells})]
    return SampleGrid(headers, rows, others)


def sample_files(run_dir: Path) -> list[Path]:
    folder = Path(run_dir) / "samples"
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]


def has_samples(run_dir: Path) -> bool:
    """Whether the run has a sample image named as samples are (a folder listing, no config read)."""
    return any(parse_sample_name(p.name) is not None for p in sample_files(run_dir))


def run_prompts(run_dir: Path, sample_events: Iterable[dict] = ()) -> list[str]:
    """The prompt texts by index: what the run's sample events say it rendered (the file may have
    been edited since), else the prompt file its frozen config names; [] when neither is readable."""
    texts = dict(enumerate(_prompt_file_texts(Path(run_dir))))
    for event in sample_events:
        name = parse_sample_name(Path(str(event.get("path", ""))).name)
        if name is not None and isinstance(event.get("prompt"), str):
            texts[name.index] = event["prompt"]
    width = max(texts, default=-1) + 1
    return [texts.get(i, f"prompt {i}") for i in range(width)]


def _prompt_file_texts(run_dir: Path) -> list[str]:
    try:
        cfg, _ = load_toml(run_dir / "config.toml")
        return [p.prompt for p in read_prompt_file(cfg.sample_prompts)] if cfg.sample_prompts else []
    except (UserError, OSError):
        return []       # a missing or broken prompt file: the headers fall back to "prompt N"


def run_grid(run_dir: Path, sample_events: Iterable[dict] = ()) -> SampleGrid:
    return build_grid(sample_files(run_dir), run_prompts(run_dir, sample_events))


@dataclass(frozen=True)
class Comparison:
    prompt: str
    other_index: int | None          # the other run's column shown; None when it has no such prompt
    same_text: bool                  # matched by the prompt's text (else by its index in the file)
    rows: list[tuple[When, Path | None, Path | None]]      # (when, this run's, the other run's), oldest first


def side_by_side(grid: SampleGrid, other: SampleGrid, index: int) -> Comparison:
    """Prompt `index` of `grid` beside the other run's samples of the same prompt text (else of
    the same index), one row per epoch/step either run has."""
    prompt = grid.prompts[index]
    same_text = prompt in other.prompts
    other_index = other.prompts.index(prompt) if same_text else index if index < len(other.prompts) else None
    mine = grid.column(index)
    theirs = other.column(other_index) if other_index is not None else {}
    rows = [(when, mine.get(when), theirs.get(when)) for when in sorted(set(mine) | set(theirs))]
    return Comparison(prompt, other_index, same_text, rows)
