"""Benchmark scenario: 10,000 small artifacts saved in `start`, read in `end`.

`start` sets BENCH_ARTIFACTS (10000 unless set) attributes `a00000`, `a00001`,
... each an int (a per-run random base plus its index, so nothing is reused
from an earlier run); `end` reads every one of them back by name.

Timestamps go to the file named by BENCH_MARKS, as in large_artifact.py:
`saved` after the last attribute is set, `user_start` as `end` begins,
`loaded` once every attribute has been read and checked. The kflow twin
(bench/flows/kflow/) differs only in the import line.
"""

# isort: skip_file
import os
import random
import resource
import time

from metaflow import FlowSpec, step


def mark(event):
    path = os.environ.get("BENCH_MARKS")
    if path:
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with open(path, "a") as out:
            out.write(f"{event} {time.monotonic():.6f} {os.getpid()} {rss_kb}\n")


class ManyArtifactsFlow(FlowSpec):
    @step
    def start(self):
        count = int(os.environ.get("BENCH_ARTIFACTS", "10000"))
        self.base = random.randrange(1 << 40)
        for i in range(count):
            setattr(self, f"a{i:05d}", self.base + i)
        mark("saved")
        self.next(self.end)

    @step
    def end(self):
        mark("user_start")
        count = int(os.environ.get("BENCH_ARTIFACTS", "10000"))
        total = sum(getattr(self, f"a{i:05d}") for i in range(count))
        assert total == count * self.base + count * (count - 1) // 2, total
        mark("loaded")


if __name__ == "__main__":
    ManyArtifactsFlow()
