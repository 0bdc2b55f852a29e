"""kflow's kopf operator: schedules FlowRuns as pods (built by later work)."""
