"""A caption run's entry in the bulk-edit undo journal (workbench/captions.py reads and undoes it).

The entry is created with the run's first write and rewritten (atomically) before each batch's
captions are written, so an interrupted run can be undone up to its last file. While the run
writes, the entry names its process; undo refuses until that process has ended. A caption file
the run created has `before: null`: undoing removes it (if it still holds what the run wrote)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from workbench.captions import default_journal_dir
from workbench.fileio import write_json_atomic


class RunJournal:
    def __init__(self, description: str, journal_dir: Path | None = None, job: str = ""):
        self.dir = Path(journal_dir or default_journal_dir())
        self.description, self.job = description, job
        self.path: Path | None = None          # made with the first record
        self.time = time.time()
        self.files: list[dict] = []

    def record(self, entries: list[dict]) -> None:
        """Add {"path", "before", "after"} records and put the entry on disk before the files change."""
        if not entries:
            return
        if self.path is None:
            self.path = self.dir / f"{time.time_ns()}.json"
        self.files.extend(entries)
        self._write(writing=True)

    def close(self) -> None:
        """The run has ended: undo may go ahead."""
        if self.path is not None:
            self._write(writing=False)

    def _write(self, writing: bool) -> None:
        from workbench.runs import proc_start_time
        entry = {"description": self.description, "time": self.time, "files": self.files, "job": self.job}
        if writing:
            entry["writer"] = {"pid": os.getpid(), "pid_start": proc_start_time(os.getpid())}
        write_json_atomic(self.path, entry)
