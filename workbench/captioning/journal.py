"""A caption run's entry in the bulk-edit undo journal (workbench/dataset/captions.py reads and undoes it).

With the run's first write the entry appears: `<time_ns>.json` naming the run, its process (while
it writes, undo refuses) and a side file `<time_ns>.jsonl` to which each batch's records are
appended and fsync'd before the batch's captions are written — so an interrupted run can be undone
up to its last file, and a long run costs one small append per batch, not a rewrite of the whole
entry. When the run ends the records move into the .json and the side file goes. A caption file
the run created has `before: null`: undoing removes it (if it still holds what the run wrote)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from workbench.dataset.captions import default_journal_dir
from workbench.fileio import write_json_atomic
from workbench.runs.registry import proc_start_time


class RunJournal:
    def __init__(self, description: str, journal_dir: Path | None = None, job: str = ""):
        self.dir = Path(journal_dir or default_journal_dir())
        self.description, self.job = description, job
        self.path: Path | None = None          # made with the first record
        self.time = time.time()
        self.files: list[dict] = []

    @property
    def log_path(self) -> Path:
        return self.path.with_suffix(".jsonl")

    def record(self, entries: list[dict]) -> None:
        """Add {"path", "before", "after"} records; they are on disk when this returns."""
        if not entries:
            return
        if self.path is None:
            self.path = self.dir / f"{time.time_ns()}.json"
            self._write(running=True)
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
            log.flush()
            os.fsync(log.fileno())
        self.files.extend(entries)

    def close(self) -> None:
        """The run has ended: the records go into the entry, and undo may go ahead."""
        if self.path is not None:
            self._write(running=False)
            self.log_path.unlink(missing_ok=True)

    def _write(self, running: bool) -> None:
        entry = {"description": self.description, "time": self.time, "job": self.job}
        if running:
            entry.update(files=[], files_log=self.log_path.name,
                         writer={"pid": os.getpid(), "pid_start": proc_start_time(os.getpid())})
        else:
            entry["files"] = self.files
        write_json_atomic(self.path, entry)
