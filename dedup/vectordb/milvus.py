"""Milvus access: per-run collections, index choice, client creation (the Milvus Lite server: :mod:`dedup.vectordb.lite`).

Contract:

* :class:`~dedup.vectordb.lite.MilvusLiteServer` (in :mod:`dedup.vectordb.lite`) runs ``milvus-lite server``
  (gRPC, bound to 127.0.0.1 only) over a data dir.
  Milvus Lite lets one process open a data dir, but the job has many writers and search actors, so every
  actor connects to that server by URI, exactly as they would to a Milvus server given with --milvus-uri.
  The server is stopped when the job ends, also on failure.
* :class:`MilvusTarget` (uri, token, db) says which Milvus to talk to; it is small and picklable, so Ray
  actors receive it and open their own clients.
* Collections are named per run (:func:`run_collection_name`: one name per output folder, or the name
  given) and carry their owner (the output folder) in their description. :func:`create_collection` never
  drops a collection that another run made: it replaces one only when it was made by dedup for the same
  output folder, when it lives in Milvus Lite (whose data dir belongs to one output folder), or when the
  caller passes ``replace=True``; otherwise it raises :class:`CollectionInUseError` saying what to pass.
  :func:`drop_collection` removes the run's collection at the end when asked (``--drop-collection``).
* :func:`choose_index` picks the ANN index from the row count (rule in its docstring) and returns the
  build parameters with the matching search parameters; :func:`build_index_and_load` flushes, builds it
  and loads the collection for search.

Bulk import (Parquet shards + server-side import) lives in :mod:`dedup.vectordb.bulk`.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

VECTOR_FIELD = "embedding"
ID_FIELD = "vid"
METRIC = "COSINE"  # vectors are L2-normalised, so cosine = inner product
BINARY_METRIC = "HAMMING"  # hash bits stored as BINARY_VECTOR (on a server: Milvus Lite has none)

# AUTO rule thresholds (rows); see choose_index.
AUTO_FLAT_MAX_ROWS = 100_000
AUTO_HNSW_MAX_ROWS = 5_000_000
# Marks a collection as made by this job; the rest of the description is the owning output folder.
OWNER_PREFIX = "ray-image-dedup output="
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


@dataclass(frozen=True)
class MilvusTarget:
    """Which Milvus to talk to: a server or cluster URI (``http://host:19530``), token and database."""

    uri: str
    token: str | None = None
    db_name: str | None = None

    def client(self):
        """A new MilvusClient; the caller closes it."""
        from pymilvus import MilvusClient

        kwargs = {"uri": self.uri, "timeout": 600}
        if self.uri.startswith(("http://127.0.0.1:", "http://localhost:")):
            # pymilvus pings every 10 s; a gRPC server's default policy allows one ping per 5 minutes while no
            # data flows, and Milvus Lite keeps that default: a client waiting on a long request (a store of a
            # million vectors) got GOAWAY "too_many_pings" and lost its connection. Loopback needs no keepalive.
            kwargs["grpc_options"] = {"grpc.keepalive_time_ms": 600_000, "grpc.keepalive_permit_without_calls": False}
        if self.token:
            kwargs["token"] = self.token
        if self.db_name:
            kwargs["db_name"] = self.db_name
        return MilvusClient(**kwargs)


def server_version(target: MilvusTarget) -> str:
    """The server's version string (``v2.3.5-lite``, ``v2.4.15``, ``milvus_lite-3.2.2`` ...)."""
    client = target.client()
    try:
        return str(client.get_server_version())
    finally:
        client.close()


def is_milvus_lite(version: str) -> bool:
    """True for a Milvus Lite server (``milvus_lite-x.y.z``); the embedded 2.3 standalone says ``-lite`` too
    but is a full server, so only the ``milvus_lite`` prefix counts."""
    return version.strip().lower().startswith("milvus_lite")


# ---------------------------------------------------------------------------------------------------------
# Per-run collections


class CollectionInUseError(RuntimeError):
    """The collection name is taken by data this run did not make; the message says what to pass."""


def run_collection_name(output_dir: str | os.PathLike, explicit: str | None = None) -> str:
    """The run's collection: ``explicit`` when given (checked), else ``dedup_`` + 12 hex of the output folder.

    The same output folder always gives the same name (so a re-run finds its own collection), and two
    output folders practically never share one (48 bits of SHA-1 of the resolved path).
    """
    if explicit:
        if not _NAME_RE.match(explicit):
            raise ValueError(
                f"collection name {explicit!r} is not valid in Milvus: letters, digits and _, not starting with a digit"
            )
        return explicit
    resolved = str(Path(output_dir).expanduser().resolve())
    return "dedup_" + hashlib.sha1(resolved.encode()).hexdigest()[:12]


def owner_description(owner: str | os.PathLike | None) -> str:
    """The collection description that records who made it (the output folder, resolved)."""
    return OWNER_PREFIX + (str(Path(owner).expanduser().resolve()) if owner is not None else "?")


def collection_owner(target: MilvusTarget, name: str) -> str | None:
    """The output folder recorded by dedup in an existing collection, ``""`` for a collection dedup did not
    make (or made before owners were recorded), None when there is no such collection."""
    client = target.client()
    try:
        if not client.has_collection(name):
            return None
        desc = str(client.describe_collection(name).get("description") or "")
    finally:
        client.close()
    return desc[len(OWNER_PREFIX):] if desc.startswith(OWNER_PREFIX) else ""


def collection_schema(dim: int, owner: str | os.PathLike | None = None, binary: bool = False):
    """The run's schema: int64 primary key ``vid`` (no auto id) and a FLOAT_VECTOR ``embedding`` (with
    ``binary``: a BINARY_VECTOR of ``dim`` bits, for the hash models on a server)."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=owner_description(owner))
    schema.add_field(ID_FIELD, DataType.INT64, is_primary=True)
    schema.add_field(VECTOR_FIELD, DataType.BINARY_VECTOR if binary else DataType.FLOAT_VECTOR, dim=dim)
    return schema


def create_collection(target: MilvusTarget, name: str, dim: int, replace: bool = False,
                      owner: str | os.PathLike | None = None, binary: bool = False) -> None:
    """Create the run's (empty) collection, replacing an existing one only when that is safe.

    An existing collection ``name`` is dropped and made again when ``replace`` is true, when its
    description says dedup made it for the same ``owner`` (output folder), or when the server is Milvus
    Lite (the job's Lite data dir lies in the output folder, so everything in it is this run's). Otherwise
    :class:`CollectionInUseError` is raised and nothing is touched.
    """
    client = target.client()
    try:
        if client.has_collection(name):
            recorded = _recorded_owner(client, name)
            mine = owner is not None and recorded == str(Path(owner).expanduser().resolve())
            if not (replace or mine or is_milvus_lite(str(client.get_server_version()))):
                whose = f"dedup's run writing to {recorded}" if recorded and recorded != "?" else "something else than this run"
                raise CollectionInUseError(
                    f"Milvus collection {name!r} at {target.uri} already exists and was made by {whose}; "
                    "it is left as it is. Pass --collection NAME to use another collection, or "
                    "--replace-collection to drop this one and store this run's vectors there."
                )
            client.drop_collection(name)
        client.create_collection(name, schema=collection_schema(dim, owner, binary=binary))
    finally:
        client.close()


def _recorded_owner(client, name: str) -> str:
    desc = str(client.describe_collection(name).get("description") or "")
    return desc[len(OWNER_PREFIX):] if desc.startswith(OWNER_PREFIX) else ""


def drop_collection(target: MilvusTarget, name: str, owner: str | os.PathLike | None = None) -> bool:
    """Drop the collection (cleanup at the end of a job). With ``owner``, only if dedup made it for that
    output folder. Returns whether it was dropped."""
    client = target.client()
    try:
        if not client.has_collection(name):
            return False
        if owner is not None and _recorded_owner(client, name) != str(Path(owner).expanduser().resolve()):
            return False
        client.drop_collection(name)
        return True
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------------------
# Index choice


@dataclass(frozen=True)
class IndexChoice:
    """An index to build and how to search it."""

    index_type: str  # FLAT | IVF_FLAT | HNSW | AUTOINDEX, or BIN_FLAT | BIN_IVF_FLAT for binary vectors
    build_params: dict = field(default_factory=dict)
    search_params: dict = field(default_factory=dict)  # merged into the search request's "params"
    reason: str = ""

    def search_params_for(self, limit: int) -> dict:
        """Search params for a request asking ``limit`` hits: HNSW needs ``ef >= limit`` (top-k)."""
        params = dict(self.search_params)
        if self.index_type == "HNSW":
            params["ef"] = max(int(params.get("ef", 64)), int(limit))
        return params


def ivf_nlist(n_rows: int) -> int:
    """IVF clusters: 4 * sqrt(rows), at least 16 and at most 65536 (Milvus's limit)."""
    return int(min(65536, max(16, round(4 * math.sqrt(max(n_rows, 1))))))


def choose_index(n_rows: int, requested: str = "AUTO", limit: int = 512,
                 flat_max_rows: int = AUTO_FLAT_MAX_ROWS, hnsw_max_rows: int = AUTO_HNSW_MAX_ROWS,
                 binary: bool = False) -> IndexChoice:
    """The index for a collection of ``n_rows`` vectors searched with ``limit`` hits per query.

    ``requested`` other than AUTO is kept (its parameters sized by ``n_rows``). The AUTO rule:

    * fewer than ``flat_max_rows`` (100k) rows: FLAT. Exact, so range search returns every pair above the
      threshold, and brute force over 100k vectors costs about what an ANN search costs on a server.
    * up to ``hnsw_max_rows`` (5M): HNSW, M=16, efConstruction=200; search ef = max(64, limit) (HNSW needs
      ef >= top-k). Best recall for near neighbours at this size; memory is the vectors plus ~M*8 bytes.
    * above: IVF_FLAT, nlist = 4*sqrt(n) (clamped to 16..65536), nprobe = max(16, nlist/16). Builds in a
      fraction of HNSW's time and memory at tens of millions of vectors.

    Duplicates are very close neighbours, so the approximate indexes find them even where they miss
    marginal hits; the job still re-asks queries that fill their limit (see the search stage).

    ``binary`` (hash bits as BINARY_VECTOR, HAMMING): BIN_FLAT below ``flat_max_rows``, else BIN_IVF_FLAT
    (sized as IVF_FLAT; Milvus 2.3 has no HNSW for binary vectors, so HNSW/AUTOINDEX get BIN_IVF_FLAT).
    """
    requested = (requested or "AUTO").upper()
    from dedup.config import choices

    if requested not in choices("index"):
        raise ValueError(f"index must be one of {', '.join(choices('index'))}, got {requested!r}")
    n = int(n_rows)
    if requested == "AUTO":
        if n < flat_max_rows:
            kind, why = "FLAT", f"AUTO: {n} rows < {flat_max_rows}: exact search"
        elif n <= hnsw_max_rows:
            kind, why = "HNSW", f"AUTO: {flat_max_rows} <= {n} rows <= {hnsw_max_rows}"
        else:
            kind, why = "IVF_FLAT", f"AUTO: {n} rows > {hnsw_max_rows}"
    else:
        kind, why = requested, "requested"
    if binary and kind != "FLAT":  # binary vectors: FLAT or IVF_FLAT only (as BIN_FLAT / BIN_IVF_FLAT)
        if kind != "IVF_FLAT":
            why = f"{why}; {kind} is not offered for binary vectors: IVF_FLAT instead"
        kind = "IVF_FLAT"
    prefix, why = ("BIN_", f"binary vectors; {why}") if binary else ("", why)
    if kind == "IVF_FLAT":
        nlist = ivf_nlist(n)
        return IndexChoice(prefix + kind, {"nlist": nlist}, {"nprobe": min(nlist, max(16, nlist // 16))}, why)
    if kind == "HNSW":
        return IndexChoice(kind, {"M": 16, "efConstruction": 200}, {"ef": max(64, int(limit))}, why)
    return IndexChoice(prefix + kind, {}, {}, why)


def index_params_for(index: str) -> dict:
    """Build params for ``index`` when the row count is not known (IVF sized for about 65k rows)."""
    return choose_index(65_536, index if index != "AUTO" else "FLAT").build_params


def build_index_and_load(target: MilvusTarget, name: str, index: "str | IndexChoice" = "AUTO",
                         limit: int = 512, binary: bool = False) -> IndexChoice:
    """Flush, (re)build the vector index and load the collection for search. Returns the index built.

    ``index`` is an :class:`IndexChoice` or a name for :func:`choose_index` (AUTO: chosen by row count);
    ``binary``: the collection holds BINARY_VECTORs, indexed for the HAMMING metric. The flush also pays on
    Milvus Lite, which keeps rows without one: unflushed, loading the collection and counting its rows took
    1.0-1.1 s instead of 0.4-0.5 s with the flush (2,014 2048-d vectors).
    """
    client = target.client()
    try:
        client.flush(name)
        if isinstance(index, IndexChoice):
            choice = index
        else:
            rows = int(client.get_collection_stats(name).get("row_count", 0))
            choice = choose_index(rows, index, limit, binary=binary)
        existing = client.list_indexes(name)
        if existing:  # a re-run or another index type: the old index goes
            client.release_collection(name)
            for idx in existing:
                client.drop_index(name, idx)
        params = client.prepare_index_params()
        params.add_index(field_name=VECTOR_FIELD, index_type=choice.index_type, metric_type=BINARY_METRIC if binary else METRIC,
                         params=choice.build_params)
        # sync=False: pymilvus's own wait sleeps 0.5 s before its first look, however small the index;
        # _wait_for_index looks at once, then backs off.
        try:
            client.create_index(name, params, sync=False)
        except Exception as e:  # noqa: BLE001 - see below
            # Milvus Lite builds the index inside the request: a long build can outlast pymilvus's deadline,
            # whose retry then finds the index the first request made. That index is the one asked for.
            if "already exists" not in str(e):
                raise
        _wait_for_index(client, name)
        client.load_collection(name)
        return choice
    finally:
        client.close()


def _wait_for_index(client, name: str, timeout: float = 3600.0, poll_s: float = 1.0) -> None:
    """Wait until the index covers every row. Bulk-imported segments are searchable only once indexed, so
    searching earlier silently misses vectors (measured: 25 % of the planted pairs lost at 1M vectors).
    Polls at once, then after 0.02 s, doubling up to ``poll_s``."""
    deadline = time.monotonic() + timeout
    last = None
    wait = 0.02
    while True:
        try:
            names = client.list_indexes(name)
            info = client.describe_index(name, names[0]) if names else {}
        except Exception:  # noqa: BLE001 - Milvus Lite and old servers: nothing to wait for
            return
        total, done = int(info.get("total_rows", 0) or 0), int(info.get("indexed_rows", 0) or 0)
        pending = int(info.get("pending_index_rows", 0) or 0)
        state = str(info.get("state", ""))
        if (pending == 0 and done >= total) or "total_rows" not in info:
            return
        if "Failed" in state:
            raise RuntimeError(f"Milvus failed to build the index of {name}: {info.get('index_state_fail_reason') or info}")
        if (done, total) != last:
            print(f"[dedup] index build: {done}/{total} rows indexed", file=sys.stderr, flush=True)
            last = (done, total)
        if time.monotonic() > deadline:
            raise RuntimeError(f"the index of {name} was not built within {timeout:.0f}s ({done}/{total} rows)")
        time.sleep(wait)
        wait = min(poll_s, wait * 2)


def loaded_count(target: MilvusTarget, name: str) -> int:
    """Rows in an existing collection (loading it for search), or -1 when it is not there or unusable."""
    import sys

    try:
        client = target.client()
        try:
            if not client.has_collection(name):
                return -1
            client.load_collection(name)
            res = client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")
            return int(res[0]["count(*)"])
        finally:
            client.close()
    except Exception as e:  # noqa: BLE001 - any failure means: store again
        print(f"[dedup] stored collection {name} not reusable ({e}); storing again", file=sys.stderr)
        return -1
