"""Stage `store`: vectors -> Milvus, by bulk import where the server has it, else large batched inserts.

In:  vectors (``vid``, ``embedding``), errors already filtered out; the run's collection exists, empty.
Out: :class:`StoreResult` (method used, rows stored, why bulk import was not used). :class:`MilvusWriter`
     alone yields one row per insert request (``inserted``: rows written), for the job's count check.

Batched inserts: each writer actor holds its own client and sends ``insert_batch`` rows per request (never
one row at a time); pymilvus's MilvusClient packs the rows into one columnar request.

Bulk import (:mod:`dedup.vectordb.bulk`): writer actors write Parquet shards with pymilvus's BulkWriter into the
staging (a folder the server reads, or its bucket), then the server imports them. With ``method="auto"``
bulk import is tried when a staging is given and the server is not Milvus Lite; when the server refuses it
or cannot read the shards, the collection is made again (so no half import stays) and the vectors go in
by batched inserts. ``method="bulk"`` raises instead of falling back.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dedup.vectordb.bulk import (
    BulkImportUnavailable,
    BulkShardWriter,
    BulkStaging,
    import_files,
    remove_local_shards,
    unavailable_reason,
)
from dedup.vectordb.milvus import ID_FIELD, VECTOR_FIELD, MilvusTarget, create_collection
from dedup.ops.models import embeddings_to_numpy
from dedup.ops.hashes import to_packed

METHODS = ("auto", "bulk", "insert")


class MilvusWriter:
    """Ray Data callable: batched inserts from one client per actor. ``binary``: the collection holds
    BINARY_VECTORs (hash bits), so each +1/-1 vector goes in packed, one bit per element."""

    def __init__(self, target: MilvusTarget, collection: str, binary: bool = False):
        self.client = target.client()
        self.collection = collection
        self.binary = binary

    def __call__(self, batch: pa.Table) -> dict:
        vids = batch.column("vid").to_numpy()
        vectors = embeddings_to_numpy(batch.column("embedding"))
        if self.binary:
            vectors = to_packed(vectors)
        rows = [{ID_FIELD: int(v), VECTOR_FIELD: vec} for v, vec in zip(vids, vectors)]
        result = self.client.insert(self.collection, rows)
        count = result.get("insert_count", len(rows)) if isinstance(result, dict) else len(rows)
        return {"inserted": np.array([count], np.int64)}


@dataclass(frozen=True)
class StoreResult:
    method: str  # "bulk" or "insert"
    rows: int
    fallback_reason: str | None = None  # why bulk import was not used (auto mode)


def insert_batched(vectors, target: MilvusTarget, collection: str, insert_batch: int = 2000, writers: int = 2,
                   binary: bool = False) -> int:
    """Batched inserts from ``writers`` actors over a Ray dataset; returns the rows Milvus took."""
    import ray

    return int(vectors.map_batches(
        MilvusWriter, fn_constructor_kwargs={"target": target, "collection": collection, "binary": binary},
        batch_size=insert_batch, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=writers), num_cpus=0.5,
    ).sum("inserted") or 0)


def bulk_import(vectors, target: MilvusTarget, collection: str, dim: int, staging: BulkStaging,
                shard_rows: int = 200_000, writers: int = 2, timeout: float = 3600.0, keep_files: bool = False) -> int:
    """Shards written by ``writers`` actors (``shard_rows`` rows each), then one bulk import; returns rows."""
    import ray

    reason = unavailable_reason(target)
    if reason:
        raise BulkImportUnavailable(reason)
    shards = vectors.map_batches(
        BulkShardWriter, fn_constructor_kwargs={"staging": staging, "dim": dim},
        batch_size=shard_rows, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=writers), num_cpus=0.5,
    ).take_all()
    groups = [str(r["files"]).split("\n") for r in shards if r["files"]]
    rows = int(sum(int(r["rows"]) for r in shards))
    print(f"[dedup] bulk import: wrote {rows} rows as {len(groups)} Parquet shards", file=sys.stderr, flush=True)
    try:
        return import_files(target, collection, groups, expected_rows=rows, timeout=timeout)
    finally:
        if not keep_files:
            remove_local_shards(staging, groups)


def store_vectors(vectors, target: MilvusTarget, collection: str, dim: int, method: str = "auto",
                  staging: BulkStaging | None = None, insert_batch: int = 2000, writers: int = 2,
                  shard_rows: int = 200_000, owner: str | os.PathLike | None = None,
                  timeout: float = 3600.0, binary: bool = False) -> StoreResult:
    """Store a Ray dataset of vectors into the (empty) collection by bulk import or batched inserts.
    ``binary`` (hash bits as BINARY_VECTOR) always goes by inserts: its shards are not written for bulk
    import (a 256-bit hash is 32 bytes a row, so inserts carry 32x less than float vectors)."""
    if method not in METHODS:
        raise ValueError(f"store method must be one of {', '.join(METHODS)}, got {method!r}")
    if binary and method == "bulk":
        raise BulkImportUnavailable("binary (hash) vectors are stored by batched inserts, not bulk import")
    if method == "insert" or binary:
        reason = "binary (hash) vectors are stored by batched inserts" if method != "insert" else None
        return StoreResult("insert", insert_batched(vectors, target, collection, insert_batch, writers, binary), reason)
    if staging is None:
        if method == "bulk":
            raise BulkImportUnavailable("bulk import needs a staging folder or bucket (--bulk-dir or --bulk-bucket)")
        reason = "no bulk staging given"
    else:
        try:
            return StoreResult("bulk", bulk_import(vectors, target, collection, dim, staging, shard_rows, writers, timeout))
        except BulkImportUnavailable as e:
            if method == "bulk":
                raise
            reason = str(e)
            print(f"[dedup] bulk import not available: {reason}; storing by batched inserts", file=sys.stderr, flush=True)
            create_collection(target, collection, dim, replace=True, owner=owner)  # no half import stays
    return StoreResult("insert", insert_batched(vectors, target, collection, insert_batch, writers), reason)
