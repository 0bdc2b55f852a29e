"""A flow run by the operator every minute (e2e of @schedule); the test redeploys a
copy without the @schedule line to check that removing it takes effect at once."""

from kflow import FlowSpec, current, schedule, step


@schedule(cron="* * * * *", concurrency_policy="Forbid", starting_deadline_seconds=50,
          successful_runs_history_limit=1)
class ScheduledFlow(FlowSpec):
    """start → end; records that it was not triggered."""

    @step
    def start(self):
        self.triggered = current.trigger is not None
        self.next(self.end)

    @step
    def end(self):
        print(f"scheduled run {current.run_id}")


if __name__ == "__main__":
    ScheduledFlow()
