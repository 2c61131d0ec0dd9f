"""The exact search's kernels (dedup.ops.search): float32 and int8 products find the same pairs with the
same similarities, across tiles, as a plain matrix product says (the sampled search, the scale benchmarks',
is tested beside them in tests/bench)."""
import numpy as np
import pytest

from helpers import planted

from dedup.ops import search


def truth(vids: np.ndarray, x: np.ndarray, threshold: float) -> tuple[dict, np.ndarray]:
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    i, j = np.nonzero(np.triu(sims >= threshold, 1))
    pairs = {(min(vids[p], vids[q]), max(vids[p], vids[q])): sims[p, q] for p, q in zip(i, j)}
    return pairs, sims.max(axis=1)


@pytest.mark.parametrize("products", ["float32", "int8"])
def test_exact_edges_find_every_pair_once_with_its_float32_similarity(small_tiles, products):
    x = planted(1000)
    vids = np.random.default_rng(1).permutation(5000)[:1000]  # ids in no order
    want, nearest = truth(vids, x, 0.3)
    e = search.exact_edges(vids, x, 0.3, products)
    got = dict(zip(zip(e["a"].tolist(), e["b"].tolist()), e["sim"].tolist()))
    assert len(want) > 50 and set(got) == set(want) and len(got) == len(e["a"])
    assert all(a < b for a, b in got) and max(abs(got[k] - want[k]) for k in want) < 1e-5
    above = nearest >= 0.3
    assert np.allclose(e["nearest"][above], nearest[above], atol=1e-5)  # exact where an edge sets it
    tol = 1e-5 if products == "float32" else search.Int8Products(x).margin
    assert np.abs(e["nearest"] - nearest).max() <= tol and search.Int8Products(x).margin < 0.1  # 96-d: coarser steps than 512-d


def test_int8_margin_covers_the_rounding_on_spiky_vectors(small_tiles):
    x = planted(600, seed=2)
    x[:, 0] *= 20  # one dominant coordinate: a coarse int8 scale for all the others
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    want, _ = truth(np.arange(600), x, 0.5)
    e = search.exact_edges(np.arange(600), x, 0.5, "int8")
    assert set(zip(e["a"].tolist(), e["b"].tolist())) == set(want)


def test_products_must_be_known():
    with pytest.raises(ValueError, match="products must be"):
        search.make_products(np.zeros((2, 4), np.float32), "int4")


def test_the_kept_matmul_integer_model_is_what_onnx_builds():
    assert search.matmul_integer_model() == search.MATMUL_INTEGER_ONNX
