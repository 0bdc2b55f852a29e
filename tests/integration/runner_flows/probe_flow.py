"""A flow that records what a task sees: parameters, `current`, foreach values, logs."""

import os
import subprocess
import sys

from kflow import FlowSpec, JSONType, Parameter, current, step


class ProbeFlow(FlowSpec):
    """start ⇒ fan (foreach over `items`) → gather (join) → end."""

    greeting = Parameter("greeting", default="hello")
    count = Parameter("count", default=2)
    config = Parameter("config", type=JSONType, default='{"k": 1}')
    UNIT = "cm"  # a constant

    @step
    def start(self):
        self.seen_start = {
            "greeting": self.greeting, "count": self.count, "config": self.config,
            "flow_name": current.flow_name, "run_id": current.run_id,
            "step_name": current.step_name, "task_id": current.task_id,
            "retry_count": current.retry_count, "origin_run_id": current.origin_run_id,
            "namespace": current.namespace, "username": current.username,
            "tags": list(current.tags or ()),
            "parameter_names": list(current.parameter_names or ()),
            "is_running_flow": current.is_running_flow, "pathspec": current.pathspec,
        }
        self.items = [f"{self.greeting}-{i}" for i in range(self.count)]
        self.shared = [1, 2, 3]
        print("start says hi")
        print("start warns", file=sys.stderr)
        self.next(self.fan, foreach="items")

    @step
    def fan(self):
        self.value = (self.index, self.input, self.greeting, self.UNIT)
        self.stack = self.foreach_stack()
        self.shared.append(self.index)  # changed in place: must be saved again
        os.write(1, b"fd-level write\n")
        subprocess.run(["echo", f"subprocess of fan {self.index}"], check=True)
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.values = [i.value for i in inputs]
        self.shareds = [i.shared for i in inputs]
        self.greeting_in_join = self.greeting
        self.next(self.end)

    @step
    def end(self):
        self.final = (self.values, self.greeting, self.count, current.pathspec)
        print("the end")


if __name__ == "__main__":
    raise SystemExit("ProbeFlow ran as __main__: the runner must import it as a module")
