"""`python -m trainer RUN_DIR`: train the run whose frozen config is RUN_DIR/config.toml.

Several processes: `accelerate launch --num_processes N -m trainer RUN_DIR` or
`torchrun --nproc_per_node N -m trainer RUN_DIR` (trainer/processes.py says how they work together)."""
from __future__ import annotations

import signal
import sys
from pathlib import Path

_early_signals: list[int] = []


def _remember(signum, frame) -> None:
    """SIGTERM/SIGINT before the recipe installs its own handler (importing torch takes seconds):
    remember it, so the run ends "stopped" instead of dying with a stale status.json."""
    _early_signals.append(signum)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m trainer RUN_DIR", file=sys.stderr)
        return 2
    if not (Path(argv[0]) / "config.toml").is_file():
        print(f"trainer: {Path(argv[0]) / 'config.toml'} not found; make the run with `workbench train` "
              "(or workbench.runs.registry.create_run)", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _remember)
    from trainer.recipe import run
    code = run(argv[0], early_signals=_early_signals)
    start_next_queued()
    return code


def start_next_queued() -> None:
    """The queue moves on when a trainer ends, app or no app (workbench.runs.queue). Process 0
    only; a failure to start the next run is that run's, said in its status, never this one's."""
    from trainer.processes import launched_rank
    if launched_rank() != 0:
        return
    from workbench.runs import queue as run_queue
    try:
        started = run_queue.advance()
    except Exception as exc:    # noqa: BLE001 — this run has ended; its exit code stays its own
        print(f"queue: could not start the next run: {exc}", file=sys.stderr, flush=True)
        return
    if started is not None:
        print(f"queue: started the next run {started}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
