"""Stage `union` (a learned model with a hash, ``--model sscd+multihash``): one edge set from two signals.

In:  the edges of `search` (the model's cosine >= --threshold) and of `search_hash` (the hash within
     --max-bits).
Out: the union, each pair once; ``sim`` stays the model's cosine (computed here for pairs only the hash
     found), so the manifest's similarities mean one thing. The summary counts the edges found by each
     signal and by both.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from dedup.stages.base import Stage, StageContext, StageResult


class UnionStage(Stage):
    name = "union"
    after = ("decode_embed", "search", "search_hash")

    def run(self, ctx: StageContext) -> StageResult:
        edges, counts = combine_edges(ctx.value("search"), ctx.value("search_hash"), ctx.value("decode_embed"))
        return StageResult(edges, counts)


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
