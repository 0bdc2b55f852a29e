"""Unit tests of kflow.store (local backend and pure parts)."""
