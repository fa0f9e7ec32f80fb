"""Evaluation: AMBER and caption-based zero-shot classification."""
