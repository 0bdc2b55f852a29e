"""Local runs: a middle step that fails while LOCAL_TEST_FAIL=1 (then resume fixes it)."""

import os

from kflow import FlowSpec, Parameter, step


class FlakyFlow(FlowSpec):
    """start (records its pid) → middle (fails on demand) → end."""

    size = Parameter("size", default=3, help="how many numbers")

    @step
    def start(self):
        self.numbers = list(range(self.size))
        self.start_pid = os.getpid()
        self.next(self.middle)

    @step
    def middle(self):
        if os.environ.get("LOCAL_TEST_FAIL") == "1":
            raise RuntimeError("middle failed on purpose (LOCAL_TEST_FAIL=1)")
        self.total = sum(self.numbers)
        self.next(self.end)

    @step
    def end(self):
        print(f"total {self.total}")


if __name__ == "__main__":
    FlakyFlow()
