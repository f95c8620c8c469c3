"""Caption files: safe writes, tag operations, tag frequency, and bulk edits with a preview and an
undo journal kept on disk.

A caption is the first line of the text file beside its image — the line sd-scripts trains on;
any further lines are kept untouched. Writes are atomic and UTF-8 and refuse to overwrite a
caption that changed on disk since the page showed it. Bulk edits only touch caption files that
exist (an uncaptioned image trains on its class tokens, and a bulk edit never invents a caption
for it), and record every file's full text before and after, so an undo restores it exactly,
even after a browser refresh or an app restart.
"""
from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from workbench.errors import UserError
from workbench.fileio import write_json_atomic, write_text_atomic
from workbench.runs.registry import pid_alive
from workbench.workspace import home

# the line ends Python's universal-newline readline() splits on (what sd-scripts' reader sees)
LINE_END = re.compile(r"\r\n|\r|\n")


class CaptionConflict(UserError):
    """A caption changed on disk after the page read it: nothing was written."""


# ---------------------------------------------------------------- one caption file

def read_text(path: Path) -> str | None:
    """The whole caption file exactly as stored (line ends kept); None when there is none."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise UserError(f"{path}: caption is not UTF-8 text; re-save it as UTF-8") from None


def first_line(text: str) -> str:
    return LINE_END.split(text, 1)[0].strip()


def with_first_line(text: str | None, line: str) -> str:
    """`text` with its first line replaced by `line`; the other lines and their ends unchanged."""
    if LINE_END.search(line):
        raise UserError("caption: must be one line (sd-scripts only reads the first line)")
    if text is None:
        return line
    match = LINE_END.search(text)
    return line if match is None else line + text[match.start():]


def shown_line(path: Path) -> str | None:
    """The first line as the page shows it, or None when the caption file does not exist."""
    text = read_text(path)
    return None if text is None else first_line(text)


def write_caption(path: Path, line: str, expected: str | None) -> None:
    """Write `line` as the caption's first line. `expected` is what the page showed (None: no
    file): if the file now says something else, raise CaptionConflict and write nothing."""
    current = read_text(path)
    now = None if current is None else first_line(current)
    if now != expected:
        raise CaptionConflict(f"{path}: changed on disk since this page read it (now {_quote(now)}, "
                              f"was {_quote(expected)}); nothing was written — look at it and edit again")
    write_text_atomic(path, with_first_line(current, line.strip()))


def replace_undecodable(path: Path, line: str, expected: bytes) -> None:
    """Write `line` as the whole caption of a file that is not UTF-8 (its other lines cannot be
    kept as text): only if the file still holds the bytes the page showed, else CaptionConflict."""
    if Path(path).read_bytes() != expected:
        raise CaptionConflict(f"{path}: changed on disk since this page read it; nothing was written — look at it "
                              "and edit again")
    write_text_atomic(path, with_first_line(None, line.strip()))


def _quote(line: str | None) -> str:
    return "no caption file" if line is None else repr(line)


# ---------------------------------------------------------------- tags

def tag_key(tag: str) -> str:
    """Tags compare as sd-scripts counts them: stripped and lower-cased."""
    return tag.strip().lower()


def split_tags(line: str) -> list[str]:
    return [t.strip() for t in line.split(",") if t.strip()]


def join_tags(tags: list[str]) -> str:
    return ", ".join(tags)


def has_tag(line: str, tag: str) -> bool:
    return tag_key(tag) in {tag_key(t) for t in split_tags(line)}


def _retag(line: str, edit: Callable[[list[str]], list[str]]) -> str:
    """Apply a tag-list edit; a caption whose tags don't change keeps its exact spelling."""
    tags = split_tags(line)
    new = edit(tags)
    return line if new == tags else join_tags(new)


def _without(tags: list[str], tag: str) -> list[str]:
    return [t for t in tags if tag_key(t) != tag_key(tag)]


def prepend_tag(line: str, tag: str) -> str:
    """`tag` first, any other spelling of it removed (so running it twice changes nothing)."""
    return _retag(line, lambda tags: [tag.strip()] + _without(tags, tag))


