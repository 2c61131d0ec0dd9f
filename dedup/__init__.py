"""ray-image-dedup: find duplicate and near-duplicate images in large corpora."""

__version__ = "0.1.0"
