"""metrics.jsonl, read whole or incrementally: the trainer appends one JSON object per line and
flushes; a reader takes only complete lines. Apart from workbench.runs.registry so that what reads a run's
metrics (the estimate's calibration) need not import the module that starts runs."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class MetricsTail:
    """Reads metrics.jsonl incrementally: each call returns only the events written since the last
    one (constant work per refresh, whatever the run's length). A partly written last line waits."""
    path: Path
    offset: int = 0
    events: list[dict] = field(default_factory=list)

    def read_new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        new = []
        for line in chunk[:end].splitlines():
            try:
                new.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        self.events.extend(new)
        return new


def read_metrics(run_dir: str | Path) -> list[dict]:
    tail = MetricsTail(Path(run_dir) / "metrics.jsonl")
    tail.read_new()
    return tail.events