def append_tag(line: str, tag: str) -> str:
    return _retag(line, lambda tags: _without(tags, tag) + [tag.strip()])


def remove_tag(line: str, tag: str) -> str:
    return _retag(line, lambda tags: _without(tags, tag))


def dedupe_tags(line: str) -> str:
    """Keep the first of each tag (compared case-insensitively), in order."""
    def edit(tags):
        seen, out = set(), []
        for t in tags:
            if tag_key(t) not in seen:
                seen.add(tag_key(t))
                out.append(t)
        return out
    return _retag(line, edit)


def replace_text(line: str, find: str, replacement: str) -> str:
    """Plain-text find/replace (not a pattern)."""
    return line.replace(find, replacement)


def tag_frequency(lines: Iterable[str]) -> Counter:
    """sd-scripts' ss_tag_frequency rule: every comma-separated tag, stripped and lower-cased,
    counted each time a caption has it (a tag given twice counts twice; repeats don't count)."""
    counts: Counter = Counter()
    for line in lines:
        for tag in line.split(","):
            if tag.strip():
                counts[tag_key(tag)] += 1
    return counts


def tag_frequency_by_folder(dataset) -> dict[str, dict[str, int]]:
    """{folder name: {tag: count}} over the images' training captions, as ss_tag_frequency: keyed
    on the folder's name only, so a train and a reg folder of the same name add up."""
    out: dict[str, Counter] = {}
    for subset in dataset.subsets:
        out.setdefault(subset.name, Counter()).update(tag_frequency(im.caption for im in subset.images))
    return {name: dict(counts) for name, counts in out.items()}


# ---------------------------------------------------------------- bulk operations

@dataclass(frozen=True)
class BulkOp:
    """One bulk edit: `kind` is a key of BULK_KINDS; `text` the tag or search text; `replacement`
    only for find/replace."""
    kind: str
    text: str = ""
    replacement: str = ""

    def check(self) -> None:
        if self.kind not in BULK_KINDS:
            raise UserError(f"bulk operation: unknown {self.kind!r}; valid: {', '.join(BULK_KINDS)}")
        if self.kind != "dedupe" and not self.text.strip():
            wanted = "text to find" if self.kind == "replace" else "tag"
            raise UserError(f"{BULK_KINDS[self.kind][0]}: enter the {wanted}")
        if "\n" in self.text or "\n" in self.replacement:
            raise UserError(f"{BULK_KINDS[self.kind][0]}: must be one line")

    def apply(self, line: str) -> str:
        return BULK_KINDS[self.kind][1](line, self)

    def describe(self) -> str:
        label = BULK_KINDS[self.kind][0]
        if self.kind == "dedupe":
            return label
        if self.kind == "replace":
            return f"{label} {self.text!r} → {self.replacement!r}"
        return f"{label} {self.text!r}"


# kind -> (label, edit of one caption line)
BULK_KINDS: dict[str, tuple[str, Callable[[str, BulkOp], str]]] = {
    "prepend": ("Prepend tag", lambda line, op: prepend_tag(line, op.text)),
    "append": ("Append tag", lambda line, op: append_tag(line, op.text)),
    "replace": ("Find and replace", lambda line, op: replace_text(line, op.text, op.replacement)),
    "remove": ("Remove tag", lambda line, op: remove_tag(line, op.text)),
    "dedupe": ("Deduplicate tags", lambda line, op: dedupe_tags(line)),
}


@dataclass(frozen=True)
class CaptionChange:
    path: Path          # the caption file
    before: str         # first line now
    after: str          # first line after the operation


def preview(op: BulkOp, captions: Iterable[tuple[Path, str | None]]) -> list[CaptionChange]:
    """The captions `op` would change, from (caption file, first line shown or None when there
    is no file). Files that don't exist are left out: a bulk edit never creates a caption."""
    op.check()
    changes = []
    for path, line in captions:
        if line is not None and op.apply(line) != line:
            changes.append(CaptionChange(Path(path), line, op.apply(line)))
    return changes


