"""The host's memory bandwidth, measured with a copy, for the decode roofline.

Decoding one token reads every weight once, so tokens/s cannot exceed bandwidth / model bytes. The
copy moves arrays far larger than the caches, one slice per thread (numpy releases the GIL while it
copies), and counts read plus write traffic; the best of a few passes is kept, as STREAM does.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def copy_bandwidth(threads: int, megabytes: int = 256, passes: int = 5) -> dict:
    n = megabytes * (1 << 20) // 8
    src = np.ones(n, dtype=np.float64)
    dst = np.zeros_like(src)
    bounds = np.linspace(0, n, threads + 1, dtype=np.int64)
    slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]

    def copy(s: slice) -> None:
        np.copyto(dst[s], src[s])

    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(copy, slices))  # touch every page before timing
        for _ in range(passes):
            t0 = time.perf_counter()
            list(pool.map(copy, slices))
            best = min(best, time.perf_counter() - t0)
    moved = 2 * src.nbytes
    return {"copy_gb_s": moved / best / 1e9, "threads": threads, "bytes_per_pass": moved, "passes": passes,
            "method": "numpy copy, read + write bytes, best pass"}
