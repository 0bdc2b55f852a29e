"""Local runs: @retry (with back-off), @catch and @timeout decided by the planner."""

import time

from kflow import FlowSpec, catch, current, retry, step, timeout


class DecoratedFlow(FlowSpec):
    """start → flaky (fails twice, then works) → caught (raises) → slow (times out) → end."""

    @step
    def start(self):
        self.next(self.flaky)

    @retry(times=2, minutes_between_retries=0.01)
    @step
    def flaky(self):
        if current.retry_count < 2:
            raise ValueError(f"attempt {current.retry_count} fails on purpose")
        self.attempts = current.retry_count + 1
        self.next(self.caught)

    @catch(var="problem")
    @step
    def caught(self):
        raise KeyError("caught on purpose")
        self.next(self.slow)  # never reached; the graph needs it

    @catch(var="timed_out")
    @timeout(seconds=1)
    @step
    def slow(self):
        time.sleep(30)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DecoratedFlow()
