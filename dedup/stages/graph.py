"""Stage `graph`: edges -> connected components -> clusters, each with one canonical, guarded against chaining.

In:  ``n`` vectors (vids 0..n-1, one per distinct content: exact copies already share a vid), edge arrays
     ``a``, ``b``, ``sim`` (numpy, any order, duplicates allowed), and ``rank``: each vid's place in the
     canonical policy's order (lower is preferred; see :mod:`dedup.stages.canonical`).
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
    rounds: int  # how many rounds the chaining guard needed
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
    order = np.lexsort((-sim, key))
    key, lo, hi, sim = key[order], lo[order], hi[order], sim[order]
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    return lo[first], hi[first], sim[first]


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    m = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n)).tocsr()
    return connected_components(m, directed=False)[1].astype(np.int64)


def assign_clusters(n: int, a: np.ndarray, b: np.ndarray, sim: np.ndarray, rank: np.ndarray) -> Clusters:
    a, b, sim = dedupe_edges(a, b, sim, n)
    rank = np.asarray(rank, np.int64)
    component = _components(n, a, b)
    canonical = np.full(n, -1, np.int64)
    similarity = np.full(n, np.nan, np.float32)
    active_nodes = np.ones(n, bool)
    ea, eb, es = a, b, sim
    rounds = 0
    first_choice = np.zeros(0, np.int64)
    while active_nodes.any():
        rounds += 1
        idx = np.flatnonzero(active_nodes)
        local = np.full(n, -1, np.int64)
        local[idx] = np.arange(len(idx))
        labels = _components(len(idx), local[ea], local[eb])
        # preferred vid per label: the one with the smallest rank
        order = np.lexsort((rank[idx], labels))
        is_first = np.ones(len(order), bool)
        is_first[1:] = labels[order][1:] != labels[order][:-1]
        best = np.empty(labels.max() + 1, np.int64)
        best[labels[order][is_first]] = idx[order][is_first]
        canon_of = np.full(n, -1, np.int64)
        canon_of[idx] = best[labels]
        if rounds == 1:
            first_choice = canon_of.copy()
        # the canonicals themselves
        canonical[best] = best
        similarity[best] = 1.0
        # direct neighbours of their component's canonical
        to_b = canon_of[ea] == eb
        canonical[ea[to_b]] = eb[to_b]
        similarity[ea[to_b]] = es[to_b]
        to_a = canon_of[eb] == ea
        canonical[eb[to_a]] = ea[to_a]
        similarity[eb[to_a]] = es[to_a]
        active_nodes = canonical < 0
        live = active_nodes[ea] & active_nodes[eb]
        ea, eb, es = ea[live], eb[live], es[live]
    return Clusters(component, canonical, similarity, rounds, first_choice)
