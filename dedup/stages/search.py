"""Stage `search` (``search_hash`` for the hash beside a learned model): vectors -> similarity edges.

In:  the vectors from `decode_embed` (the signal's column); with a Milvus engine, the collection and index
     from `store`.
Out: ``edges.parquet`` (``a`` < ``b``, ``sim`` >= the signal's threshold, each pair once) and
     ``nearest.parquet`` (each vid's nearest-neighbour similarity, down to the floor); the value is the
     edges table.

The search engine is a strategy, chosen by size (``--search-engine auto``, ``--exact-below``,
``--local-below``):

* :class:`ExactSearch`: every pair's cosine from the vectors in memory (tiles of the upper triangle, in
  float32 or, from ``DedupConfig.INT8_FROM`` vectors, int8 products with a float32 re-check:
  ``--exact-products``): what Milvus's FLAT index computes, without a top-k; 0.08 s for 2014 x 2014 pairs
  of 2048-d vectors where Milvus Lite's search took 8 s. The store then runs in the background.
* :class:`MilvusSearch` from the driver (one client) below ``--local-below`` vectors, or from
  ``--search-actors`` search actors: range searches of the stored collection; queries that saturate are
  answered by brute force over the stored vectors.

Re-thresholding upwards needs no search: a re-run whose threshold (and floor) are at or above the stored
ones filters the stored edges (``filtered_from_threshold`` in the summary).
"""
from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from dedup.ops import search as kernels
from dedup.stages.base import Signal, Stage, StageContext, StageResult
from dedup.stages.common import brute_force_on_ray, exact_search, unique_edges


class SearchStage(Stage):
    items = "queries"

    def __init__(self, signal: Signal):
        self.signal = signal
        self.name = signal.search
        self.after = ("decode_embed", signal.store)

    def depends(self, ctx: StageContext) -> tuple[str, ...]:
        return ("decode_embed",) if exact_search(ctx) else self.after  # exact search needs no collection

    def fingerprint(self, ctx: StageContext):
        cfg = ctx.cfg
        engine = {"engine": "exact"} if exact_search(ctx) else {"limit": cfg.resolved_search_limit(), "max_limit": cfg.resolved_search_max_limit()}
        return [engine, self.signal.column, self.signal.binary]

    def artifacts(self, ctx: StageContext):
        return (ctx.layout.edges(self.signal.key), ctx.layout.nearest(self.signal.key))

    def load(self, ctx: StageContext, stored: dict) -> StageResult | None:
        sig = self.signal
        if stored.get("threshold", 2.0) > sig.threshold + 1e-12 or stored.get("floor", 2.0) > sig.floor + 1e-12:
            return None  # a lower threshold (or floor) than was searched: search again
        t = pq.read_table(ctx.layout.edges(sig.key))
        t = t.filter(pc.greater_equal(t["sim"], pa.scalar(sig.threshold, pa.float32())))
        return StageResult(t, {"filtered_from_threshold": stored["threshold"], "edges": t.num_rows})

    def run(self, ctx: StageContext) -> StageResult:
        vectors, sig, layout = ctx.value("decode_embed"), self.signal, ctx.layout
        state = {"threshold": sig.threshold, "floor": sig.floor}
        if vectors.ok_count == 0:
            edges, nearest, metrics = kernels.EDGE_SCHEMA.empty_table(), kernels.NEAREST_SCHEMA.empty_table(), {"queries": 0}
        else:
            edges, nearest, metrics = self.engine(ctx).search(ctx, sig)
        pq.write_table(edges, layout.edges(sig.key))
        pq.write_table(nearest, layout.nearest(sig.key))
        metrics["unique_edges"] = int(edges.num_rows)
        return StageResult(edges, metrics, state)

    def engine(self, ctx: StageContext) -> "ExactSearch | MilvusSearch":
        """The search engine for this run's size (see the module docstring)."""
        if exact_search(ctx):
            return ExactSearch()
        return MilvusSearch(local=ctx.value("decode_embed").ok_count < ctx.cfg.local_below)


class ExactSearch:
    """Every pair, from the vectors in memory (see the module docstring)."""

    def search(self, ctx: StageContext, sig: Signal):
        from dedup.ops.models import embeddings_to_numpy

        local = ctx.value("decode_embed").table(sig.column)
        vids, vecs = local["vid"].to_numpy(), embeddings_to_numpy(local["embedding"])
        products = ctx.cfg.resolved_exact_products(len(vids))
        e = self.edges(vids, vecs, sig.threshold, products)
        near = e["nearest"] >= sig.floor
        nearest = pa.table({"vid": vids[near], "sim": e["nearest"][near]}, schema=kernels.NEAREST_SCHEMA)
        edges = pa.table({"a": e["a"], "b": e["b"], "sim": e["sim"]}, schema=kernels.EDGE_SCHEMA)
        return edges, nearest, {"mode": "exact (driver, every pair)", "queries": self.queries(len(vids)), "products": products,
                                "why": ctx.cfg.search_choice(len(vids))}

    def edges(self, vids: np.ndarray, vecs: np.ndarray, threshold: float, products: str) -> dict:
        """:func:`dedup.ops.search.exact_edges` (a subclass may search from fewer queries)."""
        return kernels.exact_edges(vids, vecs, threshold, products)

    def queries(self, n: int) -> int:
        """How many of ``n`` vectors query (all of them)."""
        return n


