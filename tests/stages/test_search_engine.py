"""The search engine chosen at each crossover (--exact-below, --local-below, --exact-products), at small sizes
on Milvus Lite: each engine says why it was chosen, and every engine finds the same pairs, all of them."""
import pytest

from bench.scale import scale_run

N = 1500
KW = dict(dim=64, threshold=0.5, copy_cos=(0.6, 0.99), recall_sample=300)


@pytest.mark.slow
def test_each_crossover_picks_its_engine_and_all_find_the_same_pairs(ray_local, tmp_path):
    exact = scale_run(N, tmp_path, exact_below=N + 1, local_below=N + 1, label="exact", index="AUTO", **KW)
    driver = scale_run(N, tmp_path, exact_below=N, local_below=N + 1, search_batch=256, label="driver", **KW)
    actors = scale_run(N, tmp_path, exact_below=N, local_below=N, label="actors", **KW)
    int8 = scale_run(N, tmp_path, exact_below=N + 1, local_below=N + 1, exact_products="int8", label="int8", index="AUTO", **KW)

    assert exact["engine"] == "exact" and "exact in memory" in exact["search"]["why"]
    assert exact["search"]["products"] == "float32" and int8["search"]["products"] == "int8"  # below INT8_FROM, or asked
    assert driver["engine"] == "milvus: driver" and "from the driver below --local-below" in driver["search"]["why"]
    assert driver["search"]["requests"] == "topk, 256 queries each"
    assert actors["engine"] == "milvus: 2 search actors" and "search actors at or above --local-below" in actors["search"]["why"]
    assert actors["search"]["requests"] == "topk, 1024 queries each"  # Milvus Lite's default request size
    assert exact["store"].get("background") and not driver["store"].get("background")
    # Searched exactly, the Lite collection gets FLAT under AUTO: no ANN build in the background store.
    assert exact["store"]["index"]["type"] == "FLAT" and "searched exactly" in exact["store"]["index"]["why"]
    for r in (exact, driver, actors, int8):
        assert r["planted_pairs"] > 50 and r["recall"] == 1.0
        assert r["exact_pairs_of_sample"] > 0 and r["recall_exact"] == 1.0
    assert exact["edges"] == driver["edges"] == actors["edges"] == int8["edges"]


def test_sscd_like_planted_pairs_spread_down_past_the_threshold():
    import numpy as np

    from bench.scale import exact_pairs_of, planted_pairs, planted_vectors

    vecs, groups = planted_vectors(2000, dim=128, copy_cos=(0.45, 0.99), seed=3)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = [float(vecs[a] @ vecs[b]) for a, b in planted_pairs(vecs, groups, -1.0)]
    assert min(sims) < 0.3 < 0.9 < max(sims)  # from clear copies down below an SSCD-like threshold
    truth = planted_pairs(vecs, groups, 0.3)
    every = exact_pairs_of(vecs, np.arange(2000), 0.3)
    assert truth <= every  # the brute force finds every planted pair (and any chance pair above the threshold)