@dataclass(frozen=True)
class JournalEntry:
    path: Path           # the journal file
    description: str
    time: float          # unix seconds
    files: list[dict]    # [{"path", "before", "after"}]: whole file texts


@dataclass(frozen=True)
class UndoResult:
    description: str
    restored: list[Path]
    skipped: list[Path]   # changed again since the operation: left as they are now


def default_journal_dir() -> Path:
    return home() / "caption-journal"


def apply_changes(changes: list[CaptionChange], description: str,
                  journal_dir: Path | None = None) -> JournalEntry:
    """Write a previewed bulk edit. All files are checked first: if any changed since the
    preview, nothing is written (CaptionConflict names them). The journal is written before the
    captions, so even an interrupted operation can be undone."""
    journal_dir = Path(journal_dir or default_journal_dir())
    records, stale = [], []
    for change in changes:
        text = read_text(change.path)
        if text is None or first_line(text) != change.before:
            stale.append(change.path)
        else:
            records.append({"path": str(change.path), "before": text,
                            "after": with_first_line(text, change.after)})
    if stale:
        raise CaptionConflict(f"{_names(stale)} changed on disk since the preview; nothing was "
                              "written — preview again")
    entry = JournalEntry(journal_dir / f"{time.time_ns()}.json", description, time.time(), records)
    write_json_atomic(entry.path, {"description": description, "time": entry.time, "files": records})
    for record in records:
        write_text_atomic(record["path"], record["after"])
    return entry


def _names(paths: list[Path], limit: int = 3) -> str:
    shown = ", ".join(str(p) for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def pending_undos(journal_dir: Path | None = None) -> list[JournalEntry]:
    """Bulk edits that can still be undone, newest first."""
    journal_dir = Path(journal_dir or default_journal_dir())
    if not journal_dir.is_dir():
        return []
    entries = []
    for path in sorted(journal_dir.glob("[0-9]*.json"), key=lambda p: int(p.stem), reverse=True):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: unreadable undo journal ({exc}); move it out of the way") from None
        entries.append(JournalEntry(path, data["description"], data["time"], data["files"] + _logged_files(path, data)))
    return entries


def _logged_files(path: Path, data: dict) -> list[dict]:
    """The records a caption run still writing (or one that crashed) keeps in its side file, one
    JSON object a line (workbench/captioning/journal.py); a line being written is not a record yet."""
    if not data.get("files_log"):
        return []
    try:
        lines = (path.parent / data["files_log"]).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def _refuse_while_writing(entry: JournalEntry) -> None:
    """A caption run's entry names its process while it still writes (workbench/captioning)."""
    data = json.loads(entry.path.read_text(encoding="utf-8"))
    writer = data.get("writer") or {}
    if pid_alive(writer.get("pid"), writer.get("pid_start")):
        raise UserError(f"undo: “{entry.description}” is still writing captions (process {writer['pid']}); "
                        "stop it or let it finish, then undo")


def undo_last(journal_dir: Path | None = None) -> UndoResult:
    """Undo the newest bulk edit: each file that still holds what the edit wrote gets its old
    text back (a file the edit created is removed); a file edited again since then is left alone
    and reported. The journal entry is kept, renamed *.undone, so the undo itself is on record."""
    entries = pending_undos(journal_dir)
    if not entries:
        raise UserError("undo: there is no bulk caption edit to undo")
    entry = entries[0]
    _refuse_while_writing(entry)
    restored, skipped = [], []
    for record in entry.files:
        path = Path(record["path"])
        if read_text(path) != record["after"]:
            skipped.append(path)
        elif record["before"] is None:        # the edit created the file (a caption run): remove it again
            path.unlink()
            restored.append(path)
        else:
            write_text_atomic(path, record["before"])
            restored.append(path)
    os.replace(entry.path, entry.path.with_suffix(".undone"))
    entry.path.with_suffix(".jsonl").unlink(missing_ok=True)     # a crashed run's side file
    return UndoResult(entry.description, restored, skipped)
