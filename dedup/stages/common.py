"""What several stages share (so that no stage reaches into another's module): which search this run does and
what its collection is called (`store`, `search`), how many blocks the Milvus actors split the ids into, the
version of the stored vectors (`decode_embed`, `weights`), and the graph's inputs (`graph`, `canonical`,
`manifest`)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from dedup.stages.base import Signal, StageContext

EMBED_VERSION = 3  # bump when decode/embed output changes for the same parameters, so stored vectors are redone


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
