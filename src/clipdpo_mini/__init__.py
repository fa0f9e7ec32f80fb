"""A miniature world where CLIP-DPO visibly works (issue 14): `make repro-mini`, tests/e2e/test_mini.py.

32 px scenes of 1-3 coloured objects on a 2x2 grid, with their true captions (world.py); a tiny open_clip
ranker trained contrastively on the true captions (ranker.py); a tiny LLaVA captioner trained by SFT on
captions with a planted language-prior bias, its vision tower initialised from the ranker's image encoder
(captioner.py); ground-truth counting of hallucinated objects (truth.py). The models are written in the
same formats as real checkpoints and the method itself runs through the real `clipdpo` commands
(repro.py drives them). `python -m clipdpo_mini --help` lists the world-building commands.
"""
