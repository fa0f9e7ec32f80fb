"""POPE (Li et al., EMNLP 2023): yes/no object-existence questions on COCO val2014, scored as the benchmark's
own evaluate.py does (docs/evaluation.md)."""
