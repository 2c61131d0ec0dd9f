"""Stage `graph`: edges -> clusters, one canonical each, guarded against chaining.

In:  the edges `verify` kept; per vid its pixels and file size (`decode_embed`, `discover`) for the
     canonical policy (:mod:`dedup.ops.canonical`, ``--canonical``).
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


def cluster_vids(files, meta, n: int, a, b, sim, canonical_keys: list[str]) -> Clusters:
    """Graph + canonical over stored results: also used to re-threshold without embedding again."""
    return assign_clusters(n, a, b, sim, rank_vids(canonical_keys, files, meta, n))


class GraphStage(Stage):
    name = "graph"
    items = "vectors"
    after = ("discover", "decode_embed", "reference", "verify")

    def needs_ray(self, ctx: StageContext) -> bool:
        return False  # tables in the driver

    def run(self, ctx: StageContext) -> StageResult:
        edges = ctx.value("verify").edges
        a, b, s = (edges.column(c).to_numpy() for c in ("a", "b", "sim"))
        table, meta, n, is_ref = graph_inputs(ctx)
        rank = rank_vids(ctx.cfg.canonical_keys(), table, meta, n)
        if is_ref.any():  # a reference image is never removed: every one comes before every new image
            order = np.lexsort((rank, ~is_ref))
            rank = np.empty(n, np.int64)
            rank[order] = np.arange(n)
        clusters = assign_clusters(n, a, b, s, rank)
        return StageResult(clusters, {"vectors": n, "edges": int(len(a)), "most_clusters_in_one_component": clusters.rounds,
                                      "split_off_by_chaining_guard": clusters.split_off})


