"""Graph and canonical stages: components, the chaining guard, the policy, determinism."""
import numpy as np

from dedup.ops.canonical import policy_rank
from dedup.ops.graph import assign_clusters, dedupe_edges


def edges(*triples):
    a, b, s = zip(*triples) if triples else ((), (), ())
    return np.array(a, np.int64), np.array(b, np.int64), np.array(s, np.float32)


def by_path(n):
    return policy_rank(["path"], np.zeros(n), np.zeros(n), np.arange(n))


def test_no_edges_every_vid_alone():
    c = assign_clusters(3, *edges(), by_path(3))
    assert list(c.canonical) == [0, 1, 2]
    assert np.all(c.similarity == 1.0)


def test_chain_splits_off_what_is_not_similar_to_the_canonical():
    # 0 ~ 1 ~ 2 ~ 3, but 0 and 2, 0 and 3 are far apart: one component, and the guard must not let
    # 2 and 3 be removed for a canonical they do not resemble.
    c = assign_clusters(4, *edges((0, 1, 0.95), (1, 2, 0.93), (2, 3, 0.97)), by_path(4))
    assert len(set(c.component)) == 1
    assert c.canonical[0] == 0 and c.canonical[1] == 0
    assert c.canonical[2] == 2 and c.canonical[3] == 2  # second round: 2 and 3 among themselves
    assert c.similarity[1] == np.float32(0.95) and c.similarity[3] == np.float32(0.97)
    assert c.split_off == 2 and c.rounds == 2


def test_every_member_has_a_direct_edge_to_its_canonical():
    rng = np.random.default_rng(0)
    n = 300
    a = rng.integers(0, n, 900)
    b = rng.integers(0, n, 900)
    s = rng.uniform(0.9, 1.0, 900).astype(np.float32)
    rank = rng.permutation(n)
    c = assign_clusters(n, a, b, s, rank)
    pairs = {(min(x, y), max(x, y)) for x, y in zip(a, b)}
    for v in range(n):
        k = c.canonical[v]
        assert k == v or (min(v, k), max(v, k)) in pairs
        assert c.canonical[k] == k  # canonicals are their own canonical
    # components only ever split, never merge
    assert all(c.component[v] == c.component[c.canonical[v]] for v in range(n))


def test_star_is_one_cluster_around_its_centre():
    star = [(0, i, 0.91 + i / 1000) for i in range(1, 50)]
    rank = policy_rank(["pixels", "path"], np.r_[1000, np.ones(49)], np.zeros(50), np.arange(50))
    c = assign_clusters(50, *edges(*star), rank)
    assert set(c.canonical) == {0}
    # if the policy prefers a leaf, the other leaves are not similar to it: they split off
    rank_leaf = policy_rank(["pixels", "path"], np.r_[1, 1000, np.ones(48)], np.zeros(50), np.arange(50))
    c2 = assign_clusters(50, *edges(*star), rank_leaf)
    assert c2.canonical[1] == 1 and c2.canonical[0] == 1
    assert len(set(c2.canonical)) > 1


def test_large_clique_beyond_any_search_limit():
    n = 3000
    a, b = np.triu_indices(60, 1)
    # a 60-clique plus a 2940-long path of pairs: components and guard on arrays, not Python objects
    path_a = np.arange(60, n - 1)
    c = assign_clusters(
        n,
        np.r_[a, path_a],
        np.r_[b, path_a + 1],
        np.r_[np.full(len(a), 0.99), np.full(len(path_a), 0.95)].astype(np.float32),
        by_path(n),
    )
    assert set(c.canonical[:60]) == {0}
    assert c.canonical[60] == 60 and c.canonical[61] == 60 and c.canonical[62] == 62


def test_dedupe_edges_keeps_max_and_drops_self_loops():
    a, b, s = dedupe_edges(np.array([1, 2, 3, 1]), np.array([2, 1, 3, 2]), np.array([0.9, 0.95, 1.0, 0.92], np.float32), 4)
    assert list(zip(a, b)) == [(1, 2)] and s[0] == np.float32(0.95)


