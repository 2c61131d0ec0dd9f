"""Stage `store`: vectors -> Milvus, from a pool of parallel writers with large batched inserts.

In:  vectors (``vid``, ``embedding``), errors already filtered out.
Out: one row per insert request (``inserted``: rows written), for the job's count check.

Each writer actor holds its own client and sends ``insert_batch`` rows per request (never one row at a
time). pymilvus's MilvusClient takes rows; it packs them into one columnar request.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from dedup.milvus import ID_FIELD, VECTOR_FIELD, MilvusTarget
from dedup.stages.embed import embeddings_to_numpy


class MilvusWriter:
    def __init__(self, target: MilvusTarget, collection: str):
        self.client = target.client()
        self.collection = collection

    def __call__(self, batch: pa.Table) -> dict:
        vids = batch.column("vid").to_numpy()
        vectors = embeddings_to_numpy(batch.column("embedding"))
        rows = [{ID_FIELD: int(v), VECTOR_FIELD: vec} for v, vec in zip(vids, vectors)]
        result = self.client.insert(self.collection, rows)
        count = result.get("insert_count", len(rows)) if isinstance(result, dict) else len(rows)
        return {"inserted": np.array([count], np.int64)}
