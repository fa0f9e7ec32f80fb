"""Builders of tiny random models of the real architecture classes (tests, demo, benchmarks)."""
