"""A Ray Data callable class that searches a Milvus collection: one client per actor.

In:  vectors (``vid``, ``embedding``); each actor takes a slice of the ids as queries.
Out: edges (``a``, ``b``, ``sim``) with ``a < b`` and ``sim >= threshold`` (cosine), for every pair found;
     a pair may appear twice (once from each side). And marker rows (``b`` < 0, :mod:`dedup.ops.search`):
     each query's nearest-neighbour similarity where it is at least ``floor`` (below the threshold too),
     the queries re-asked at the largest limit, and the saturated ones.

Range search asks Milvus for every hit with similarity at least the floor (on Milvus Lite: a top-k
filtered here), but Milvus returns at most ``limit`` hits per query (16384 at most on a server). A query
whose hits at or above the threshold fill its limit may have been cut, so it is asked again with the
largest limit; if that fills up too, the query is marked *saturated* and the search stage computes its
neighbours exactly, by brute force over the stored vectors. No cluster is ever cut silently.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from dedup.ops.hashes import bits_to_cosine, cosine_to_bits, to_packed
from dedup.ops.models import embeddings_to_numpy
from dedup.ops.search import MAX_TOPK, NEAREST, REASKED, SATURATED
from dedup.vectordb.milvus import BINARY_METRIC, METRIC, VECTOR_FIELD, MilvusTarget


def _hits(hits) -> tuple[list[int], list[float]]:
    ids = getattr(hits, "ids", None)
    dists = getattr(hits, "distances", None)
    if ids is not None and dists is not None:
        return list(ids), list(dists)
    return [h["id"] for h in hits], [h["distance"] for h in hits]


class Searcher:
    """Ray Data callable class: one Milvus client per actor."""

    def __init__(self, target: MilvusTarget, collection: str, threshold: float, limit: int, batch: int,
                 index: str = "FLAT", max_limit: int = MAX_TOPK, range_search: bool = True,
                 index_params: dict | None = None, binary: bool = False, floor: float | None = None):
        self.client = target.client()
        self.collection = collection
        self.threshold = float(threshold)
        # Hits down to the floor are asked for (a range search's radius) so that each query's nearest
        # neighbour is known below the threshold too; only hits at or above the threshold become edges.
        self.floor = self.threshold if floor is None else min(float(floor), self.threshold)
        self.limit = int(limit)
        self.batch = max(1, int(batch))
        self.max_limit = max(self.limit, int(max_limit))
        self.index = index
        # binary: the collection holds hash bits (BINARY_VECTOR, HAMMING). Queries go in packed, Milvus answers
        # Hamming distances h, and each is turned into the cosine of the +1/-1 vectors, 1 - 2h/bits, so the
        # threshold, the edges and everything after are the same as with float hash vectors.
        self.binary = binary
        # Range search on a server returns only hits >= threshold. Milvus Lite implements it as a top-k of
        # 5x the limit filtered afterwards, so there a plain top-k filtered here is the same and cheaper.
        self.range_params = {"radius": self.floor - 1e-6, "range_filter": 1.0 + 1e-3} if range_search else {}
        if index_params is None:  # the index's search parameters (see dedup.vectordb.milvus.choose_index)
            index_params = {"ef": 64} if index == "HNSW" else {"nprobe": 64} if "IVF" in index else {}
        self.index_params = dict(index_params)

    def _params(self, limit: int, bits: int = 0) -> dict:
        params = {**self.index_params, **self.range_params}
        if self.index == "HNSW":  # HNSW needs ef >= top-k, also for a query re-asked at the largest limit
            params["ef"] = max(int(params.get("ef", 64)), int(limit))
        if self.binary:
            if self.range_params:  # HAMMING: range_filter <= h < radius; cosine >= floor is h <= (1 - floor) * bits / 2.
                # A whole-number radius: Milvus 2.3 lost the pairs at exactly --max-bits with radius max_bits + 0.5.
                params.update(radius=int(np.floor(cosine_to_bits(self.floor, bits) + 1e-9)) + 1, range_filter=0)
            return {"metric_type": BINARY_METRIC, "params": params}
        return {"metric_type": METRIC, "params": params}

    def _search(self, vectors: np.ndarray, limit: int):
        bits = vectors.shape[1]
        results = self.client.search(
            self.collection,
            data=to_packed(vectors) if self.binary else [v for v in vectors],
            anns_field=VECTOR_FIELD,
            limit=limit,
            search_params=self._params(limit, bits),
            output_fields=[],
        )
        if not self.binary:
            return results
        return [[{"id": i, "distance": bits_to_cosine(h, bits)} for i, h in zip(*_hits(hits))] for hits in results]

    def __call__(self, batch: pa.Table) -> dict:
        vids = batch.column("vid").to_numpy()
        vectors = embeddings_to_numpy(batch.column("embedding"))
        a, b, s = [], [], []
        retried, saturated, nearest = [], [], []
        for start in range(0, len(vids), self.batch):
            q_vids = vids[start : start + self.batch]
            results = self._search(vectors[start : start + self.batch], self.limit)
            for i, hits in enumerate(results):
                ids, dists = _hits(hits)
                in_range = self._in_range(dists)
                if in_range >= self.limit and self.limit < self.max_limit:
                    retried.append(i + start)
                    continue
                if in_range >= self.max_limit:
                    saturated.append(int(q_vids[i]))
                self._add(int(q_vids[i]), ids, dists, a, b, s, nearest)
        for i in retried:  # one at a time: a big limit times many queries would break request limits
            hits = self._search(vectors[i : i + 1], self.max_limit)[0]
            ids, dists = _hits(hits)
            if self._in_range(dists) >= self.max_limit:
                saturated.append(int(vids[i]))
            self._add(int(vids[i]), ids, dists, a, b, s, nearest)
        # Marker rows, not edges: SATURATED for a query the job brute-forces, REASKED for one that was asked
        # again with the largest limit (counted in the summary), NEAREST with a query's nearest similarity.
        markers = saturated + [int(vids[i]) for i in retried]
        a += markers + [q for q, _ in nearest]
        b += [SATURATED] * len(saturated) + [REASKED] * len(retried) + [NEAREST] * len(nearest)
        s += [np.nan] * len(markers) + [d for _, d in nearest]
        return {"a": np.asarray(a, np.int64), "b": np.asarray(b, np.int64), "sim": np.asarray(s, np.float32)}

    def _in_range(self, dists) -> int:
        """Hits at or above the threshold: when they fill the limit, more may have been cut off."""
        return sum(1 for d in dists if d >= self.threshold)

    def _add(self, q: int, ids, dists, a, b, s, nearest: list) -> None:
        best = -np.inf
        for hid, d in zip(ids, dists):
            hid = int(hid)
            if hid == q:
                continue
            best = max(best, float(d))
            if d < self.threshold:
                continue
            a.append(min(q, hid))
            b.append(max(q, hid))
            s.append(min(float(d), 1.0))
        if best >= self.floor:
            nearest.append((q, min(best, 1.0)))
