"""The scale benchmarks' sampled search (bench.sampled_search): every k-th vid queries, against all the vectors."""
import numpy as np
from helpers import planted

from bench.sampled_search import sampled_edges


def test_sampled_edges_are_the_exact_edges_of_the_sampled_queries(small_tiles):
    x = planted(900, seed=3)
    vids = np.arange(900)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    i, j = np.nonzero(np.triu(sims >= 0.3, 1))
    want, nearest = set(zip(i.tolist(), j.tolist())), sims.max(axis=1)
    for products in ("float32", "int8"):
        e = sampled_edges(vids, x, 0.3, every=5, products=products)
        sampled = {k for k in want if k[0] % 5 == 0 or k[1] % 5 == 0}
        assert set(zip(e["a"].tolist(), e["b"].tolist())) == sampled and len(sampled) > 10
        assert np.allclose(e["nearest"][::5][nearest[::5] >= 0.3], nearest[::5][nearest[::5] >= 0.3], atol=1e-5)
        assert np.isinf(e["nearest"][1::5]).all()  # only the sampled rows