def test_policy_default_pixels_then_bytes_then_path():
    pixels = np.array([100, 400, 400, 400])
    nbytes = np.array([9, 5, 7, 7])
    rank = policy_rank(["pixels", "bytes", "path"], pixels, nbytes, np.arange(4))
    assert list(np.argsort(rank)) == [2, 3, 1, 0]
    rank = policy_rank(["bytes"], pixels, nbytes, np.arange(4))
    assert list(np.argsort(rank)) == [0, 2, 3, 1]
    rank = policy_rank(["path"], pixels, nbytes, np.arange(4))
    assert list(np.argsort(rank)) == [0, 1, 2, 3]


def test_deterministic_regardless_of_edge_order():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 100, 400), rng.integers(0, 100, 400)
    s = rng.uniform(0.9, 1, 400).astype(np.float32)
    rank = rng.permutation(100)
    c1 = assign_clusters(100, a, b, s, rank)
    p = rng.permutation(400)
    c2 = assign_clusters(100, b[p], a[p], s[p], rank)
    assert np.array_equal(c1.canonical, c2.canonical)
    assert np.array_equal(c1.similarity, c2.similarity)


def test_an_image_with_a_picture_inside_is_not_a_clusters_centre():
    """A photo (0), its screenshot (1: the largest, a picture found inside it) and a crop (2) that matches the
    photo only. Formed in the largest order, the screenshot is the centre and the crop, no copy of it, is
    split off; with the pictured images last the photo is the centre and all three are one cluster."""
    from dedup.stages.graph import forming_order

    pixels, nbytes = np.array([100, 400, 60]), np.array([10, 40, 6])
    largest = policy_rank(["pixels", "bytes", "path"], pixels, nbytes, np.arange(3))
    e = edges((0, 1, 0.6), (0, 2, 0.7))
    assert list(assign_clusters(3, *e, largest).canonical) == [1, 1, 2]
    assert list(assign_clusters(3, *e, forming_order(largest, np.array([1]))).canonical) == [0, 0, 0]
    is_ref = np.array([False, False, True])  # a reference image still comes first of all
    assert list(forming_order(largest, np.array([1]), is_ref)) == [1, 2, 0]
    assert forming_order(largest) is largest  # nothing pictured, no reference: the policy's order


def test_lone_copies_are_alone_and_have_an_edge_to_a_kept_image():
    """0 is the graph's canonical of {0, 1, 2}; the kept image moved to 1 (stage canonical); 3 has an edge to
    1 and 2 (members, not kept) and was alone; 4 has edges to 1 and to 5 (kept, the pair {5, 6}): the more
    similar kept image is its place; 7 is a reference image (never placed); 8 has an edge to 3 only (alone)."""
    import dataclasses

    from dedup.ops.graph import lone_copies, place_under

    a, b, s = edges((0, 1, 0.9), (0, 2, 0.9), (1, 2, 0.9), (1, 3, 0.8), (2, 3, 0.95), (5, 6, 0.9), (4, 1, 0.7), (4, 5, 0.75),
                    (7, 1, 0.99), (8, 3, 0.99))
    c = assign_clusters(9, *edges((0, 1, 0.9), (0, 2, 0.9), (5, 6, 0.9)), by_path(9))
    c = dataclasses.replace(c, canonical=np.array([1, 1, 1, 3, 4, 5, 5, 7, 8]))
    is_ref = np.zeros(9, bool)
    is_ref[7] = True
    lone, kept, sim = lone_copies(c, a, b, s, is_ref)
    assert lone.tolist() == [3, 4] and kept.tolist() == [1, 5] and np.allclose(sim, [0.8, 0.75])
    placed = place_under(c, lone, kept, sim)
    assert placed.canonical.tolist() == [1, 1, 1, 1, 5, 5, 5, 7, 8] and placed.similarity[3] == np.float32(0.8)
    assert c.canonical[3] == 3  # the input is not changed
