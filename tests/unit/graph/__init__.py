"""Tests of the flow graph: building it from source, checking it, drawing it."""
