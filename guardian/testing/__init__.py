"""Helpers that run real dependencies for tests, demos and benchmarks (no mocks)."""
