"""What a caption run did, said the same way by the CLI and the page: counts, then the reasons,
every unreadable image named."""
from __future__ import annotations

from collections import Counter

from workbench.captioning.run import FAILED, SKIPPED, WRITTEN

SHOWN_FAILURES = 20


def counts_line(counts: dict, done: int, total: int, stopped: bool) -> str:
    line = f"written {counts[WRITTEN]}, skipped {counts[SKIPPED]}, failed {counts[FAILED]}"
    if stopped:
        return f"{line} — stopped after {done} of {total} images (run again with --existing skip to go on)"
    return f"{line} (of {total} images)"


def reason_lines(outcomes: list[dict]) -> list[str]:
    """One line per reason for skipping with its count; one per failed image with its reason."""
    lines = [f"skipped {n}: {reason}" for reason, n in
             Counter(o["reason"] for o in outcomes if o["action"] == SKIPPED).most_common()]
    failed = [o for o in outcomes if o["action"] == FAILED]
    lines += [f"failed: {o['reason']}" for o in failed[:SHOWN_FAILURES]]
    if len(failed) > SHOWN_FAILURES:
        lines.append(f"failed: … and {len(failed) - SHOWN_FAILURES} more (--json lists them all)")
    return lines


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "ETA ?"
    seconds = round(seconds)
    return f"ETA {seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"ETA {seconds // 60}:{seconds % 60:02d}"
