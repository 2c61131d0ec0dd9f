"""What the report reads: the run's tables (manifest, errors, edges) and the shown members' thumbnails."""
from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from dedup.layout import OutputLayout
from dedup.sources import read_unit, split_item
from dedup.ops.decode import load_rgb


MAX_ERROR_REASONS = 50
ERROR_EXAMPLES = 3
HIST_BINS = 50
THUMB_QUALITY = 70
DEFAULT_MAX_PIXELS = 178_956_970  # PIL's own decompression-bomb limit, when summary.json has none

_PARQUET_ITEM = re.compile(r"^(?P<unit>.+\.(?:parquet|pq))#row=(?P<row>\d+)$", re.IGNORECASE)
_TAR_ITEM = re.compile(r"^(?P<unit>.+?\.tar)#(?P<member>.+)$", re.IGNORECASE)


# ----------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Thumb:
    """A thumbnail as an inline JPEG data URI, or the reason there is none."""

    uri: str | None
    width: int = 0
    height: int = 0
    reason: str | None = None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _read_frame(parquet: Path, csv: Path, columns: list[str] | None = None) -> pd.DataFrame | None:
    """The Parquet table (preferred) or its CSV twin; None when neither exists."""
    if parquet.exists():
        df = pd.read_parquet(parquet)
    elif csv.exists():
        df = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    else:
        return None
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    return df


def _edge_similarities(path: Path) -> np.ndarray:
    """The ``sim`` column of ``edges.parquet`` (empty when the file is missing or has no rows)."""
    if not path.exists():
        return np.zeros(0, np.float32)
    col = pq.read_table(path, columns=["sim"]).column("sim")
    return col.to_numpy().astype(np.float64) if len(col) else np.zeros(0, np.float64)


def _select_clusters(man: pd.DataFrame, max_clusters: int, max_members: int) -> tuple[pd.DataFrame, pd.Series]:
    """(shown members, size of every cluster with duplicates, largest first).

    Clusters are ordered by size (descending), then cluster id; members canonical first, then by
    similarity to the canonical (descending), then path.
    """
    sizes = man.groupby("cluster_id", sort=True).size()
    dup_sizes = sizes[sizes > 1].sort_values(ascending=False, kind="stable")
    rank = pd.Series(np.arange(len(dup_sizes)), index=dup_sizes.index).iloc[: max(0, max_clusters)]
    members = man[man["cluster_id"].isin(rank.index)]
    members = members.assign(_rank=members["cluster_id"].map(rank).to_numpy()).sort_values(
        ["_rank", "is_canonical", "similarity_to_canonical", "path"],
        ascending=[True, False, False, True], kind="stable",
    )
    members = members[members.groupby("cluster_id").cumcount() < max(1, max_members)].drop(columns="_rank")
    return members, dup_sizes


# ----------------------------------------------------------------------------------------- thumbnails


def make_thumbnail(data: bytes, px: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> Thumb:
    """Decode image bytes into a ``px``-bounded JPEG thumbnail (EXIF orientation applied, RGB)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > max_pixels:
                return Thumb(None, reason=f"image too large to preview ({img.width}x{img.height})")
            img = load_rgb(img, px).convert("RGB")
            img.thumbnail((px, px), Image.Resampling.BILINEAR)
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=THUMB_QUALITY)
    except Exception as e:  # noqa: BLE001 - any undecodable image is a placeholder, never a crash
        return Thumb(None, reason=f"cannot preview: {type(e).__name__}: {e}")
    uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return Thumb(uri, img.width, img.height)


def _locate(path: str, known: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """(kind, unit) of an item: from files.parquet when it is known there, else from its name."""
    if path in known:
        return known[path]
    if m := _PARQUET_ITEM.match(path):
        return "parquet", m["unit"]
    if m := _TAR_ITEM.match(path):
        return "webdataset", m["unit"]
    return "file", path


def _read_group(kind: str, unit: str, paths: list[str], image_column: str | None, px: int, max_pixels: int) -> dict[str, Thumb]:
    """Thumbnails of the items ``paths`` of one unit (a file, or one shard read once)."""
    wanted = set(paths)
    members = {split_item(p)[1] for p in paths} if kind in ("parquet", "webdataset") else None
    found: dict[str, Thumb] = {}
    for item, data, error in read_unit(kind, unit, image_column, members):
        if item in wanted:
            found[item] = Thumb(None, reason=f"cannot read: {error}") if error or data is None else make_thumbnail(data, px, max_pixels)
        elif error is not None and item == unit:  # the whole shard failed
            return {p: Thumb(None, reason=f"cannot read: {error}") for p in paths}
    return {p: found.get(p, Thumb(None, reason="not found in its shard")) for p in paths}


def load_thumbnails(members: pd.DataFrame, known: dict[str, tuple[str, str]], image_column: str | None, px: int, max_pixels: int, workers: int | None = None) -> dict[str, Thumb]:
    """Path -> thumbnail for every row of ``members`` (columns ``path``, ``sha``).

    Byte-identical members (same ``sha``) are read and decoded once; shards are opened once each; units
    are read on a small thread pool (I/O on remote stores, and PIL releases the GIL while decoding).
    """
    if members.empty:
        return {}
    key = members["sha"].fillna(members["path"]) if "sha" in members.columns else members["path"]
    first = members.assign(_key=key.to_numpy()).drop_duplicates("_key")
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in first["path"]:
        groups[_locate(p, known)].append(p)
    workers = workers or min(16, 4 * (os.cpu_count() or 1))
    tasks = list(groups.items())
    chunk = max(1, math.ceil(len(tasks) / (4 * workers)))  # a few tasks per worker: cheap to schedule, balanced

    def run(part: list[tuple[tuple[str, str], list[str]]]) -> dict[str, Thumb]:
        done: dict[str, Thumb] = {}
        for (kind, unit), ps in part:
            done.update(_read_group(kind, unit, ps, image_column, px, max_pixels))
        return done

    by_path: dict[str, Thumb] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done in pool.map(run, [tasks[i:i + chunk] for i in range(0, len(tasks), chunk)]):
            by_path.update(done)
    by_key = dict(zip(first["_key"], first["path"].map(by_path)))
    return dict(zip(members["path"], key.map(by_key)))


def _known_units(out: Path, paths: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Path -> (kind, unit) from files.parquet, for the given paths only."""
    f = OutputLayout(out).files
    if not f.exists():
        return {}
    t = pq.read_table(f, columns=["path", "kind", "unit"])
    wanted = list(set(paths))
    t = t.filter(pc.is_in(t["path"], value_set=pa.array(wanted, type=t.schema.field("path").type)))
    return {p: (k, u) for p, k, u in zip(t["path"].to_pylist(), t["kind"].to_pylist(), t["unit"].to_pylist())}
