"""Stage `hashing`: read every input's bytes once and hash them, before any decoding.

In:  units (columns ``kind``, ``unit``, ``source``), one row per file or shard.
Out: files table, one row per item (see :data:`FILES_SCHEMA`): ``sha`` is the SHA-256 of the bytes
     (hardware-accelerated on current CPUs, and what ``sha256sum`` prints); byte-identical items share it.
     Items that could not be read, or are empty, carry an ``error`` and no sha. ``mtime``: a local file's
     modification time (seconds since the epoch, read beside its bytes), null for other items: among
     byte-identical files the oldest is kept (:func:`dedup.ops.manifest.representative_paths`).
"""
from __future__ import annotations

import hashlib
import os

import numpy as np
import pyarrow as pa

from dedup.sources import read_unit

FILES_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("source", pa.string()),
        ("kind", pa.string()),
        ("unit", pa.string()),
        ("sha", pa.string()),
        ("bytes", pa.int64()),
        ("error", pa.string()),
        ("mtime", pa.float64()),
    ]
)


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_units(batch: dict[str, np.ndarray], image_column: str | None = None) -> pa.Table:
    """Ray Data batch function: units in, one row per item out."""
    rows: dict[str, list] = {name: [] for name in FILES_SCHEMA.names}
    for kind, unit, source in zip(batch["kind"], batch["unit"], batch["source"]):
        for path, data, error in read_unit(str(kind), str(unit), image_column):
            if error is None and not data:
                error = "empty file (0 bytes)"
            rows["path"].append(path)
            rows["source"].append(str(source))
            rows["kind"].append(str(kind))
            rows["unit"].append(str(unit))
            rows["sha"].append(hash_bytes(data) if error is None else None)
            rows["bytes"].append(len(data) if data is not None else None)
            rows["error"].append(error)
            rows["mtime"].append(_mtime(path) if error is None and str(kind) == "file" and "://" not in str(path) else None)
    return pa.table(rows, schema=FILES_SCHEMA)


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
