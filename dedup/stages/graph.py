"""Stage `graph`: edges -> clusters, one canonical each, guarded against chaining.

In:  the edges `verify` kept; per vid its pixels and file size (`decode_embed`, `discover`) for the
     canonical policy (:mod:`dedup.ops.canonical`, ``--canonical``); the pictures found inside images
     (`inner`, where the run looked for them): such an image comes after the others (:func:`forming_order`).
Out: :class:`~dedup.ops.graph.Clusters` (for every vid its raw component, its canonical and its similarity to
     it): the chaining guard places an image under a canonical only if it has an edge of its own to it
     (:mod:`dedup.ops.graph`), so every image removed is itself a copy of the one kept.
"""
from __future__ import annotations

import numpy as np

from dedup.ops.canonical import rank_vids
from dedup.ops.graph import Clusters, assign_clusters
from dedup.stages.base import Stage, StageContext, StageResult
from dedup.stages.common import graph_inputs


def cluster_vids(files, meta, n: int, a, b, sim, canonical_keys: list[str], pictured: np.ndarray | None = None) -> Clusters:
    """Graph + canonical over stored results: also used to re-threshold without embedding again.
    ``pictured``: the vids with a picture found inside them (:func:`forming_order`)."""
    return assign_clusters(n, a, b, sim, forming_order(rank_vids(canonical_keys, files, meta, n), pictured))


def forming_order(rank: np.ndarray, pictured: np.ndarray | None = None, is_ref: np.ndarray | None = None) -> np.ndarray:
    """The order clusters are formed in (each vid's place): reference images first (never removed), then the
    images with no picture found inside them, then those with one (a screenshot, a canvas, a page: made
    from a picture, so never a cluster's centre while one of its copies is not such an image), each in
    ``rank``'s order (``largest``)."""
    n = len(rank)
    keys = [rank]
    if pictured is not None and len(pictured):
        flag = np.zeros(n, bool)
        flag[np.asarray(pictured, np.int64)] = True
        keys.append(flag)
    if is_ref is not None and is_ref.any():
        keys.append(~is_ref)
    if len(keys) == 1:
        return rank
    order = np.lexsort(tuple(keys))
    out = np.empty(n, np.int64)
    out[order] = np.arange(n)
    return out


class GraphStage(Stage):
    name = "graph"
    items = "vectors"
    after = ("discover", "decode_embed", "reference", "inner", "verify")

    def needs_ray(self, ctx: StageContext) -> bool:
        return False  # tables in the driver

    def run(self, ctx: StageContext) -> StageResult:
        edges = ctx.value("verify").edges
        a, b, s = (edges.column(c).to_numpy() for c in ("a", "b", "sim"))
        table, meta, n, is_ref = graph_inputs(ctx)
        pictured = np.fromiter(ctx.value("inner").boxes, np.int64) if "inner" in ctx.values else None
        rank = forming_order(rank_vids(ctx.cfg.canonical_keys(), table, meta, n), pictured, is_ref)
        clusters = assign_clusters(n, a, b, s, rank)
        return StageResult(clusters, {"vectors": n, "edges": int(len(a)), "most_clusters_in_one_component": clusters.rounds,
                                      "split_off_by_chaining_guard": clusters.split_off})


