"""Benchmark scenario: one large numpy array saved in `start`, read in `end`.

The array is BENCH_ARRAY_MB MiB of random float64 (256 unless set; 0 gives an
8-byte array, the fixed-cost reference). Random data, a new draw every run, so
neither compression nor a content-addressed store's dedup can skip the work.

Timestamps go to the file named by BENCH_MARKS (one "event monotonic pid" line
each): `saved` right after the array is assigned, `user_start` as the reading
step's code begins, `loaded` once it holds the whole array. The kflow twin
(bench/flows/kflow/) differs only in the import line.
"""

# isort: skip_file
import os
import resource
import time

import numpy as np

from kflow import FlowSpec, step


def mark(event):
    path = os.environ.get("BENCH_MARKS")
    if path:
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with open(path, "a") as out:
            out.write(f"{event} {time.monotonic():.6f} {os.getpid()} {rss_kb}\n")


class LargeArtifactFlow(FlowSpec):
    @step
    def start(self):
        mib = int(os.environ.get("BENCH_ARRAY_MB", "256"))
        count = mib * 1024 * 1024 // 8 if mib else 1
        self.array = np.random.default_rng().random(count)
        mark("saved")
        self.next(self.end)

    @step
    def end(self):
        mark("user_start")
        array = self.array
        mib = int(os.environ.get("BENCH_ARRAY_MB", "256"))
        assert array.nbytes == (mib * 1024 * 1024 if mib else 8), array.nbytes
        mark("loaded")


if __name__ == "__main__":
    LargeArtifactFlow()
