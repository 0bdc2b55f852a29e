"""The upstream flow of the @trigger_on_finish e2e: its success starts TriggeredFlow."""

from kflow import FlowSpec, Parameter, step


class TriggerSourceFlow(FlowSpec):
    """start → end, leaving an artifact for the triggered run to read."""

    value = Parameter("value", default="from-upstream")

    @step
    def start(self):
        self.message = f"{self.value}!"
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TriggerSourceFlow()
