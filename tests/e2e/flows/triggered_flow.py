"""The downstream flow of the @trigger_on_finish e2e: reads the run that triggered it."""

from kflow import FlowSpec, current, step, trigger_on_finish


@trigger_on_finish(flow="TriggerSourceFlow")
class TriggeredFlow(FlowSpec):
    """start (reads current.trigger) → end (current.trigger in another step too)."""

    @step
    def start(self):
        upstream = current.trigger.run
        self.trigger_run_id = upstream.id
        self.trigger_message = upstream.data.message
        self.trigger_event = current.trigger.event.name
        self.next(self.end)

    @step
    def end(self):
        self.end_trigger_run_id = current.trigger.run.id
        assert [run.id for run in current.trigger.runs] == [self.end_trigger_run_id]


if __name__ == "__main__":
    TriggeredFlow()
