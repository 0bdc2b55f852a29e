"""The embedded local cluster: a real control plane plus kflow's process node.

`kflow cluster up|down|status` live here. This package imports nothing from
the rest of kflow, so it can be used (and tested) alone.
"""
