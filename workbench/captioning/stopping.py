"""Stop after the current batch: the first Ctrl-C (SIGINT) or SIGTERM (the page's Stop button)
sets a flag the run checks between batches; a second Ctrl-C interrupts at once (what was written
is complete, each file being written atomically)."""
from __future__ import annotations

import signal


class StopAfterBatch:
    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_first=lambda name: None):
        self.requested = False
        self.on_first = on_first
        self.previous = {}

    def __enter__(self) -> StopAfterBatch:
        self.previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not self.requested:
            self.requested = True
            self.on_first(signal.Signals(signum).name)
