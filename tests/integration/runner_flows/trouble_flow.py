"""A flow whose steps go wrong on purpose, picked by the `mode` parameter."""

import threading
import time

from kflow import FlowSpec, Parameter, catch, retry, step, timeout


class TroubleFlow(FlowSpec):
    """start → fail | caught | slow | missing | unpicklable (a switch) → end."""

    mode = Parameter("mode", default="fail")

    @step
    def start(self):
        self.kept = "set before the trouble"
        self.next({"fail": self.fail, "caught": self.caught, "slow": self.slow,
                   "missing": self.missing, "unpicklable": self.unpicklable},
                  condition="mode")

    @step
    def fail(self):
        self.partial = 41
        print("about to fail")
        raise ValueError("boom in fail")
        self.next(self.end)

    @retry(times=1)
    @catch(var="failure")
    @step
    def caught(self):
        print("caught is failing")
        raise KeyError("caught this")
        self.next(self.end)

    @timeout(seconds=1)
    @step
    def slow(self):
        print("sleeping too long", flush=True)
        time.sleep(30)
        self.next(self.end)

    @step
    def missing(self):
        self.x = self.model
        self.next(self.end)

    @step
    def unpicklable(self):
        self.lock = threading.Lock()
        self.next(self.end)

    @step
    def end(self):
        pass
