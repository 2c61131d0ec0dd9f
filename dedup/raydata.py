"""``dedup.ray``: deduplicate a ``ray.data.Dataset`` inside a Ray Data pipeline.

    >>> import ray, dedup
    >>> ds = ray.data.read_parquet("s3://bucket/shards")           # rows: key, jpg (bytes), caption, ...
    >>> out = dedup.ray.deduplicate(ds, image_column="jpg", id_column="key", output="./dedup-out")
    >>> out.filter(expr="dedup_keep").write_parquet("s3://bucket/deduplicated")

How: the dataset's (id, image) rows are written as Parquet shards (``OUTPUT/input-shards``, or
``shards=``), the job runs on them exactly as ``dedup run --input-format parquet`` would (the same
stages, on the Ray this process is connected to, Milvus Lite or ``milvus_uri``), and its manifest is joined
back to the dataset by id. The returned Dataset is the input with four columns more:

* ``dedup_cluster`` (int64): the cluster (the manifest's ``cluster_id``); null where ``dedup_error`` is set;
* ``dedup_keep`` (bool): the row is the one kept of its cluster (a row with no duplicate is kept too;
  of byte-identical rows, the one with the smallest id); false where ``dedup_error`` is set;
* ``dedup_canonical_id`` (the id column's type): the id of the row kept for this one (its own where kept);
* ``dedup_error`` (string): why the row's image could not be used (null image, not an image, truncated,
  too large, ...); null for every other row. No row is lost.

``keep_only=True`` returns only the kept rows (``dedup_keep``). The returned Dataset is lazy and reads
``ds`` again: a dataset that gives other rows on a second read (random sampling) should be
``materialize()``-d first; a row whose id the run did not see gets a ``dedup_error``.

The image column may hold encoded bytes (``binary``; what ``read_parquet``, ``read_binary_files``,
``read_webdataset(decoder=None)`` give), a Hugging Face style ``{bytes, path}`` struct
(``from_huggingface``; a null ``bytes`` is read from ``path``), or decoded pixel arrays
(``read_images``, ``read_webdataset``'s default decoder): those are re-encoded losslessly as PNG, so
copies and clusters are found as for the files, but the kept-image choice no longer sees the original
files' format and JPEG quality (``read_binary_files(..., include_paths=True)`` gives the bytes instead).
Ids must be unique, non-null scalars (a ``path`` column does).
"""
from __future__ import annotations

import hashlib
import inspect
import os
import typing
import uuid
from typing import Any

if typing.TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import ray.data

# Options that the Ray form sets itself: the shards it writes are the inputs.
FIXED = ("inputs", "output", "input_format", "image_column", "include", "exclude")
COLUMNS = ("dedup_cluster", "dedup_keep", "dedup_canonical_id", "dedup_error")


def deduplicate(ds: ray.data.Dataset, *, image_column: str, id_column: str, output: str | os.PathLike,
                keep_only: bool = False, shards: str | None = None, **options: Any) -> ray.data.Dataset:
    """Deduplicate the images of ``ds`` and return it with ``dedup_cluster``, ``dedup_keep``,
    ``dedup_canonical_id`` and ``dedup_error`` (module docstring); ``keep_only=True``: the kept rows only.

    ``image_column``: encoded image bytes, a ``{bytes, path}`` struct or a pixel array per row;
    ``id_column``: a unique id per row. ``output``: the job's output folder (manifest, report,
    summary.json; a second call with the same rows reuses every finished stage). ``shards``: where the
    (id, image) Parquet shards go (default ``OUTPUT/input-shards``; on a multi-node cluster a path or
    fsspec URI every node can read). Every other keyword is an option of ``dedup run`` in snake_case
    (``model``, ``threshold``, ``max_bits``, ``canonical``, ``milvus_uri``, ...); an unknown one is a
    ``TypeError`` listing them. Ray: the one this process is connected to, else started here (and left
    running: the returned Dataset needs it).
    """
    from dedup.api import make_config
    from dedup.errors import NoImages
    from dedup.job import run
    from dedup.ray_env import init_ray

    fixed = {"input_format": "parquet", "image_column": "image", "include": [], "exclude": []}
    make_config("deduplicate", ["-"], os.fspath(output), options, **fixed).validate()  # bad options before any work
    _check_columns(ds, image_column, id_column)
    init_ray(options.get("ray_address"))
    base = shards or os.path.join(os.path.abspath(os.path.expanduser(os.fspath(output))), "input-shards")
    files, rows = write_shards(ds, image_column, id_column, base, prune=shards is None)
    if files:
        try:
            run(make_config("deduplicate", files, os.fspath(output), options, **fixed))
        except NoImages as e:  # every row broken: each comes back with its reason (this run's errors are written)
            if not getattr(e, "errors_written", False):
                raise
    lookup = results(output, rows) if files else _empty_lookup()
    return annotate(ds, id_column, lookup, keep_only)


