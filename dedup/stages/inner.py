"""Stage `inner`: the pictures found inside images, searched against every image.

In:  the vectors from `decode_embed`: ``inner_embedding``, the model's vector of the picture inside an image
     (a photo pasted on a canvas or posted in a screenshot, :mod:`dedup.ops.pictures`), where it has one, and
     every image's own ``embedding``.
Out: ``edges_inner.parquet``: (``a`` < ``b``, ``sim``) where the picture inside one image is at or above the
     threshold against the other image (``sim``: that cosine); the value is a :class:`Pictures` (those edges,
     and where each picture is). `union` joins them to the search's, and the content check (`verify`) takes
     them as any other pair, and where the two whole images do not match, the picture against the other
     image: it must be the other image's content, under one transform, for them to be copies.

The queries are few (the images with a picture inside), so they are compared exactly with every vector: in
the driver where the run's search is exact in memory, else over the vectors on Ray.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dedup.ops import search as kernels
from dedup.stages.base import Stage, StageContext, StageResult
from dedup.stages.common import actor_blocks, exact_search


@dataclass
class Pictures:
    edges: pa.Table  # (a, b, sim): the pairs a picture inside one of them found
    boxes: dict  # vid -> (left, top, right, bottom) of the picture inside it, unit coordinates


class InnerStage(Stage):
    name = "inner"
    items = "pictures"
    after = ("decode_embed",)

    def needs_ray(self, ctx: StageContext) -> bool:
        return not exact_search(ctx)

    def fingerprint(self, ctx: StageContext):
        return [float(ctx.cfg.threshold)]

    def artifacts(self, ctx: StageContext):
        return (ctx.layout.edges("_inner"),)

    def load(self, ctx: StageContext, stored: dict) -> StageResult | None:
        vids, _, boxes = ctx.value("decode_embed").inner()
        edges = pq.read_table(ctx.layout.edges("_inner"))
        return StageResult(Pictures(edges, _boxes(vids, boxes)), {"edges": stored.get("edges")})

    def run(self, ctx: StageContext) -> StageResult:
        vectors, threshold = ctx.value("decode_embed"), float(ctx.cfg.threshold)
        qvids, queries, boxes = vectors.inner()
        parts = [] if not len(qvids) else self._local(vectors, qvids, queries, threshold) if exact_search(ctx) \
            else self._on_ray(ctx, vectors, qvids, queries, threshold)
        edges = _edges(parts)
        pq.write_table(edges, ctx.layout.edges("_inner"))
        metrics = {"pictures": int(len(qvids)), "edges": int(edges.num_rows)}
        return StageResult(Pictures(edges, _boxes(qvids, boxes)), metrics, {"edges": int(edges.num_rows)})

    @staticmethod
    def _local(vectors, qvids, queries, threshold) -> list[dict]:
        return [kernels.brute_force_edges(vectors.table("embedding"), (qvids, queries), threshold)]

    @staticmethod
    def _on_ray(ctx, vectors, qvids, queries, threshold) -> list[dict]:
        import ray

        ds = vectors.dataset("embedding", actor_blocks(ctx.cfg, vectors.ok_count))
        found = ds.map_batches(kernels.brute_force_edges, batch_format="pyarrow",
                               fn_kwargs={"queries_ref": ray.put((qvids, queries)), "threshold": threshold})
        return [{k: t[k].to_numpy() for k in ("a", "b", "sim")} for t in ray.get(found.to_arrow_refs()) if t.num_rows]


def _boxes(vids: np.ndarray, boxes: np.ndarray) -> dict:
    return {int(v): tuple(float(x) for x in b) for v, b in zip(vids.tolist(), boxes)}


def _edges(parts: list[dict]) -> pa.Table:
    """The unique edges of the parts (each pair once, its highest similarity)."""
    from dedup.ops.graph import dedupe_edges

    if not parts:
        return kernels.EDGE_SCHEMA.empty_table()
    a, b, s = (np.concatenate([p[k] for p in parts]) for k in ("a", "b", "sim"))
    n = int(max(a.max(initial=0), b.max(initial=0))) + 1
    ua, ub, us = dedupe_edges(a, b, s, n)
    return pa.table({"a": ua, "b": ub, "sim": us}, schema=kernels.EDGE_SCHEMA)
