"""Stage `union`: one edge set from the searches of a run that has more than one.

In:  the edges of `search` (the model's cosine >= --threshold; absent with --reference-only), of
     `search_hash` (a learned model with a hash: the hash within --max-bits), and of `search_reference`
     plus the byte-identical copies of reference images (`reference`: similarity 1), and of `inner` (the
     picture inside one image against the other: its cosine).
Out: the union, each pair once; ``sim`` stays the model's cosine (computed here for pairs only the hash
     found; for a pair only `inner` found, the picture's), so the manifest's similarities mean one thing.
     The summary counts the edges found by each.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from dedup.stages.base import Stage, StageContext, StageResult


class UnionStage(Stage):
    name = "union"

    def __init__(self, searches: tuple[str, ...]):
        """``searches``: the stages whose edges are joined (search, search_hash, search_reference, inner)."""
        self.searches = tuple(searches)
        self.after = ("decode_embed", "reference", *self.searches) if "search_reference" in self.searches else ("decode_embed", *self.searches)

    def needs_ray(self, ctx: StageContext) -> bool:
        return False  # tables in the driver

    def run(self, ctx: StageContext) -> StageResult:
        from dedup.ops.graph import dedupe_edges
        from dedup.ops.search import EDGE_SCHEMA

        metrics: dict = {}
        edges = ctx.value("search") if "search" in self.searches else EDGE_SCHEMA.empty_table()
        if "search_hash" in self.searches:
            edges, counts = combine_edges(edges, ctx.value("search_hash"), ctx.value("decode_embed"))
            metrics.update(counts)
        if "search_reference" in self.searches:
            ref_edges, _ = ctx.value("search_reference")
            exact = ctx.value("reference").exact
            a = np.concatenate([edges["a"].to_numpy(), ref_edges["a"].to_numpy(), np.fromiter(exact.keys(), np.int64, len(exact))])
            b = np.concatenate([edges["b"].to_numpy(), ref_edges["b"].to_numpy(), np.fromiter(exact.values(), np.int64, len(exact))])
            s = np.concatenate([edges["sim"].to_numpy(), ref_edges["sim"].to_numpy(), np.ones(len(exact), np.float32)])
            ua, ub, us = dedupe_edges(a, b, s, int(max(a.max(initial=0), b.max(initial=0))) + 1)
            edges = pa.table({"a": ua, "b": ub, "sim": us}, schema=EDGE_SCHEMA)
            metrics.update(reference_edges=int(ref_edges.num_rows), exact_reference_edges=len(exact))
        if "inner" in self.searches:
            inner = ctx.value("inner").edges
            edges = _joined(edges, inner)
            metrics["inner_edges"] = int(inner.num_rows)
        metrics["edges"] = int(edges.num_rows)
        return StageResult(edges, metrics)


def _joined(edges: pa.Table, more: pa.Table) -> pa.Table:
    """``edges`` and the pairs of ``more`` they do not have (a pair both have keeps its similarity in ``edges``:
    the two whole images' cosine)."""
    from dedup.ops.search import EDGE_SCHEMA

    a, b, s = (np.concatenate([edges[k].to_numpy(), more[k].to_numpy()]) for k in ("a", "b", "sim"))
    n = int(max(a.max(initial=0), b.max(initial=0))) + 1
    new = np.ones(len(a), bool)
    new[len(edges):] = ~np.isin(more["a"].to_numpy() * n + more["b"].to_numpy(), edges["a"].to_numpy() * n + edges["b"].to_numpy())
    order = np.lexsort((b[new], a[new]))
    return pa.table({"a": a[new][order], "b": b[new][order], "sim": s[new][order]}, schema=EDGE_SCHEMA)


def combine_edges(model_edges: pa.Table, hash_edges: pa.Table, vectors) -> tuple[pa.Table, dict]:
    from dedup.ops.search import EDGE_SCHEMA

    ma, mb = model_edges["a"].to_numpy(), model_edges["b"].to_numpy()
    ha, hb = hash_edges["a"].to_numpy(), hash_edges["b"].to_numpy()
    n = int(max(ma.max(initial=0), mb.max(initial=0), ha.max(initial=0), hb.max(initial=0))) + 1
    only = ~np.isin(ha * n + hb, ma * n + mb)
    oa, ob = ha[only], hb[only]
    sims = np.zeros(len(oa), np.float32)
    if len(oa):
        vids = np.unique(np.concatenate([oa, ob]))
        vecs = vectors.of(vids)
        ia, ib = np.searchsorted(vids, oa), np.searchsorted(vids, ob)
        sims = np.minimum(np.einsum("ij,ij->i", vecs[ia], vecs[ib]), 1.0).astype(np.float32)
    edges = pa.table({"a": np.concatenate([ma, oa]), "b": np.concatenate([mb, ob]),
                      "sim": np.concatenate([model_edges["sim"].to_numpy(), sims])}, schema=EDGE_SCHEMA)
    both = int(len(ha) - len(oa))
    return edges, {"model_edges": int(len(ma)), "hash_edges": int(len(ha)), "found_by_both": both, "hash_only": int(len(oa))}
