"""A step that sleeps: something to stop, or to delete the pod of, while it runs."""

import time

from kflow import FlowSpec, Parameter, step


class NapFlow(FlowSpec):
    """start → nap (sleeps `seconds`) → end."""

    seconds = Parameter("seconds", default=60, help="how long the nap step sleeps")

    @step
    def start(self):
        self.next(self.nap)

    @step
    def nap(self):
        time.sleep(self.seconds)
        self.slept = self.seconds
        self.next(self.end)

    @step
    def end(self):
        print(f"slept {self.slept}s")


if __name__ == "__main__":
    NapFlow()
