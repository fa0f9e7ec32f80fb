"""The AMBER hallucination benchmark (Wang et al. 2023): loading, response generation and scoring.

Scoring follows the counting of the benchmark's official scorer (its inference.py) exactly; the NLP parts
(tagger, lemmatizer, word similarity) are pluggable so that it runs offline (see docs/amber.md).
"""
