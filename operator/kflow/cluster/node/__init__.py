"""kflow's process node: stands in for kubelet and the container runtime."""
