"""Search from a sample of the queries: the scale benchmarks time every k-th vid's search against all the
vectors and extrapolate (a 2-core machine cannot query a million vectors in an afternoon). The job itself
always queries every vector: :class:`SampledSearchStage` is the job's search stage with its engines told
which rows query."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from dedup.ops import search as kernels
from dedup.stages.search import ExactSearch, MilvusSearch, SearchStage


def sampled_edges(vids: np.ndarray, vectors: np.ndarray, threshold: float, every: int, products: str = "float32") -> dict:
    """As :func:`exact_edges`, for the rows whose vid is a multiple of ``every`` against every row (the scale
    benchmark times a sample of queries and extrapolates); ``nearest`` of the sampled rows only."""
    vids, vectors = np.asarray(vids, np.int64), np.ascontiguousarray(vectors, np.float32)
    p = kernels.make_products(vectors, products)
    rows = np.flatnonzero(vids % every == 0)
    nearest = np.full(len(vids), -np.inf, np.float32)
    found = []
    for start in range(0, len(rows), kernels.TILE):
        qrows = rows[start : start + kernels.TILE]
        q, best = p.queries(qrows), np.full(len(qrows), -np.inf, np.float32)
        for s0 in range(0, len(vids), kernels.TILE):
            t = p.tile(q, s0, min(len(vids), s0 + kernels.TILE))
            mine = (qrows >= s0) & (qrows < s0 + len(t))
            t[qrows[mine] - s0, np.flatnonzero(mine)] = p.lowest  # a row is not its own neighbour
            np.maximum(best, t.max(axis=0) * p.unit, out=best)
            r, c = kernels._candidates(t, p.floor(threshold), t.max(axis=1))
            found.append((np.minimum(qrows[c], s0 + r), np.maximum(qrows[c], s0 + r)))
        nearest[qrows] = best
    return kernels._rechecked(vids, vectors, threshold, found, nearest, unique=True)


class SampledExact(ExactSearch):
    def __init__(self, every: int):
        self.every = every

    def edges(self, vids, vecs, threshold, products) -> dict:
        return sampled_edges(vids, vecs, threshold, self.every, products)

    def queries(self, n: int) -> int:
        return (n + self.every - 1) // self.every


class SampledMilvus(MilvusSearch):
    def __init__(self, local: bool, every: int):
        super().__init__(local)
        self.every = every
        self.select = self._every_kth

    def _every_kth(self, t: pa.Table) -> pa.Table:
        return t.filter(pa.array(t["vid"].to_numpy() % self.every == 0))

    def queries(self, n: int) -> int:
        return (n + self.every - 1) // self.every


class SampledSearchStage(SearchStage):
    """The search stage with only every ``every``-th vid querying (``every`` 1: the job's own search)."""

    def __init__(self, signal, every: int = 1):
        super().__init__(signal)
        self.every = int(every)

    def fingerprint(self, ctx):
        return [*super().fingerprint(ctx), self.every]

    def engine(self, ctx):
        engine = super().engine(ctx)
        if self.every == 1:
            return engine
        return SampledExact(self.every) if isinstance(engine, ExactSearch) else SampledMilvus(engine.local, self.every)
