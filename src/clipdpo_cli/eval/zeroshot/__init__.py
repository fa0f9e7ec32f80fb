"""Caption-based zero-shot classification (paper Sec. 6.2, Table 3): datasets, classifier, pipeline."""
