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
from dedup.stages.common import brute_force_on_ray, exact_search, unique_edges


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
            else brute_force_on_ray(ctx, "embedding", (qvids, queries), threshold)
        edges, _ = unique_edges(parts)
        pq.write_table(edges, ctx.layout.edges("_inner"))
        metrics = {"pictures": int(len(qvids)), "edges": int(edges.num_rows)}
        return StageResult(Pictures(edges, _boxes(qvids, boxes)), metrics, {"edges": int(edges.num_rows)})

    @staticmethod
    def _local(vectors, qvids, queries, threshold) -> list[tuple]:
        t = kernels.brute_force_edges(vectors.table("embedding"), (qvids, queries), threshold)
        return [(t["a"], t["b"], t["sim"])]


def _boxes(vids: np.ndarray, boxes: np.ndarray) -> dict:
    return {int(v): tuple(float(x) for x in b) for v, b in zip(vids.tolist(), boxes)}
