"""Benchmark: a labelled near-duplicate corpus, a scorer, and threshold sweeps (issue 3, in progress)."""
