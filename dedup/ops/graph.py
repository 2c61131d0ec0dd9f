"""Stage `graph`: edges -> connected components -> clusters, each with one canonical, guarded against chaining.

In:  ``n`` vectors (vids 0..n-1, one per distinct content: exact copies already share a vid), edge arrays
     ``a``, ``b``, ``sim`` (numpy, any order, duplicates allowed), and ``rank``: each vid's place in the
     canonical policy's order (lower is preferred; see :mod:`dedup.ops.canonical`).
Out: :class:`Clusters`: for every vid its ``component`` (raw connected component), its ``canonical`` vid
     and its ``similarity`` to that canonical.

The chaining guard. Connected components chain: A~B and B~C put A and C together although A and C may be
far apart, and removing C because A is kept would lose an image that has no copy. So a vid joins the
cluster of a canonical only if it has an edge of its own to that canonical (similarity >= threshold);
exact copies join with similarity 1. The rule, applied until every vid is placed:

1. take the components of the graph over the vids not yet placed (edges among them only);
2. in each, the canonical is the vid the policy prefers;
3. the canonical and every vid with a direct edge to it form a cluster and are placed;
4. the rest (chained in only through others) go round again, among themselves.

So every image that is removed is itself a near-copy of the one that is kept, and an image with no copy
is never removed. All of it runs on numpy/scipy arrays, never Python objects per edge.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


@dataclass
class Clusters:
    component: np.ndarray  # raw connected component label per vid
    canonical: np.ndarray  # canonical vid per vid
    similarity: np.ndarray  # similarity of the vid to its canonical (1.0 for the canonical itself)
    rounds: int  # the most clusters the chaining guard split one component into (1: nothing split off)
    first_choice: np.ndarray  # the policy's canonical of the vid's whole component (round 1)

    @property
    def split_off(self) -> int:
        """Vids that chaining put in a component but the guard placed under another canonical."""
        return int(np.sum(self.canonical != self.first_choice))


def dedupe_edges(a: np.ndarray, b: np.ndarray, sim: np.ndarray, n: int):
    """Unique undirected edges (a < b, no self-loops), keeping the highest similarity of duplicates."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    sim = np.asarray(sim, np.float32)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keep = lo != hi
    lo, hi, sim = lo[keep], hi[keep], sim[keep]
    if len(lo) == 0:
        return lo, hi, sim
    key = lo * np.int64(n) + hi
    # One sort of the int64 keys, then the highest similarity of each run of equal keys (a lexsort on (key,
    # -sim) sorts two columns to the same end); edges already unique skip the reduction.
    order = np.argsort(key)
    key, lo, hi, sim = key[order], lo[order], hi[order], sim[order]
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    if first.all():
        return lo, hi, sim
    starts = np.flatnonzero(first)
    return lo[starts], hi[starts], np.maximum.reduceat(sim, starts)


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    m = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n)).tocsr()
    return connected_components(m, directed=False)[1].astype(np.int64)


def assign_clusters(n: int, a: np.ndarray, b: np.ndarray, sim: np.ndarray, rank: np.ndarray) -> Clusters:
    """The chaining guard (module docstring), in one pass in policy order over a CSR adjacency.

    "In each component the preferred vid is the canonical; it and its direct neighbours form a cluster; the
    rest go round again among themselves" gives the same clusters as: take the vids in the policy's order;
    a vid not yet placed becomes a canonical and takes every neighbour not yet placed. (Components never
    interact, and within one the next canonical is always the preferred vid not yet placed.) One pass is
    O(vids + edges) whatever the graph; rounds of connected components over the remaining edges took
    thousands of rounds on a sparse giant component (1M vids, random edges).
    """
    a, b, sim = dedupe_edges(a, b, sim, n)
    rank = np.asarray(rank, np.int64)
    component = _components(n, a, b)
    canonical = np.full(n, -1, np.int64)
    similarity = np.full(n, np.nan, np.float32)
    # the policy's choice for each whole component (what chaining alone would keep)
    order = np.lexsort((rank, component))
    is_first = np.ones(n, bool)
    is_first[1:] = component[order][1:] != component[order][:-1]
    best = np.empty(int(component.max()) + 1 if n else 0, np.int64)
    best[component[order][is_first]] = order[is_first]
    first_choice = best[component] if n else np.zeros(0, np.int64)
    # symmetric CSR adjacency with similarities
    rows = np.concatenate([a, b])
    cols = np.concatenate([b, a])
    sims = np.concatenate([sim, sim])
    by_row = np.argsort(rows, kind="stable")
    cols, sims = cols[by_row], sims[by_row]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    del rows, by_row
    lone = indptr[1:] == indptr[:-1]
    canonical[lone] = np.flatnonzero(lone)
    similarity[lone] = 1.0
    for v in np.argsort(rank, kind="stable"):
        if canonical[v] >= 0:
            continue
        canonical[v] = v
        similarity[v] = 1.0
        lo, hi = indptr[v], indptr[v + 1]
        nb = cols[lo:hi]
        free = canonical[nb] < 0
        canonical[nb[free]] = v
        similarity[nb[free]] = sims[lo:hi][free]
    # the most clusters one component was split into (1: the guard split nothing off)
    per_component = np.bincount(component[canonical == np.arange(n)], minlength=len(best)) if n else np.zeros(0, np.int64)
    rounds = int(per_component.max()) if len(per_component) else 0
    return Clusters(component, canonical, similarity, rounds, first_choice)


def lone_copies(clusters: Clusters, a: np.ndarray, b: np.ndarray, sim: np.ndarray, is_ref: np.ndarray) -> tuple[np.ndarray, ...]:
    """(lone, kept, sim): every image alone in its cluster (not a reference image) with an edge to the kept
    image of a cluster of two or more (not a reference image), that kept image (the most similar of
    several) and the edge's similarity, in vid order. The chaining guard places an image under the
    canonical it has an edge to; a kept image chosen later among a cluster's versions (stage `canonical`)
    can be one that such an image is a copy of."""
    canonical = clusters.canonical
    n = len(canonical)
    size = np.bincount(canonical, minlength=n)
    alone = (size[canonical] == 1) & ~is_ref
    kept = (canonical == np.arange(n)) & (size >= 2) & ~is_ref
    a, b, sim = np.asarray(a, np.int64), np.asarray(b, np.int64), np.asarray(sim, np.float32)
    x, y, s = np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([sim, sim])
    hit = alone[x] & kept[y]
    x, y, s = x[hit], y[hit], s[hit]
    order = np.lexsort((y, -s, x))  # per lone image, the most similar kept image first
    first = np.ones(len(order), bool)
    first[1:] = x[order][1:] != x[order][:-1]
    pick = order[first]
    return x[pick], y[pick], s[pick]


def place_under(clusters: Clusters, vids: np.ndarray, under: np.ndarray, sims: np.ndarray) -> Clusters:
    """The clusters with each of ``vids`` (a cluster of one) placed under the kept image ``under`` at its
    edge's similarity ``sims``."""
    import dataclasses

    if not len(vids):
        return clusters
    canonical, similarity = clusters.canonical.copy(), clusters.similarity.copy()
    canonical[vids], similarity[vids] = under, sims
    return dataclasses.replace(clusters, canonical=canonical, similarity=similarity)
