"""Stage `graph`: edges -> clusters, one canonical each, guarded against chaining.

In:  the edges `verify` kept; per vid its pixels and file size (`decode_embed`, `discover`) for the
     canonical policy (:mod:`dedup.ops.canonical`, ``--canonical``).
Out: :class:`~dedup.ops.graph.Clusters` (for every vid its raw component, its canonical and its similarity to
     it): the chaining guard places an image under a canonical only if it has an edge of its own to it
     (:mod:`dedup.ops.graph`), so every image removed is itself a copy of the one kept.
"""
from __future__ import annotations

from dedup.ops.canonical import rank_vids
from dedup.ops.graph import Clusters, assign_clusters
from dedup.stages.base import Stage, StageContext, StageResult


def cluster_vids(files, meta, n: int, a, b, sim, canonical_keys: list[str]) -> Clusters:
    """Graph + canonical over stored results: also used to re-threshold without embedding again."""
    return assign_clusters(n, a, b, sim, rank_vids(canonical_keys, files, meta, n))


class GraphStage(Stage):
    name = "graph"
    items = "vectors"
    after = ("discover", "decode_embed", "verify")

    def run(self, ctx: StageContext) -> StageResult:
        files, vectors, edges = ctx.value("discover"), ctx.value("decode_embed"), ctx.value("verify").edges
        a, b, s = (edges.column(c).to_numpy() for c in ("a", "b", "sim"))
        clusters = cluster_vids(files.table, vectors.meta, files.n, a, b, s, ctx.cfg.canonical_keys())
        return StageResult(clusters, {"vectors": files.n, "edges": int(len(a)), "most_clusters_in_one_component": clusters.rounds,
                                      "split_off_by_chaining_guard": clusters.split_off})
