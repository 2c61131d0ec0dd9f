"""Stage `search_reference`: the new images' vectors searched against the reference's.

In:  the new vectors (`decode_embed`) and the references (`reference`).
Out: edges (``a`` a new vid, ``b`` a reference vid, ``sim`` >= the threshold), and each new vid's most
     similar reference image (``nearest_reference.parquet``, for the report's histogram, down to the floor).

Two engines: the reference's vectors read from its ``vectors/`` Parquet in batches and compared exactly
with the new ones (numpy; the reference is only read), or, for a reference stored on a Milvus server, a
range search of its collection as it is (``--milvus-uri``; the collection is neither rebuilt nor dropped).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from dedup.ops.models import embeddings_to_numpy
from dedup.ops.search import EDGE_SCHEMA, NEAREST, NEAREST_SCHEMA, SATURATED
from dedup.stages.base import Signal, Stage, StageContext, StageResult

BATCH = 65_536  # reference vectors compared at a time: bounded memory at any reference size


class SearchReferenceStage(Stage):
    name = "search_reference"
    items = "queries"
    after = ("decode_embed", "reference")

    def __init__(self, signal: Signal):
        self.signal = signal

    def run(self, ctx: StageContext) -> StageResult:
        refs, vectors, sig = ctx.value("reference"), ctx.value("decode_embed"), self.signal
        new = vectors.table(sig.column) if vectors.ok_count else None
        if new is None or not refs.runs:
            return StageResult((EDGE_SCHEMA.empty_table(), NEAREST_SCHEMA.empty_table()), {"queries": 0, "edges": 0})
        q_vids, q = new["vid"].to_numpy(), embeddings_to_numpy(new["embedding"])
        parts, best = [], np.full(len(q_vids), -np.inf, np.float32)
        engines = []
        for run in refs.runs:
            engine = ctx.cfg.reference_engine
            if engine == "milvus" and not (run.collection and run.milvus_uri):
                raise ValueError(f"--reference-engine milvus: the reference {run.folder} has no collection on a Milvus server")
            if engine != "exact" and run.collection and run.milvus_uri:
                e = _milvus(ctx, run, new, sig, best)
                engines.append(f"milvus collection {run.collection}")
            else:
                e = _exact(run, q_vids, q, sig.threshold, best)
                engines.append("exact (Parquet vectors)")
            parts.append(e)
        a, b, s = (np.concatenate([p[k] for p in parts]) for k in ("a", "b", "sim"))
        edges = pa.table({"a": a, "b": b, "sim": s}, schema=EDGE_SCHEMA)
        keep = best >= sig.floor
        nearest = pa.table({"vid": q_vids[keep], "sim": np.minimum(best[keep], 1.0)}, schema=NEAREST_SCHEMA)
        import pyarrow.parquet as pq

        pq.write_table(nearest, ctx.layout.nearest("_reference"))
        return StageResult((edges, nearest), {"queries": int(len(q_vids)), "reference_vectors": refs.n, "edges": int(len(a)),
                                              "engines": engines})


def _exact(run, q_vids: np.ndarray, q: np.ndarray, threshold: float, best: np.ndarray) -> dict:
    """Every (new, reference) pair at or above ``threshold``, the reference read in batches."""
    a, b, s = [], [], []
    ds = pads.dataset(str(run.vectors), format="parquet")
    for batch in ds.to_batches(columns=["vid", "embedding", "error"], batch_size=BATCH):
        t = pa.Table.from_batches([batch])
        t = t.filter(pc.is_null(t["error"]))
        if not t.num_rows:
            continue
        r_vids = t["vid"].to_numpy() + run.offset
        sims = q @ embeddings_to_numpy(t["embedding"]).T  # (new, reference batch)
        np.maximum(best, sims.max(axis=1), out=best)
        rows, cols = np.nonzero(sims >= threshold)
        a.append(q_vids[rows])
        b.append(r_vids[cols])
        s.append(np.minimum(sims[rows, cols], 1.0).astype(np.float32))
    if not a:
        return {"a": np.zeros(0, np.int64), "b": np.zeros(0, np.int64), "sim": np.zeros(0, np.float32)}
    return {"a": np.concatenate(a), "b": np.concatenate(b), "sim": np.concatenate(s)}


SHIFT = 1 << 40  # the queries' vids while they search a reference collection: never equal to a reference's own


def _milvus(ctx: StageContext, run, new: pa.Table, sig: Signal, best: np.ndarray) -> dict:
    """A range search of the reference's collection (on a server), from the driver, queries = new vectors.
    The queries' vids are shifted out of the reference's range (the searcher drops a hit equal to its
    query, and orders each pair); saturated queries are answered exactly from the Parquet vectors."""
    from dedup.vectordb.milvus import MilvusTarget, choose_index, loaded_count
    from dedup.vectordb.searcher import Searcher

    cfg = ctx.cfg
    target = MilvusTarget(run.milvus_uri, cfg.milvus_token, cfg.milvus_db)
    choice = choose_index(max(loaded_count(target, run.collection), 1), "AUTO", cfg.resolved_search_limit())
    searcher = Searcher(target, run.collection, threshold=sig.threshold, limit=cfg.resolved_search_limit(), batch=cfg.resolved_search_batch(),
                        index=choice.index_type, index_params=choice.search_params, max_limit=cfg.resolved_search_max_limit(),
                        range_search=True, floor=sig.floor)
    q_vids = new["vid"].to_numpy()
    shifted = pa.table({"vid": q_vids + SHIFT, "embedding": new["embedding"]})
    out = [searcher(shifted.slice(i, 256)) for i in range(0, shifted.num_rows, 256)]
    a, b, s = (np.concatenate([o[k] for o in out]) for k in ("a", "b", "sim"))
    near = b == NEAREST
    np.maximum.at(best, np.searchsorted(q_vids, a[near] - SHIFT), s[near])
    real = b >= 0  # pairs are (reference vid, shifted query vid)
    edges = {"a": b[real] - SHIFT, "b": a[real] + run.offset, "sim": s[real]}
    saturated = np.unique(a[b == SATURATED] - SHIFT)
    if len(saturated):  # too many hits for the top-k: the exact answer for those queries
        pos = np.searchsorted(q_vids, saturated)
        extra = _exact(run, saturated, embeddings_to_numpy(new["embedding"])[pos], sig.threshold, np.full(len(pos), -np.inf, np.float32))
        keep = ~np.isin(edges["a"], saturated)
        edges = {k: np.concatenate([edges[k][keep], extra[k]]) for k in edges}
    return edges
