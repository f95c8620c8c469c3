"""One caption run: the images of a folder, in batches, through a model, into caption files.

Per batch: the captions are read first; with `--existing skip` an image that has one is not even
opened (so a rerun resumes where a stopped run ended). The others are decoded (an unreadable image
is named and skipped, never fatal), captioned, merged with what they had (policy.py), recorded in
the undo journal, and written atomically — unless the caption file changed on disk since this run
read it, which is then reported, not overwritten. A stop request is honoured between batches, so
everything written so far is complete and in the journal.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from workbench.captioning.journal import RunJournal
from workbench.captioning.models import TAGGER, resolve_model
from workbench.captioning.policy import merged_line
from workbench.captioning.sentences import SentenceCaptioner
from workbench.captioning.settings import CaptionSettings, split_list, unused_options
from workbench.captioning.threads import parallel_map
from workbench.captioning.wd14 import Tagger
from workbench.dataset.captions import first_line, read_text, with_first_line
from workbench.dataset.images import open_image as opened
from workbench.dataset.scan import caption_path, find_subset_folders, list_images, parse_subset_name
from workbench.errors import UserError
from workbench.fileio import write_text_atomic

WRITTEN, SKIPPED, FAILED = "written", "skipped", "failed"
CHANGED_ON_DISK = "caption changed on disk during the run; left as it is now"


@dataclass(frozen=True)
class CaptionItem:
    image: Path
    caption: Path
    class_tokens: str              # the subset's, for --prefix-class-tokens


@dataclass(frozen=True)
class Outcome:
    image: Path
    action: str                    # WRITTEN, SKIPPED or FAILED
    reason: str = ""               # why skipped or failed
    line: str = ""                 # the caption's first line as written

    def to_json(self) -> dict:
        return {"image": str(self.image), "action": self.action, "reason": self.reason, "line": self.line}


def collect_items(folder: str | Path, extension: str) -> list[CaptionItem]:
    """A subset folder (`10_sks dog`) gives its own images; a train_data_dir the images of every
    `<repeats>_<name>` folder in it (images loose in it are not trained on, so not captioned);
    any other folder of images, its own images."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"{folder}: folder not found; give a subset folder or a train_data_dir")
    parsed = parse_subset_name(folder.name)
    subsets = [] if parsed else find_subset_folders(folder, False, "folder")[0]
    if subsets:
        return [CaptionItem(p, caption_path(p, extension), s.class_tokens) for s in subsets for p in list_images(s.dir)]
    items = [CaptionItem(p, caption_path(p, extension), parsed[1] if parsed else "") for p in list_images(folder)]
    if not items:
        raise UserError(f"{folder}: no images in it nor in <repeats>_<name> folders under it")
    return items


@dataclass
class Tally:
    """Counts and timing of a run so far; `eta_s` from the average time per image done."""
    total: int
    done: int = 0
    counts: dict = field(default_factory=lambda: {WRITTEN: 0, SKIPPED: 0, FAILED: 0})
    started: float = field(default_factory=time.monotonic)

    def add(self, outcomes: list[Outcome]) -> None:
        self.done += len(outcomes)
        for o in outcomes:
            self.counts[o.action] += 1

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def eta_s(self) -> float | None:
        return self.elapsed_s / self.done * (self.total - self.done) if self.done else None

    @property
    def images_per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0