def _check_columns(ds, image_column: str, id_column: str) -> None:
    if image_column == id_column:
        raise ValueError(f"image_column and id_column are both {id_column!r}: the id must be a column of its own")
    names = ds.schema().names
    for what, col in (("image_column", image_column), ("id_column", id_column)):
        if col not in names:
            raise ValueError(f"{what} {col!r} is not a column of the dataset (columns: {', '.join(names)})")


# --- the (id, image) shards -------------------------------------------------------------------------------

def image_bytes(value: Any) -> tuple[bytes | None, str | None]:
    """(encoded bytes, None) for one row's image value, or (None, why not): bytes as they are, a
    ``{bytes, path}`` struct's bytes (or its path's), a pixel array as a lossless PNG."""
    import numpy as np

    if value is None:
        return None, "no image in the row (null)"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), None
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return image_bytes(value["bytes"])
        if value.get("path"):
            from dedup.sources import read_file

            try:
                return read_file(str(value["path"])), None
            except OSError as e:
                return None, f"could not read the struct's path {value['path']}: {e}"
        return None, "image struct with neither bytes nor path"
    if isinstance(value, np.ndarray) and value.dtype != object:
        return _png(value)
    return None, f"the image column holds {type(value).__name__}, not encoded bytes, a {{bytes, path}} struct or a pixel array"


def _png(arr) -> tuple[bytes | None, str | None]:
    """A decoded image (H x W, H x W x 1/3/4; uint8, or uint16 grey) as PNG bytes: lossless."""
    import io

    import numpy as np
    from PIL import Image

    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    ok = (arr.ndim == 2 and arr.dtype in (np.uint8, np.uint16)) or (arr.ndim == 3 and arr.shape[2] in (3, 4) and arr.dtype == np.uint8)
    if not ok:
        return None, f"pixel array of shape {arr.shape} and dtype {arr.dtype} is no image (H x W [x 3|4] uint8, or uint16 grey)"
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, "PNG", compress_level=1)
    return buf.getvalue(), None


def _shard_rows(batch: dict, image_column: str, id_column: str) -> pa.Table:
    """One batch of the dataset as shard rows: id, image (bytes), sha (of the bytes), error (why none)."""
    import pyarrow as pa

    images, shas, errors = [], [], []
    for value in batch[image_column]:
        data, error = image_bytes(value)
        images.append(data)
        shas.append(hashlib.sha256(data).hexdigest() if data is not None else None)
        errors.append(error)
    ids = batch[id_column]
    return pa.table({"id": pa.array(list(ids) if ids.dtype == object else ids), "image": pa.array(images, pa.large_binary()),
                     "sha": pa.array(shas, pa.string()), "error": pa.array(errors, pa.string())})


