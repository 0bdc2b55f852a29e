"""A flow whose heavy step runs on the cluster when run locally (e2e of hybrid runs):
each step records the host it ran on (HOSTNAME: the pod's name in a pod)."""

import os
import time

from kflow import FlowSpec, Parameter, kubernetes, step


class HybridFlow(FlowSpec):
    """start (here) → train (a pod) → end (here); data crosses both ways."""

    nap = Parameter("nap", default=0.0, help="seconds the train step sleeps")

    @step
    def start(self):
        self.start_host = os.environ.get("HOSTNAME", "")
        self.numbers = [1, 2, 3]
        self.next(self.train)

    @kubernetes(cpu=0.5, memory=300)
    @step
    def train(self):
        self.train_host = os.environ.get("HOSTNAME", "")
        time.sleep(self.nap)
        self.model = sum(self.numbers) * 2
        self.next(self.end)

    @step
    def end(self):
        self.end_host = os.environ.get("HOSTNAME", "")
        self.result = self.model + 1
        print(f"result {self.result}")


if __name__ == "__main__":
    HybridFlow()