class CaptionRun:
    """Caption `items` with `model` (anything with predict(list of PIL images) -> list[Prediction])."""

    def __init__(self, settings: CaptionSettings, model, journal: RunJournal | None = None):
        self.settings, self.model, self.journal = settings, model, journal

    def run(self, items: list[CaptionItem], stop: Callable[[], bool] = lambda: False,
            on_batch: Callable[[Tally, list[Outcome]], None] = lambda tally, outcomes: None) -> Tally:
        tally = Tally(len(items))
        size = self.settings.batch_size
        for start in range(0, len(items), size):
            if stop():
                break
            outcomes = self.caption_batch(items[start:start + size])
            tally.add(outcomes)
            on_batch(tally, outcomes)
        if self.journal is not None:
            self.journal.close()
        return tally

    def preview(self, items: list[CaptionItem]) -> list[dict]:
        """What a run would write for `items`, with the model's scores; writes nothing."""
        errors: dict[Path, Outcome] = {}
        images, readable = self._open(items, errors)
        predictions = dict(zip([i.image for i in readable], self.model.predict(images) if images else []))
        rows = []
        for item in items:
            text = read_text(item.caption)
            row = {"image": str(item.image), "existing": None if text is None else first_line(text)}
            if item.image in errors:
                rows.append({**row, "error": errors[item.image].reason, "line": None, "scores": []})
                continue
            prediction = predictions[item.image]
            rows.append({**row, "error": "", "line": self._line(item, text, prediction),
                         "scores": [{"tag": t.tag, "score": round(t.score, 4), "category": t.category,
                                     "kept": t.tag in prediction.tags} for t in prediction.scores]})
        return rows

    def caption_batch(self, batch: list[CaptionItem]) -> list[Outcome]:
        outcomes: dict[Path, Outcome] = {}
        texts, todo = {}, []
        for item in batch:
            try:
                texts[item.image] = read_text(item.caption)
            except UserError as exc:
                outcomes[item.image] = Outcome(item.image, FAILED, str(exc))
                continue
            if self.settings.existing == "skip" and _has_caption(texts[item.image]):
                outcomes[item.image] = Outcome(item.image, SKIPPED, "has a caption (--existing skip)")
            else:
                todo.append(item)
        images, readable = self._open(todo, outcomes)
        predictions = self.model.predict(images) if images else []
        lines = {item.image: self._line(item, texts[item.image], p) for item, p in zip(readable, predictions)}
        outcomes.update(self._write([i for i in readable if lines[i.image] is not None], texts, lines))
        for item in readable:
            if lines[item.image] is None:
                outcomes[item.image] = Outcome(item.image, SKIPPED, "nothing new to add")
        return [outcomes[item.image] for item in batch]

    def _open(self, items: list[CaptionItem], outcomes: dict) -> tuple[list, list[CaptionItem]]:
        images, readable = [], []
        for item, image in zip(items, parallel_map(_open_or_error, [i.image for i in items])):
            if isinstance(image, UserError):
                outcomes[item.image] = Outcome(item.image, FAILED, str(image))
            else:
                images.append(image)
                readable.append(item)
        return images, readable

    def _line(self, item: CaptionItem, text: str | None, prediction) -> str | None:
        prefix = split_list(self.settings.prefix)
        if self.settings.prefix_class_tokens and item.class_tokens:
            prefix += (item.class_tokens,)
        existing = None if text is None else first_line(text)
        return merged_line(existing, prediction.tags, self.settings.existing, prefix)

    def _write(self, items: list[CaptionItem], texts: dict, lines: dict) -> dict[Path, Outcome]:
        """Files that changed on disk since this run read them are left alone; the others go into
        the journal first, then each is written (checked once more just before)."""
        done, fresh = {}, []
        for item in items:
            if read_text(item.caption) != texts[item.image]:
                done[item.image] = Outcome(item.image, SKIPPED, CHANGED_ON_DISK)
            else:
                fresh.append((item, {"path": str(item.caption), "before": texts[item.image],
                                     "after": with_first_line(texts[item.image], lines[item.image])}))
        if self.journal is not None:
            self.journal.record([record for _, record in fresh])
        for item, record in fresh:
            try:
                done[item.image] = self._write_one(item, record)
            except OSError as exc:
                done[item.image] = Outcome(item.image, FAILED, f"{item.caption}: cannot write ({exc.strerror})")
        return done

    def _write_one(self, item: CaptionItem, record: dict) -> Outcome:
        if read_text(item.caption) != record["before"]:
            return Outcome(item.image, SKIPPED, CHANGED_ON_DISK)
        write_text_atomic(item.caption, record["after"])
        return Outcome(item.image, WRITTEN, line=first_line(record["after"]))


def _has_caption(text: str | None) -> bool:
    return text is not None and first_line(text) != ""


def _open_or_error(path: Path):
    try:
        return open_image(path)
    except UserError as exc:
        return exc


def open_image(path: Path):
    """The decoded image: all pixels read now, so a truncated file fails here, named (workbench.dataset.images)."""
    with opened(path) as im:
        im.load()                  # the pixels stay usable once the file is closed
        return im


def load_model(settings: CaptionSettings, notes: Callable[[str], None] = lambda note: None):
    """The model `settings.model` names, ready to predict; `notes` hears of options it does not use."""
    source = resolve_model(settings.model)
    note = unused_options(settings, source.kind == TAGGER)
    if note:
        notes(note)
    if source.kind == TAGGER:
        return Tagger(source, settings.tag_rule)
    return SentenceCaptioner(source, settings.max_length, settings.num_beams, settings.prompt)
