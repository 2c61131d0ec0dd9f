"""Stage `store` (``store_hash`` for the hash beside a learned model): a signal's vectors into Milvus.

In:  the vectors from `decode_embed` (:class:`~dedup.stages.decode_embed.Vectors`; the signal's column).
Out: the run's collection (``dedup_<hash of the output folder>`` unless ``--collection``), indexed and
     loaded; its value is the :class:`~dedup.vectordb.milvus.IndexChoice` the search uses.

Small runs (below ``--local-below`` vectors, or searched exactly) insert from the driver with one client:
writer actors cost seconds to start that only pay off on many vectors. Larger runs: bulk import on a
server, else ``--writers`` parallel writers (:func:`dedup.vectordb.writer.store_vectors`). With exact
search nothing waits for the store, so it runs in the background, beside search, verify, graph and
manifest. A re-run reuses the collection when it still holds every vector.
"""
from __future__ import annotations

import time

from dedup.stages.base import Signal, Stage, StageContext, StageResult
from dedup.stages.common import actor_blocks, collection_name, exact_search


def index_choice(ctx: StageContext, n: int, binary: bool):
    """The index for ``n`` stored vectors: ``--index`` (AUTO: by count, see
    :func:`dedup.vectordb.milvus.choose_index`), except that a Milvus Lite collection this run searches
    exactly in memory gets FLAT under AUTO: Lite builds an ANN index segment by segment inside the store,
    where it would cost more than the search it is not used for."""
    from dedup.vectordb.milvus import IndexChoice, choose_index

    cfg = ctx.cfg
    if cfg.index == "AUTO" and not cfg.milvus_uri and exact_search(ctx):
        return IndexChoice("FLAT", {}, {}, "AUTO: searched exactly in memory; FLAT in Milvus Lite needs no build")
    return choose_index(n, cfg.index, cfg.resolved_search_limit(), binary=binary)


class StoreStage(Stage):
    items = "vectors"

    def __init__(self, signal: Signal):
        self.signal = signal
        self.name = signal.store
        self.after = ("decode_embed",)

    def in_background(self, ctx: StageContext) -> bool:
        return exact_search(ctx)  # nothing waits for it

    def fingerprint(self, ctx: StageContext):
        cfg = ctx.cfg
        return [cfg.milvus_uri, cfg.milvus_db, collection_name(cfg, self.signal), cfg.index, cfg.model, self.signal.binary]

    def load(self, ctx: StageContext, stored: dict) -> StageResult | None:
        from dedup.vectordb.milvus import loaded_count

        vectors, cfg = ctx.value("decode_embed"), ctx.cfg
        name = collection_name(cfg, self.signal)
        ctx.params["collection" + self.signal.key] = name
        if vectors.ok_count == 0:
            return StageResult(None, {"vectors": 0})
        if loaded_count(ctx.services.milvus(), name) != vectors.ok_count:
            return None  # dropped or incomplete since: store again
        choice = index_choice(ctx, vectors.ok_count, self.signal.binary)
        return StageResult(choice, {"vectors": vectors.ok_count, **self._describe(choice)})

    def run(self, ctx: StageContext) -> StageResult:
        from dedup.vectordb.milvus import build_index_and_load, create_collection, loaded_count

        vectors, cfg, sig = ctx.value("decode_embed"), ctx.cfg, self.signal
        name = ctx.params["collection" + sig.key] = collection_name(cfg, sig)
        if vectors.ok_count == 0:
            return StageResult(None, {"vectors": 0})
        target = ctx.services.milvus()
        steps: dict = {}
        t0 = time.perf_counter()
        create_collection(target, name, sig.dim, replace=cfg.replace_collection, owner=cfg.output_path, binary=sig.binary)
        steps["create"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        inserted, how = self._insert(ctx, target, name)
        steps["insert"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        choice = build_index_and_load(target, name, index_choice(ctx, vectors.ok_count, sig.binary), binary=sig.binary)
        steps["flush_index_load"] = round(time.perf_counter() - t0, 3)
        if inserted != vectors.ok_count:
            raise RuntimeError(f"Milvus took {inserted} vectors, expected {vectors.ok_count}")
        searchable = loaded_count(target, name)
        if searchable != vectors.ok_count:  # a vector that cannot be found would be a missed duplicate
            raise RuntimeError(f"Milvus can search {searchable} of the {vectors.ok_count} vectors stored in {name}")
        metrics = {"vectors": int(inserted), "step_seconds": steps, **how, **self._describe(choice)}
        if exact_search(ctx):
            metrics["background"] = "beside search, verify, graph and manifest"
        return StageResult(choice, metrics)

    def _insert(self, ctx: StageContext, target, name: str) -> tuple[int, dict]:
        from dedup.vectordb.writer import MilvusWriter, store_vectors

        vectors, cfg, sig = ctx.value("decode_embed"), ctx.cfg, self.signal
        if vectors.ok_count < cfg.local_below or exact_search(ctx):
            local = vectors.table(sig.column)
            writer = MilvusWriter(target, name, binary=sig.binary)
            step = cfg.insert_batch
            return sum(int(writer(local.slice(i, step))["inserted"][0]) for i in range(0, local.num_rows, step)), {"method": "insert (driver)"}
        method = cfg.store_method if cfg.milvus_uri else "insert"  # Milvus Lite has no bulk import
        res = store_vectors(vectors.dataset(sig.column, actor_blocks(cfg, vectors.ok_count)), target, name, sig.dim, method=method,
                            staging=bulk_staging(cfg, ctx.layout), insert_batch=cfg.insert_batch, writers=cfg.writers,
                            shard_rows=cfg.bulk_shard_rows, owner=cfg.output_path, timeout=cfg.bulk_timeout, binary=sig.binary)
        how = {"method": res.method}
        if res.fallback_reason:
            how["bulk_fallback_reason"] = res.fallback_reason
        return res.rows, how

    def _describe(self, choice) -> dict:
        return {"index": {"type": choice.index_type, "build": choice.build_params, "search": choice.search_params, "why": choice.reason},
                "vector_type": "BINARY_VECTOR (HAMMING)" if self.signal.binary else "FLOAT_VECTOR (COSINE)"}


def bulk_staging(cfg, layout):
    """Where bulk-import shards are written (None: batched inserts only, e.g. Milvus Lite)."""
    import os

    from dedup.vectordb.bulk import BulkStaging

    if not cfg.milvus_uri or cfg.store_method == "insert":
        return None  # Milvus Lite has no bulk import
    if cfg.bulk_bucket:
        return BulkStaging(bucket=cfg.bulk_bucket, endpoint=cfg.bulk_endpoint, secure=cfg.bulk_secure,
                           access_key=cfg.bulk_access_key or os.environ.get("AWS_ACCESS_KEY_ID"),
                           secret_key=cfg.bulk_secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY"))
    return BulkStaging(local_dir=cfg.bulk_dir or str(layout.bulk_dir), server_dir=cfg.bulk_server_dir)
