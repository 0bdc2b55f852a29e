"""Hybrid runs: `python flow.py run --local` with steps that run as pods on the cluster.

`session` puts one together (deploy, a FlowRun driven by this process, the loop),
`pods` runs attempts as step pods, `routing` splits a run's attempts between pods and
local processes by step.
"""

from kflow.hybrid.session import POD_DECORATORS, pod_steps, run_hybrid

__all__ = ["POD_DECORATORS", "pod_steps", "run_hybrid"]
