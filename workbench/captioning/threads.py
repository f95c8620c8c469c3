"""Decoding a batch of images on a few threads: PIL decodes and resizes without holding the GIL, so
this uses every core while the model waits for its batch (the model then gets them all)."""
from __future__ import annotations

import os

MAX_DECODE_THREADS = 8


def parallel_map(fn, values: list) -> list:
    """`fn` over `values` on up to MAX_DECODE_THREADS threads (one per core), results in order."""
    if len(values) < 2:
        return [fn(v) for v in values]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=min(len(values), os.cpu_count() or 1, MAX_DECODE_THREADS)) as pool:
        return list(pool.map(fn, values))
