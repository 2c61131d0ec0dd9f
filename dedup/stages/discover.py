"""Stage `discover`: the inputs found, their bytes hashed, one vector id per distinct content.

In:  ``--input`` (folders, files, fsspec URIs, Parquet and WebDataset shards), ``--include``/``--exclude``.
Out: ``files.parquet`` (:data:`dedup.ops.hashing.FILES_SCHEMA` plus ``vid``: path, kind, unit, source,
     bytes, sha, error), sorted by path; its value is a :class:`Files` (the table, the representatives).
     The files left out (not an image by extension, hidden, excluded, this or an earlier output folder:
     :func:`dedup.sources.find_inputs`) are counted in the metrics' ``skipped``, kept in ``state.json``.

An ``--input`` that does not exist stops the job (:class:`~dedup.errors.InputNotFound`; local paths are
checked before the job starts), and so does an input with no image in it (:class:`~dedup.errors.NoImages`).

Byte-identical files share a vid, so each distinct content is decoded and embedded once
(:mod:`dedup.ops.plan`). Hashing runs in the driver's threads for a local run over local inputs (beside
Ray's start-up: it needs no Ray), else on Ray tasks over blocks of about 256 files.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedup.stages.base import Stage, StageContext, StageResult


@dataclass
class Files:
    table: pd.DataFrame  # files.parquet
    reps: pd.DataFrame  # one representative per vid (vid, sha, path, kind, unit)

    @property
    def n(self) -> int:
        """Distinct contents (vids 0..n-1)."""
        return len(self.reps)


class DiscoverStage(Stage):
    name = "discover"
    items = "files"

    def fingerprint(self, ctx: StageContext):
        cfg = ctx.cfg
        return [sorted(cfg.inputs), cfg.input_format, cfg.image_column, cfg.include, cfg.exclude, "skips-v1", self._listing(ctx)]

    def _listing(self, ctx: StageContext) -> str:
        """What the inputs hold now: every unit found, with a local file's size and modification time, so that
        a file added, removed or changed since the stored run reruns discovery (and what depends on it)."""
        import hashlib
        import os

        from dedup.sources import find_inputs

        cfg = ctx.cfg
        self._found = find_inputs(cfg.inputs, cfg.input_format, cfg.include, cfg.exclude, skip_dirs=[str(ctx.layout.root)])
        h = hashlib.sha1()
        for u in self._found.units:
            try:
                st = os.stat(u.path) if "://" not in u.path else None
                h.update(f"{u.kind}\t{u.path}\t{st.st_size if st else ''}\t{st.st_mtime_ns if st else ''}\n".encode())
            except OSError:
                h.update(f"{u.kind}\t{u.path}\tunreadable\n".encode())
        return h.hexdigest()

    def artifacts(self, ctx: StageContext):
        return (ctx.layout.files,)

    def needs_ray(self, ctx: StageContext) -> bool:
        return not local_inputs(ctx.cfg)

    def load(self, ctx: StageContext, stored: dict) -> StageResult:
        return _result(pq.read_table(ctx.layout.files), stored.get("skipped"))

    def run(self, ctx: StageContext) -> StageResult:
        from dedup.ops import plan

        hashed, skipped = _hash_inputs(ctx, getattr(self, "_found", None))
        table, _ = plan.assign_vids(hashed)
        table = table.sort_by("path")
        tmp = ctx.layout.files.with_suffix(".tmp")
        pq.write_table(table, tmp)
        tmp.replace(ctx.layout.files)
        return _result(table, skipped)


def _result(table: pa.Table, skipped: dict | None) -> StageResult:
    from dedup.ops import plan

    df = table.to_pandas()
    skipped = skipped or {"files": 0, "by_reason": {}, "by_extension": {}, "examples": {}}
    metrics = {"files": table.num_rows, "megabytes": round((pc.sum(table["bytes"]).as_py() or 0) / 1e6, 2), "skipped": skipped}
    return StageResult(Files(df, plan.representatives(df)), metrics, state={"skipped": skipped})


def local_inputs(cfg) -> bool:
    """A run on this machine's own Ray (no --ray-address) over inputs on its own disks: hashing them in
    the driver's threads needs no Ray, so it runs beside Ray's start-up (see :meth:`DiscoverStage.needs_ray`)."""
    from dedup.ray_env import local_run

    return local_run(cfg) and all("://" not in str(src) or str(src).startswith("file://") for src in cfg.inputs)


def _hash_inputs(ctx: StageContext, found=None) -> tuple[pa.Table, dict]:
    """The inputs' hashes, and the files left out (``Discovery.skipped_summary``); ``found``: the listing the
    fingerprint made, where it did."""
    from dedup.errors import InputNotFound, NoImages
    from dedup.sources import find_inputs

    cfg = ctx.cfg
    found = found or find_inputs(cfg.inputs, cfg.input_format, cfg.include, cfg.exclude, skip_dirs=[str(ctx.layout.root)])
    missing = [u.source for u in found.units if u.kind == "missing"]
    if missing:
        raise InputNotFound(f"input not found or not readable: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    skipped = found.skipped_summary()
    items = [{"kind": u.kind, "unit": u.path, "source": u.source} for u in found.units]
    if not items:
        raise NoImages(_no_images_message(cfg.inputs, skipped))
    table = _hash_here(items, cfg.image_column) if local_inputs(cfg) else _hash_on_ray(items, cfg.image_column)
    if table.num_rows == 0:  # shards without a row or an image member
        raise NoImages(f"no images in {', '.join(cfg.inputs)}: its {len(items):,} shards hold no image")
    return table, skipped


def _no_images_message(inputs: list[str], skipped: dict) -> str:
    from dedup.sources import SKIP_REASONS

    where = ", ".join(inputs)
    if not skipped["files"]:
        return f"no images in {where}: it holds no files"
    why = "; ".join(f"{n:,} {SKIP_REASONS.get(r, r)}" for r, n in skipped["by_reason"].items())
    exts = ", ".join(f"{e} {n:,}" for e, n in list(skipped["by_extension"].items())[:5])
    return f"no images in {where}: all {skipped['files']:,} files were skipped ({why}; extensions: {exts})"


def _hash_here(items: list[dict], image_column: str | None, per_chunk: int = 256) -> pa.Table:
    """Hash in the driver's threads (reading files and SHA-256 release the GIL): a thread per CPU."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from dedup.ops import hashing

    chunks = [items[i:i + per_chunk] for i in range(0, len(items), per_chunk)]

    def one(chunk):
        return hashing.hash_units({k: np.asarray([it[k] for it in chunk], object) for k in ("kind", "unit", "source")}, image_column)

    with ThreadPoolExecutor(max(2, os.cpu_count() or 1), thread_name_prefix="dedup-hash") as pool:
        return pa.concat_tables([t.cast(hashing.FILES_SCHEMA) for t in pool.map(one, chunks)])


def _hash_on_ray(items: list[dict], image_column: str | None) -> pa.Table:
    """Hash on Ray tasks (a cluster, or inputs behind an fsspec URI): blocks of about 256 units."""
    import ray

    from dedup.ops import hashing
    from dedup.ray_env import blocks, one_operator

    ds = one_operator(ray.data.from_items(items, override_num_blocks=blocks(len(items), 256)).map_batches(
        hashing.hash_units, batch_size=None, batch_format="numpy", fn_kwargs={"image_column": image_column},
    ))
    return pa.concat_tables([t.cast(hashing.FILES_SCHEMA) for t in ray.get(ds.to_arrow_refs())])
