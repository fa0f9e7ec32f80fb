"""clipdpo: CLIP-DPO as composable Unix-style commands over JSONL records."""

__version__ = "0.1.0"
