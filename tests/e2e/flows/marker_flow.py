"""A middle step that fails until a marker file exists: something to resume."""

from pathlib import Path

from kflow import FlowSpec, Parameter, step


class MarkerFlow(FlowSpec):
    """start → check (fails unless the file `marker` exists) → end."""

    marker = Parameter("marker", default="", help="a file that must exist for check to pass")

    @step
    def start(self):
        self.value = 21
        self.next(self.check)

    @step
    def check(self):
        if not Path(self.marker).is_file():
            raise RuntimeError(f"marker file {self.marker} is missing")
        self.value = self.value * 2
        self.next(self.end)

    @step
    def end(self):
        print(f"value {self.value}")


if __name__ == "__main__":
    MarkerFlow()
