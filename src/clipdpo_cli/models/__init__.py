"""Model loading: CLIP scorers (open_clip), LVLMs and LLMs (transformers); names, aliases, local paths."""