class MilvusSearch:
    """Range searches of the stored collection, from the driver (``local``) or from search actors; the
    saturated queries answered by brute force (see :mod:`dedup.vectordb.searcher`)."""

    def __init__(self, local: bool):
        self.local = local

    def search(self, ctx: StageContext, sig: Signal):
        vectors, cfg = ctx.value("decode_embed"), ctx.cfg
        args = self._searcher_args(ctx, sig)
        e = self._local(vectors, sig, args) if self.local else self._actors(ctx, sig, args)
        a, b, s = (e.column(c).to_numpy() for c in ("a", "b", "sim"))
        saturated = np.unique(a[b == kernels.SATURATED])
        near = b == kernels.NEAREST
        nearest = pa.table({"vid": a[near], "sim": s[near]}, schema=kernels.NEAREST_SCHEMA)
        real = b >= 0
        parts = [(a[real], b[real], s[real])] + self._brute_force(ctx, sig, saturated)
        edges, found = unique_edges(parts)
        metrics = {"mode": "driver" if self.local else f"{cfg.search_actors} search actors", "queries": self.queries(vectors.ok_count),
                   "requests": f"{cfg.resolved_search_mode()}, {args['batch']} queries each",
                   "limit": cfg.resolved_search_limit(), "max_limit": cfg.resolved_search_max_limit(), "edges_found": found,
                   "requeried_at_max_limit": int(np.sum(b == kernels.REASKED)), "saturated_brute_forced": int(len(saturated)),
                   "why": cfg.search_choice(vectors.ok_count)}
        return edges, nearest, metrics

    def queries(self, n: int) -> int:
        """How many of ``n`` vectors query (all of them; a subclass that selects fewer says how many)."""
        return n

    # Which rows of a block of vectors query: None, all of them (a subclass may set a function of a block
    # of vectors that returns its querying rows).
    select = None

    @staticmethod
    def _searcher_args(ctx: StageContext, sig: Signal) -> dict:
        from dedup.stages.common import collection_name

        cfg, choice = ctx.cfg, ctx.value(sig.store)
        return {"target": ctx.services.milvus(), "collection": collection_name(cfg, sig), "threshold": sig.threshold,
                "limit": cfg.resolved_search_limit(), "batch": cfg.resolved_search_batch(), "index": choice.index_type,
                "index_params": choice.search_params, "max_limit": cfg.resolved_search_max_limit(),
                "range_search": cfg.resolved_search_mode() == "range", "binary": sig.binary, "floor": sig.floor}

    def _local(self, vectors, sig: Signal, args: dict) -> pa.Table:
        from dedup.vectordb.searcher import Searcher

        q = vectors.table(sig.column)
        q = q if self.select is None else self.select(q)
        searcher, step = Searcher(**args), args["batch"]
        parts = [pa.table(searcher(q.slice(i, step)), schema=kernels.EDGE_SCHEMA) for i in range(0, q.num_rows, step)]
        return pa.concat_tables(parts or [kernels.EDGE_SCHEMA.empty_table()])

    def _actors(self, ctx: StageContext, sig: Signal, args: dict) -> pa.Table:
        import ray

        from dedup.stages.common import actor_blocks
        from dedup.vectordb.searcher import Searcher

        vectors, cfg = ctx.value("decode_embed"), ctx.cfg
        scratch = ctx.layout.search_scratch(sig.key)
        shutil.rmtree(scratch, ignore_errors=True)
        queries = vectors.dataset(sig.column, actor_blocks(cfg, vectors.ok_count))
        if self.select is not None:
            queries = queries.map_batches(self.select, batch_format="pyarrow")
        queries.map_batches(Searcher, fn_constructor_kwargs=args, batch_size=max(256, args["batch"]), batch_format="pyarrow",
                            compute=ray.data.ActorPoolStrategy(size=cfg.search_actors), num_cpus=0.5).write_parquet(str(scratch))
        e = pads.dataset(str(scratch), format="parquet").to_table() if scratch.exists() else kernels.EDGE_SCHEMA.empty_table()
        shutil.rmtree(scratch, ignore_errors=True)
        return e

    def _brute_force(self, ctx: StageContext, sig: Signal, saturated: np.ndarray) -> list[tuple]:
        """Exact neighbours of the saturated queries: from memory on small runs, else over the vectors on Ray."""
        if not len(saturated):
            return []
        vectors = ctx.value("decode_embed")
        if self.local:
            local = vectors.table(sig.column)
            from dedup.ops.models import embeddings_to_numpy

            have = local["vid"].to_numpy()
            pos = np.searchsorted(have, saturated)  # the table is in vid order
            t = kernels.brute_force_edges(local, (saturated, embeddings_to_numpy(local["embedding"])[pos]), sig.threshold)
            return [(t["a"], t["b"], t["sim"])]
        return brute_force_on_ray(ctx, sig.column, (saturated, vectors.of(saturated, sig.column)), sig.threshold)


