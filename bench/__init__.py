"""The benchmarks (``python -m bench`` from the repository root; ``make bench`` and the other bench targets):
the labelled corpus and its scorer, the peers side by side, the AugLy hard cases, the kept-image model's
training, speed and scale. A developer tool, not installed with the ``dedup`` package."""
