"""``python -m bench --cluster-order``: the same stored edges clustered in the largest order and with the
pictured images last, scored against the truth."""
import numpy as np

from dedup.ops.canonical import policy_rank


def test_the_pictured_last_order_keeps_a_photos_copies_with_it():
    from bench.cluster_order import order_scores

    # a photo (0), its screenshot (1: the largest, pictured), a crop (2) matching the photo only; another photo (3)
    pixels, nbytes = np.array([100, 400, 60, 90]), np.array([10, 40, 6, 9])
    rank = policy_rank(["pixels", "bytes", "path"], pixels, nbytes, np.arange(4))
    a, b, s = np.array([0, 0]), np.array([1, 2]), np.array([0.6, 0.7], np.float32)
    r = order_scores(4, a, b, s, rank, np.array([1]), {0: "p", 1: "p", 2: "p", 3: "q"})
    assert r["largest"] == {"precision": 1.0, "recall": round(1 / 3, 4), "split_off": 1}
    assert r["pictured last"] == {"precision": 1.0, "recall": 1.0, "split_off": 0}
