"""CHAIR (Rohrbach et al., EMNLP 2018): object hallucination of free-form descriptions against COCO's
annotations, the rule-based protocol of Object HalBench (docs/evaluation.md)."""
