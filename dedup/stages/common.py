"""What several stages share (so that no stage reaches into another's module): which search this run does and
what its collection is called (`store`, `search`), how many blocks the Milvus actors split the ids into, the
version of the stored vectors (`decode_embed`, `weights`), the graph's inputs (`graph`, `canonical`,
`manifest`), and exact queries over the stored vectors on Ray and their unique edges (`search`, `inner`)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from dedup.stages.base import Signal, StageContext

EMBED_VERSION = 5  # bump when decode/embed output changes for the same parameters, so stored vectors are redone


def exact_search(ctx: StageContext) -> bool:
    """Whether this run searches exactly in memory (``--search-engine``, ``--exact-below``), by its vectors;
    before they are known (an upstream stage asking what depends on it), False: the search may need the
    collection."""
    if "decode_embed" not in ctx.values:
        return ctx.cfg.search_engine == "exact"
    return ctx.cfg.exact_search(ctx.value("decode_embed").ok_count)


def collection_name(cfg, signal: Signal) -> str:
    from dedup.vectordb.milvus import run_collection_name

    return run_collection_name(cfg.output_path, cfg.collection) + signal.key


def actor_blocks(cfg, n: int) -> int:
    """Enough blocks that every writer and search actor gets a share of the ids."""
    return max(4 * max(cfg.writers, cfg.search_actors), n // 5000)


def brute_force_on_ray(ctx: StageContext, column: str, queries: tuple, threshold: float) -> list[tuple]:
    """(a, b, sim) arrays of the edges at or above ``threshold`` between ``queries`` (vids, vectors) and
    every stored ``column`` vector, compared exactly over the vectors' blocks on Ray."""
    import ray

    from dedup.ops import search as kernels

    vectors = ctx.value("decode_embed")
    found = vectors.dataset(column, actor_blocks(ctx.cfg, vectors.ok_count)).map_batches(
        kernels.brute_force_edges, batch_format="pyarrow", fn_kwargs={"queries_ref": ray.put(queries), "threshold": threshold})
    return [(t["a"].to_numpy(), t["b"].to_numpy(), t["sim"].to_numpy()) for t in ray.get(found.to_arrow_refs()) if t.num_rows]


def unique_edges(parts: list[tuple]):
    """The unique edges of several (a, b, sim) arrays (each pair once, its highest similarity), as an
    EDGE_SCHEMA table, and how many were found in all."""
    import pyarrow as pa

    from dedup.ops import search as kernels
    from dedup.ops.graph import dedupe_edges

    if not parts:
        return kernels.EDGE_SCHEMA.empty_table(), 0
    ea, eb, es = (np.concatenate([p[i] for p in parts]) for i in range(3))
    n = max(int(ea.max()) + 1, int(eb.max()) + 1) if len(ea) else 1
    ua, ub, us = dedupe_edges(ea, eb, es, n)
    return pa.table({"a": ua, "b": ub, "sim": us}, schema=kernels.EDGE_SCHEMA), int(len(ea))


def graph_inputs(ctx: StageContext):
    """(files table, vector metadata, number of vids, which vids are reference images) of this run's graph:
    with --reference, the reference images after the new ones, and the new images that are byte-identical
    to a reference image (not embedded) with that image's metadata."""
    files, vectors = ctx.value("discover"), ctx.value("decode_embed")
    refs = ctx.values.get("reference")
    if refs is None or not refs.runs:
        return files.table, vectors.meta, files.n, np.zeros(files.n, bool)
    copied = refs.meta.set_index("vid").loc[list(refs.exact.values())].reset_index(drop=True)
    copied.insert(0, "vid", list(refs.exact.keys()))
    meta = pd.concat([vectors.meta, copied, refs.meta], ignore_index=True)
    table = pd.concat([files.table, refs.reps[["vid", "bytes", "path"]]], ignore_index=True)
    n = files.n + refs.n
    is_ref = np.zeros(n, bool)
    is_ref[files.n:] = True
    return table, meta, n, is_ref
