"""Similarity edges from vectors, exactly (no Ray, no Milvus): every pair of a set of vectors
(:func:`exact_edges`, what a FLAT index computes, without a top-k) and a set of queries against a batch
of vectors (:func:`brute_force_edges`, for the queries a Milvus search saturated). The edge schema and the
marker rows a Milvus searcher (:class:`dedup.vectordb.searcher.Searcher`) returns among its edges.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from dedup.ops.models import embeddings_to_numpy

MAX_TOPK = 16384
EDGE_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("sim", pa.float32())])
NEAREST_SCHEMA = pa.schema([("vid", pa.int64()), ("sim", pa.float32())])
# Marker rows among a searcher's edges (b < 0): a saturated query, one re-asked at the largest limit, and a
# query's nearest-neighbour similarity.
SATURATED, REASKED, NEAREST = -1, -2, -3


def brute_force_edges(batch: pa.Table, queries_ref, threshold: float) -> dict:
    """Exact neighbours of the saturated queries against one batch of stored vectors.

    ``queries_ref``: object-store reference to (query vids, query vectors), shared by every task.
    """
    import ray

    query_vids, queries = ray.get(queries_ref) if isinstance(queries_ref, ray.ObjectRef) else queries_ref
    vids = batch.column("vid").to_numpy()
    vectors = embeddings_to_numpy(batch.column("embedding"))
    a, b, s = [], [], []
    for start in range(0, len(query_vids), 1024):  # bounded memory: (batch x 1024) similarities at a time
        qv = query_vids[start : start + 1024]
        sims = vectors @ queries[start : start + 1024].T
        rows, cols = np.nonzero(sims >= threshold)
        qa, vb = qv[cols], vids[rows]
        keep = qa != vb
        a.append(np.minimum(qa, vb)[keep])
        b.append(np.maximum(qa, vb)[keep])
        s.append(np.minimum(sims[rows, cols][keep], 1.0))
    return {
        "a": np.concatenate(a).astype(np.int64),
        "b": np.concatenate(b).astype(np.int64),
        "sim": np.concatenate(s).astype(np.float32),
    }


def exact_edges(vids: np.ndarray, vectors: np.ndarray, threshold: float, block: int | None = None) -> dict:
    """Every pair with cosine >= ``threshold``, each once (``a < b``), computed exactly from the vectors,
    and ``nearest``: each row's highest similarity to another row (-inf for a lone vector).

    What a FLAT index returns, without a top-k: block ``i`` of rows against rows ``i..n`` (the upper
    triangle), so memory is bounded by ``block x n`` similarities (default: 1,024 rows, fewer where that
    would pass 512 MB). Used below ``--exact-below`` vectors.
    """
    vids = np.asarray(vids, np.int64)
    block = block or int(max(64, min(1024, (512 << 20) // (4 * max(1, len(vids))))))
    vectors = np.ascontiguousarray(vectors, np.float32)
    a, b, s = [], [], []
    nearest = np.full(len(vids), -np.inf, np.float32)
    for start in range(0, len(vids), block):
        stop = min(start + block, len(vids))
        sims = vectors[start:stop] @ vectors[start:].T
        np.fill_diagonal(sims[:, : stop - start], -np.inf)  # a row is not its own neighbour
        np.maximum(nearest[start:stop], sims.max(axis=1), out=nearest[start:stop])  # this block's rows
        np.maximum(nearest[start:], sims.max(axis=0), out=nearest[start:])  # and the rows after them
        rows, cols = np.nonzero(sims >= threshold)
        keep = cols > rows  # the upper triangle: j > i, so each pair once and never a row with itself
        rows, cols = rows[keep], cols[keep]
        qa, vb = vids[start + rows], vids[start + cols]
        a.append(np.minimum(qa, vb))
        b.append(np.maximum(qa, vb))
        s.append(np.minimum(sims[rows, cols], 1.0))
    if not a:
        return {"a": np.zeros(0, np.int64), "b": np.zeros(0, np.int64), "sim": np.zeros(0, np.float32), "nearest": nearest}
    return {"a": np.concatenate(a), "b": np.concatenate(b), "sim": np.concatenate(s).astype(np.float32), "nearest": nearest}