def write_shards(ds, image_column: str, id_column: str, base: str, prune: bool = True) -> tuple[list[str], pd.DataFrame]:
    """Write the (id, image) shards under ``base`` and return their paths (as the job names them) and
    one row per shard row: item (``<shard>#row=<n>``), id, error.

    Content-addressed, so that a second call with the same rows resumes: the rows go to a new folder,
    and ``base/<digest>.json`` (the digest of the sorted (id, sha) pairs) names the folder that first held
    them; where one does, it is used and the new one removed. ``prune``: remove the other folders under
    ``base`` (the default ``OUTPUT/input-shards``, which holds this output's shards only)."""
    import json

    from fsspec.core import url_to_fs

    fs, root = url_to_fs(base)
    staging = uuid.uuid4().hex
    prepared = ds.select_columns([id_column, image_column]).map_batches(
        _shard_rows, batch_format="numpy", batch_size=256, fn_kwargs={"image_column": image_column, "id_column": id_column})
    kw = {}
    if "://" in base and not base.startswith("file://"):
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        kw["filesystem"] = PyFileSystem(FSSpecHandler(fs))
    prepared.write_parquet(f"{root}/{staging}" if kw else os.path.join(base, staging), **kw)
    rows = _read_back(fs, f"{root}/{staging}")
    digest = _digest(rows)
    marker = f"{root}/{digest}.json"
    chosen = staging
    if fs.exists(marker):
        earlier = json.loads(fs.cat_file(marker))["dir"]
        if fs.exists(f"{root}/{earlier}"):
            chosen = earlier
    if chosen == staging:
        fs.pipe_file(marker, json.dumps({"dir": staging, "rows": len(rows)}).encode())
    else:
        fs.rm(f"{root}/{staging}", recursive=True)
    if prune:
        for p in fs.ls(root, detail=False):
            name = p.rstrip("/").rsplit("/", 1)[-1]
            if name not in (chosen, f"{digest}.json"):
                fs.rm(p, recursive=True)
    rows = _read_back(fs, f"{root}/{chosen}")
    _check_ids(rows)
    return sorted(rows["shard"].unique().tolist()), rows


def _read_back(fs, folder: str) -> pd.DataFrame:
    """One row per shard row: shard (its path as the job names it), item, id, sha, error."""
    import pandas as pd
    import pyarrow.parquet as pq

    from dedup.sources import _display

    frames = []
    files = sorted(p for p in fs.find(folder) if p.endswith(".parquet")) if fs.exists(folder) else []
    for p in files:
        with fs.open(p, "rb") as f:
            t = pq.read_table(f, columns=["id", "sha", "error"]).to_pandas()
        shard = _display(fs, p)
        t.insert(0, "item", [f"{shard}#row={i}" for i in range(len(t))])
        t.insert(0, "shard", shard)
        frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["shard", "item", "id", "sha", "error"])


