"""Bulk loading of vectors into a Milvus server: Parquet shards written with pymilvus's BulkWriter, then the
server's bulk import, polled to completion with a progress line.

Contract:

* Shards are written by :class:`BulkShardWriter` (a Ray Data callable: many writers in parallel, one shard
  per batch) or :func:`write_shards` (in this process), into a :class:`BulkStaging`: a local folder the
  Milvus server can read (same machine, or a shared filesystem; ``server_dir`` says where the server sees
  it when it is mounted elsewhere, e.g. in a container) via ``LocalBulkWriter``, or the server's own
  S3/MinIO bucket via ``RemoteBulkWriter``.
* :func:`import_files` submits one import task per shard (gRPC ``Import``, which Milvus 2.3 and later
  serve), polls them, prints a progress line, and returns the rows imported once every task is
  Completed. A failed task raises :class:`BulkImportError` with the server's reason; so does a timeout.
* Bulk import is unavailable on Milvus Lite, on servers that refuse the call, and when the server cannot
  read the staged files: those raise :class:`BulkImportUnavailable`, whose message says why. The caller
  then falls back to batched inserts (:mod:`dedup.vectordb.writer`); rows an import may have committed before
  failing are the caller's to discard (recreate the collection).
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa

from dedup.vectordb.milvus import ID_FIELD, VECTOR_FIELD, MilvusTarget, collection_schema, is_milvus_lite, server_version

# pymilvus's BulkInsertState codes (common.proto ImportState).
_PENDING, _FAILED, _STARTED, _PERSISTED, _COMPLETED, _FAILED_CLEANED = 0, 1, 2, 5, 6, 7
# Failure reasons that mean "the server cannot see the staged files" rather than "the data is bad".
_UNREADABLE_HINTS = ("no such file", "not exist", "nosuchkey", "failed to get file size", "not found")


class BulkImportUnavailable(RuntimeError):
    """Bulk import cannot be used with this server or staging; batched inserts can."""


class BulkImportError(RuntimeError):
    """A bulk import failed or did not finish in time."""


@dataclass(frozen=True)
class BulkStaging:
    """Where the Parquet shards go before the import.

    Local: ``local_dir`` (created if missing) must be readable by the Milvus server at the same path, or
    at ``server_dir`` when the server mounts it elsewhere. Remote: ``bucket`` (the bucket Milvus itself
    uses for storage) with ``endpoint`` and keys; shards go under ``remote_path`` in it.
    """

    local_dir: str | None = None
    server_dir: str | None = None
    bucket: str | None = None
    remote_path: str = "dedup-bulk"
    endpoint: str | None = None  # host:port of S3/MinIO
    access_key: str | None = None
    secret_key: str | None = None
    secure: bool = False
    region: str | None = None

    def __post_init__(self):
        if bool(self.local_dir) == bool(self.bucket):
            raise ValueError("bulk staging needs exactly one of local_dir (a folder the server reads) or bucket (S3/MinIO)")

    @property
    def remote(self) -> bool:
        return bool(self.bucket)

    def writer(self, schema, chunk_mb: int = 512):
        """A pymilvus BulkWriter writing Parquet to this staging."""
        from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter, RemoteBulkWriter

        chunk = chunk_mb * 1024 * 1024
        if not self.remote:
            os.makedirs(self.local_dir, exist_ok=True)
            return LocalBulkWriter(schema=schema, local_path=self.local_dir, chunk_size=chunk, file_type=BulkFileType.PARQUET)
        param = RemoteBulkWriter.S3ConnectParam(
            bucket_name=self.bucket, endpoint=self.endpoint, access_key=self.access_key,
            secret_key=self.secret_key, secure=self.secure, region=self.region,
        )
        tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"dedup-bulk-{uuid.uuid4().hex}")
        return RemoteBulkWriter(schema=schema, remote_path=self.remote_path, connect_param=param,
                                chunk_size=chunk, file_type=BulkFileType.PARQUET, local_path=tmp)

    def server_path(self, path: str) -> str:
        """The path the server must be given for a file the writer reported."""
        if self.remote or not self.server_dir:
            return str(path)
        rel = Path(path).resolve().relative_to(Path(self.local_dir).resolve())
        return str(Path(self.server_dir) / rel)


def _quiet_pymilvus() -> None:
    # The BulkWriter logs every flush at INFO; the job prints its own progress.
    logging.getLogger("pymilvus").setLevel(logging.WARNING)
    logging.getLogger("pymilvus.bulk_writer").setLevel(logging.WARNING)


def _rows(batch: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    from dedup.ops.models import embeddings_to_numpy

    vids = np.asarray(batch.column("vid").to_numpy(), np.int64)
    return vids, embeddings_to_numpy(batch.column("embedding"))


def write_shard(batch: pa.Table, staging: BulkStaging, dim: int) -> list[list[str]]:
    """Write one batch (``vid``, ``embedding``) as Parquet shard(s); returns the file groups to import."""
    _quiet_pymilvus()
    vids, vectors = _rows(batch)
    if len(vids) == 0:
        return []
    if vectors.shape[1] != dim:
        raise ValueError(f"vectors have {vectors.shape[1]} dimensions, the collection {dim}")
    with staging.writer(collection_schema(dim)) as writer:  # on exit: joins flush threads
        for vid, vec in zip(vids.tolist(), vectors):
            writer.append_row({ID_FIELD: vid, VECTOR_FIELD: vec})
        writer.commit()
        groups = [[staging.server_path(f) for f in group] for group in writer.batch_files]
    return [g for g in groups if g]


def write_shards(batches: Iterable[pa.Table], staging: BulkStaging, dim: int) -> tuple[list[list[str]], int]:
    """Write every batch as shards in this process. Returns (file groups, rows written)."""
    groups: list[list[str]] = []
    rows = 0
    for batch in batches:
        groups += write_shard(batch, staging, dim)
        rows += batch.num_rows
    return groups, rows


class BulkShardWriter:
    """Ray Data callable: each batch becomes one shard. Out: ``rows`` and ``files`` (one import task's
    files, ``\\n``-joined) per shard."""

    def __init__(self, staging: BulkStaging, dim: int):
        self.staging = staging
        self.dim = int(dim)

    def __call__(self, batch: pa.Table) -> dict:
        groups = write_shard(batch, self.staging, self.dim)
        rows = [batch.num_rows] + [0] * (len(groups) - 1) if groups else []
        return {"rows": np.asarray(rows, np.int64), "files": np.asarray(["\n".join(g) for g in groups], object)}


def unavailable_reason(target: MilvusTarget) -> str | None:
    """Why bulk import cannot be used on this server (None: it may be; the import itself is the proof)."""
    version = server_version(target)
    if is_milvus_lite(version):
        return f"Milvus Lite ({version}) has no bulk import"
    return None


def _connect(target: MilvusTarget) -> str:
    from pymilvus import connections

    alias = f"dedup-bulk-{uuid.uuid4().hex[:8]}"
    kwargs = {"alias": alias, "uri": target.uri}
    if target.token:
        kwargs["token"] = target.token
    if target.db_name:
        kwargs["db_name"] = target.db_name
    connections.connect(**kwargs)
    return alias


def _refused(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "unimplemented" in text or "not implemented" in text or "unsupported" in text


def _print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def import_files(target: MilvusTarget, collection: str, file_groups: list[list[str]],
                 expected_rows: int | None = None, timeout: float = 3600.0, poll_s: float = 1.0,
                 progress: Callable[[str], None] = _print_progress) -> int:
    """Import the shards (one task per file group) and wait until every task is Completed.

    Prints a progress line when the state changes (and at least every 30 s). Returns the rows imported;
    raises :class:`BulkImportUnavailable` (server without bulk import, or files it cannot read),
    :class:`BulkImportError` (a task failed, the row count is off, or ``timeout`` passed).
    """
    reason = unavailable_reason(target)
    if reason:
        raise BulkImportUnavailable(reason)
    if not file_groups:
        return 0
    from pymilvus import connections, utility

    with warnings.catch_warnings():
        # ORM-style API, deprecated but kept by pymilvus 3.0; MilvusClient has no import call that Milvus 2.3
        # serves (its REST bulk_import needs Milvus 2.4+).
        warnings.simplefilter("ignore")
        alias = _connect(target)
        try:
            tasks = _submit(utility, alias, collection, file_groups)
            states = _wait(utility, alias, tasks, timeout, poll_s, progress)
        finally:
            connections.disconnect(alias)
    rows = sum(int(s.row_count) for s in states)
    if expected_rows is not None and rows != expected_rows:
        raise BulkImportError(f"bulk import into {collection} took {rows} rows, expected {expected_rows}")
    return rows


def _submit(utility, alias: str, collection: str, file_groups: list[list[str]]) -> list[int]:
    tasks = []
    for group in file_groups:
        try:
            tasks.append(utility.do_bulk_insert(collection, files=list(group), using=alias))
        except Exception as e:  # noqa: BLE001 - classified below
            if _refused(e):
                raise BulkImportUnavailable(f"the Milvus server refuses bulk import: {e}") from e
            raise BulkImportError(f"bulk import of {group} into {collection} was not accepted: {e}") from e
    return tasks


def _wait(utility, alias: str, tasks: list[int], timeout: float, poll_s: float, progress) -> list:
    t0 = time.monotonic()
    last_line, last_print = "", 0.0
    while True:
        states = [utility.get_bulk_insert_state(t, using=alias) for t in tasks]
        failed = [s for s in states if s.state in (_FAILED, _FAILED_CLEANED)]
        if failed:
            raise _failure(failed[0], len(failed), len(tasks))
        done = sum(s.state == _COMPLETED for s in states)
        pct = sum(_percent(s) for s in states) / len(states)
        rows = sum(int(s.row_count) for s in states)
        elapsed = time.monotonic() - t0
        line = f"[dedup] bulk import: {done}/{len(tasks)} shards done, {pct:.0f}%, {rows} rows persisted"
        if line != last_line or elapsed - last_print >= 30:
            progress(f"{line} ({elapsed:.0f}s)")
            last_line, last_print = line, elapsed
        if done == len(tasks):
            return states
        if elapsed > timeout:
            pending = [str(s.task_id) for s in states if s.state != _COMPLETED]
            raise BulkImportError(
                f"bulk import not finished after {timeout:.0f}s ({done}/{len(tasks)} shards done); "
                f"tasks still running on the server: {', '.join(pending)}"
            )
        time.sleep(poll_s)


def _percent(state) -> float:
    if state.state == _COMPLETED:
        return 100.0
    try:
        return float(state.infos.get("progress_percent", 0))
    except (TypeError, ValueError):
        return 0.0


def _failure(state, n_failed: int, n_tasks: int) -> RuntimeError:
    reason = state.failed_reason or state.infos.get("failed_reason", "") or "no reason given"
    files = state.infos.get("files", "?")
    msg = f"bulk import task {state.task_id} ({files}) failed: {reason} [{n_failed} of {n_tasks} shards failed]"
    if any(h in reason.lower() for h in _UNREADABLE_HINTS):
        return BulkImportUnavailable(
            "the Milvus server cannot read the staged shards (" + msg + "); stage them where the server reads "
            "them: a folder on its machine or shared storage (--bulk-dir, --bulk-server-dir) or its S3/MinIO "
            "bucket (--bulk-bucket)"
        )
    return BulkImportError(msg)


def bulk_load(target: MilvusTarget, collection: str, batches: Iterable[pa.Table], dim: int, staging: BulkStaging,
              timeout: float = 3600.0, keep_files: bool = False,
              progress: Callable[[str], None] = _print_progress) -> int:
    """Write ``batches`` (``vid``, ``embedding``) as Parquet shards and bulk-import them into ``collection``.

    Checks first that the server can bulk import at all (so no shard is written for Milvus Lite). Returns
    the rows imported. Local shards are removed afterwards unless ``keep_files``.
    """
    reason = unavailable_reason(target)
    if reason:
        raise BulkImportUnavailable(reason)
    t0 = time.monotonic()
    groups, rows = write_shards(batches, staging, dim)
    progress(f"[dedup] bulk import: wrote {rows} rows as {len(groups)} Parquet shards in {time.monotonic() - t0:.1f}s")
    try:
        return import_files(target, collection, groups, expected_rows=rows, timeout=timeout, progress=progress)
    finally:
        if not keep_files and not staging.remote:
            remove_local_shards(staging, groups)


def remove_local_shards(staging: BulkStaging, groups: list[list[str]]) -> None:
    """Delete local shard files (and their writer folders) after an import."""
    if staging.remote:
        return
    base = Path(staging.local_dir).resolve()
    for group in groups:
        for f in group:
            local = base / Path(f).relative_to(staging.server_dir) if staging.server_dir else Path(f)
            folder = local.parent
            local.unlink(missing_ok=True)
            # LocalBulkWriter layout: local_dir/<uuid>/<n>.parquet; remove the emptied <uuid> folder.
            while folder != base and folder.is_relative_to(base) and folder.exists() and not any(folder.iterdir()):
                shutil.rmtree(folder, ignore_errors=True)
                folder = folder.parent
