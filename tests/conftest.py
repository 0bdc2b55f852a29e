"""Shared test configuration: make `tests.*` helpers importable."""