def _digest(rows: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for key in sorted(f"{i!r}\t{s}" for i, s in zip(rows["id"], rows["sha"])):
        h.update(key.encode() + b"\n")
    return h.hexdigest()[:24]


def _check_ids(rows: pd.DataFrame) -> None:
    if rows["id"].isna().any():
        raise ValueError(f"id_column has {int(rows['id'].isna().sum())} null values: every row needs an id")
    repeated = rows["id"][rows["id"].duplicated()]
    if len(repeated):
        raise ValueError(f"id_column values must be unique: {len(repeated)} repeated, e.g. {repeated.iloc[0]!r}")


# --- the results, joined back by id -----------------------------------------------------------------------

def results(output, rows: pd.DataFrame) -> pd.DataFrame:
    """id -> dedup_cluster, dedup_keep, dedup_canonical_id, dedup_error: the run's manifest and errors
    on the shard rows (a row's own reason, e.g. a pixel array that is no image, before the job's).

    Of byte-identical rows, the one with the smallest id is kept: the manifest keeps one of them by its
    item path (``<shard>#row=<n>``), which says nothing about the dataset, where the id is the row's name.
    """
    import numpy as np
    import pandas as pd

    from dedup.layout import OutputLayout

    layout = OutputLayout.of(output)
    man = pd.read_parquet(layout.manifest_parquet, columns=["path", "cluster_id", "is_canonical"])
    errs = pd.read_parquet(layout.errors_parquet, columns=["path", "error"])
    out = rows[["item", "id", "sha", "error"]].rename(columns={"error": "own_error"}).merge(man, left_on="item", right_on="path", how="left")
    out = out.merge(errs.rename(columns={"path": "item"}), on="item", how="left")
    error = out["own_error"].where(out["own_error"].notna(), out["error"])
    missing = out["cluster_id"].isna() & error.isna()
    error = error.where(~missing, "not in the run's manifest (internal error, please report)")
    # the kept content of each cluster (none where a reference image is kept), and its smallest id
    kept_sha = out[out["is_canonical"].fillna(False).astype(bool)].set_index("cluster_id")["sha"]
    same = out["sha"].to_numpy(dtype=object) == out["cluster_id"].map(kept_sha).to_numpy(dtype=object)
    ids = out["id"].to_numpy(dtype=object)
    keeper: dict = {}
    for c, i in zip(out["cluster_id"].to_numpy()[same], ids[same]):
        keeper[c] = i if c not in keeper else min(keeper[c], i)
    canon = np.array([keeper.get(c) for c in out["cluster_id"].to_numpy()], dtype=object)  # ids as they are (no float for int ids)
    return pd.DataFrame({
        "id": ids,
        "dedup_cluster": out["cluster_id"].fillna(-1).astype("int64").to_numpy(),  # -1: none (an error)
        "dedup_keep": np.array([k is not None and i == k for i, k in zip(ids, canon)], dtype=bool) & same,
        "dedup_canonical_id": canon,
        "dedup_error": _objects(error),
    })


def _objects(values: pd.Series):
    """An object array with None (not NaN) where a value is missing: Arrow takes None as null for any type."""
    out = values.astype(object).to_numpy(dtype=object, copy=True)
    out[values.isna().to_numpy()] = None
    return out


def _empty_lookup() -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    return pd.DataFrame({"id": np.array([], object), "dedup_cluster": np.array([], np.int64), "dedup_keep": np.array([], bool),
                         "dedup_canonical_id": np.array([], object), "dedup_error": np.array([], object)})


_LOOKUPS: dict[str, tuple] = {}  # per worker process: the lookup of an ObjectRef, indexed once


def _lookup(ref) -> tuple:
    """(index of the ids, {column: numpy array}) of the lookup behind ``ref``, built once per worker."""
    import pandas as pd
    import ray

    key = ref.hex() if isinstance(ref, ray.ObjectRef) else str(id(ref))
    if key not in _LOOKUPS:
        df = ray.get(ref) if isinstance(ref, ray.ObjectRef) else ref
        _LOOKUPS.clear()
        # object columns with None for missing (pandas may hold strings as its str dtype, missing as NaN)
        cols = {c: (_objects(df[c]) if c in ("dedup_canonical_id", "dedup_error") else df[c].to_numpy()) for c in COLUMNS}
        _LOOKUPS[key] = (pd.Index(df["id"].to_numpy(dtype=object)), cols)
    return _LOOKUPS[key]


NOT_SEEN = "row not in the deduplicated data (the dataset gave other rows on a second read: materialize() it first)"


def _annotate_batch(batch: pa.Table, lookup, id_column: str, keep_only: bool) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    index, cols = _lookup(lookup)
    ids = batch.column(id_column)
    at = index.get_indexer(np.asarray(ids.to_pylist(), dtype=object)) if len(index) else np.full(len(batch), -1)
    seen = at >= 0
    take = np.where(seen, at, 0)

    def col(name, fill):
        return np.where(seen, cols[name][take], fill) if len(index) else np.full(len(batch), fill, dtype=object if fill is None or isinstance(fill, str) else None)

    cluster = col("dedup_cluster", -1).astype(np.int64)
    keep = col("dedup_keep", False).astype(bool)
    out = (batch.append_column("dedup_cluster", pa.array(cluster, pa.int64(), mask=cluster < 0))
           .append_column("dedup_keep", pa.array(keep, pa.bool_()))
           .append_column("dedup_canonical_id", pa.array(list(col("dedup_canonical_id", None)), type=ids.type))
           .append_column("dedup_error", pa.array(list(col("dedup_error", NOT_SEEN)), pa.string())))
    return out.filter(pa.array(keep)) if keep_only else out


def annotate(ds, id_column: str, lookup: pd.DataFrame, keep_only: bool = False):
    """``ds`` with the :data:`COLUMNS` of ``lookup`` (id -> columns) joined by ``id_column``, in order,
    without a shuffle: the lookup goes to the object store once and each worker indexes it once."""
    import ray

    for name in COLUMNS:
        if name in ds.schema().names:
            raise ValueError(f"the dataset already has a column {name!r}")
    ref = ray.put(lookup)
    return ds.map_batches(_annotate_batch, batch_format="pyarrow",
                          fn_kwargs={"lookup": ref, "id_column": id_column, "keep_only": keep_only})


def _signature() -> None:
    from dedup.api import with_options_signature

    fixed = [p for name, p in inspect.signature(deduplicate).parameters.items() if name != "options"]
    with_options_signature(deduplicate, fixed, skip=FIXED)


_signature()

__all__ = ["deduplicate", "image_bytes", "COLUMNS"]
