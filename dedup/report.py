"""``dedup report OUTPUT_DIR``: one self-contained HTML page about a finished run.

Contract. :func:`write_report` reads what ``dedup run`` left in an output folder (``manifest.parquet``
or ``manifest.csv``; optionally ``summary.json``, ``errors.parquet``/``errors.csv``, ``edges.parquet``,
``files.parquet``) and writes ``OUTPUT_DIR/report.html``. It never writes anything else and never touches
the inputs. The page needs no server, no internet and no JavaScript: thumbnails are inline JPEG
``data:`` URIs, the histogram is inline SVG, the style is an inline ``<style>`` block. It shows:

* the counts from ``summary.json`` (and a warning when the run used random weights);
* a histogram of each image's nearest-neighbour similarity (``nearest.parquet``: below the threshold too,
  down to the floor the search recorded), with the run's threshold drawn on it, so the valley between
  copies and distinct images can be seen (runs without it: the stored edges' similarities);
* the largest clusters with duplicates first, each with its canonical image (the one kept) marked and why
  it was kept (``kept_because``),
  and every member's similarity to it, match kind, content check (``verified``, inliers), size and path;
* with ``--reference``: the new images that copy a reference image (a test-set contamination check), each
  beside the reference image it copies;
* a few of the pairs the content check (stage `verify`) rejected, most similar first, side by side with
  their similarity and inliers, so a user can see what the check refused (``edges_checked.parquet``);
* the errors grouped by reason (stage, count, a few example paths);
* the runs kept on the folder (``runs/``, :mod:`dedup.runs`), each linked to its own report, and what this
  run changed against the one before it (``dedup report --compare`` lists the images);
* the stage timings.

The page stays small and opens quickly for any corpus size: at most ``max_clusters`` clusters and
``max_members`` members per cluster are shown, and the page says how many of how many it shows (the
full list is the manifest). Only the shown members' images are read and decoded, through fsspec (local
files, any fsspec URI, ``shard.parquet#row=N`` rows, ``shard.tar#member`` WebDataset members, via
:mod:`dedup.sources`); byte-identical members are decoded once. An image that is missing or cannot be
decoded gets a placeholder with the reason, never an exception. Everything else is vectorised pandas /
numpy, so 100k manifest rows take seconds. Every string from the data (paths, errors) is HTML-escaped.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import os
import re
import sys
import time
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

from dedup import __version__
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


# --------------------------------------------------------------------------------------------- render


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _human_bytes(n: float | None) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "?"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"  # pragma: no cover


def _fmt_num(v: object) -> str:
    if isinstance(v, bool) or v is None:
        return _e(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:,.0f}"
    return _e(v)


def histogram_svg(sims: np.ndarray, threshold: float | None, bins: int = HIST_BINS, width: int = 760, height: int = 280,
                  xlabel: str = "similarity of an edge (cosine)", unit: str = "edges", verify_above: float | None = None) -> str:
    """Inline SVG histogram of similarities (``unit`` counted) with a vertical line at ``threshold`` and,
    with ``verify_above``, the verify band between the two shaded (pairs there count only when checked)."""
    ml, mr, mt, mb = 64, 20, 24, 48
    pw, ph = width - ml - mr, height - mt - mb
    finite = sims[np.isfinite(sims)]
    ends = list(finite[[finite.argmin(), finite.argmax()]]) if len(finite) else []
    ends += [float(threshold)] if threshold is not None else []
    lo = math.floor(min(ends, default=0.0) * 100) / 100
    hi = max(ends + [1.0])  # cosine similarity tops out at 1 (float32 rounding may pass it slightly)
    if hi - lo < 1e-6:
        lo -= 0.01
    counts, edges = np.histogram(finite, bins=bins, range=(lo, hi))
    ymax = int(counts.max()) if len(counts) and counts.max() > 0 else 1

    def x(v: float) -> float:
        return ml + (v - lo) / (hi - lo) * pw

    def y(c: float) -> float:
        return mt + ph - c / ymax * ph

    parts = [
        f'<svg id="histogram-svg" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="histogram of edge similarities">',
        f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" class="plot"/>',
    ]
    for c, e0, e1 in zip(counts, edges[:-1], edges[1:]):
        if c == 0:
            continue
        x0, x1 = x(e0), x(e1)
        parts.append(
            f'<rect class="bar" x="{x0:.2f}" y="{y(c):.2f}" width="{max(x1 - x0 - 0.5, 0.5):.2f}" height="{mt + ph - y(c):.2f}">'
            f"<title>{e0:.4f} to {e1:.4f}: {int(c):,} {unit}</title></rect>"
        )
    for v in np.linspace(lo, hi, 6):
        parts.append(f'<line class="tick" x1="{x(v):.2f}" x2="{x(v):.2f}" y1="{mt + ph}" y2="{mt + ph + 5}"/>')
        parts.append(f'<text x="{x(v):.2f}" y="{mt + ph + 18}" text-anchor="middle">{v:.3f}</text>')
    for c in sorted({0, ymax // 2, ymax}):
        parts.append(f'<line class="tick" x1="{ml - 5}" x2="{ml}" y1="{y(c):.2f}" y2="{y(c):.2f}"/>')
        parts.append(f'<text x="{ml - 8}" y="{y(c) + 4:.2f}" text-anchor="end">{c:,}</text>')
    parts.append(f'<text x="{ml + pw / 2}" y="{height - 8}" text-anchor="middle">{_e(xlabel)}</text>')
    parts.append(f'<text x="14" y="{mt + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {mt + ph / 2})">{_e(unit)}</text>')
    if threshold is not None and verify_above is not None and verify_above > threshold:
        x0, x1 = x(float(threshold)), x(min(float(verify_above), hi))
        parts.append(f'<rect id="verify-band" class="band" x="{x0:.2f}" y="{mt}" width="{x1 - x0:.2f}" height="{ph}">'
                     f"<title>verify band {float(threshold):.3f} to {float(verify_above):.3f}: pairs here are duplicates only when their shared content is confirmed</title></rect>")
        parts.append(f'<line id="verify-line" class="verify" x1="{x1:.2f}" x2="{x1:.2f}" y1="{mt - 6}" y2="{mt + ph}"/>')
        parts.append(f'<text class="verify-label" x="{x1 - 4:.2f}" y="{mt + 24}" text-anchor="end">no check above {float(verify_above):.3f}</text>')
    if threshold is not None:
        tx = x(float(threshold))
        parts.append(f'<line id="threshold-line" class="threshold" x1="{tx:.2f}" x2="{tx:.2f}" y1="{mt - 6}" y2="{mt + ph}"/>')
        anchor = "start" if tx < ml + pw * 0.7 else "end"
        dx = 4 if anchor == "start" else -4
        parts.append(f'<text class="threshold-label" x="{tx + dx:.2f}" y="{mt + 10}" text-anchor="{anchor}">threshold {float(threshold):.3f}</text>')
    if not len(finite):
        parts.append(f'<text class="empty" x="{ml + pw / 2}" y="{mt + ph / 2}" text-anchor="middle">no similarity edges in this run</text>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
:root{--ink:#1d232b;--muted:#5b6673;--line:#d8dee6;--keep:#137333;--remove:#b3261e;--accent:#1a5fb4}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);margin:0;background:#f6f8fa}
header,main,footer{max-width:1280px;margin:0 auto;padding:12px 20px}
h1{font-size:22px;margin:8px 0} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:0 0 8px}
nav a{margin-right:14px;color:var(--accent)}
table{border-collapse:collapse;background:#fff;margin:6px 0}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:var(--muted)} .cap{background:#fff8e1;border:1px solid #f0d98a;padding:6px 10px;border-radius:4px}
.warning{background:#fdecea;border:1px solid #f5b5ae;color:var(--remove);padding:8px 12px;border-radius:4px;font-weight:600}
svg text{font-size:11px;fill:var(--ink)} svg .plot{fill:#fff;stroke:var(--line)} svg .bar{fill:#6b9bd1}
svg .tick{stroke:var(--muted)} svg .threshold{stroke:var(--remove);stroke-width:2;stroke-dasharray:6 3}
svg .threshold-label{fill:var(--remove);font-weight:600}
svg .band{fill:#f3d9a4;opacity:.45} svg .verify{stroke:#9a6700;stroke-width:2;stroke-dasharray:2 3} svg .verify-label{fill:#9a6700}
.verified{color:var(--keep)} svg .empty{fill:var(--muted);font-size:14px}
.cluster{background:#fff;border:1px solid var(--line);border-radius:6px;padding:10px 12px;margin:12px 0;
 content-visibility:auto;contain-intrinsic-size:auto 320px}
.members{display:flex;flex-wrap:wrap;gap:10px}
.member{margin:0;width:calc(var(--px) + 16px);border:2px solid var(--line);border-radius:6px;padding:6px;background:#fff}
.member.canonical{border-color:var(--keep);box-shadow:0 0 0 2px #c9ebd3}
.thumb-box{width:var(--px);height:var(--px);display:flex;align-items:center;justify-content:center;background:#eef1f4}
.thumb{max-width:100%;max-height:100%}
.placeholder{color:var(--muted);font-size:11px;text-align:center;padding:6px;overflow:hidden}
figcaption{font-size:11px;margin-top:4px}
.badge{display:inline-block;border-radius:3px;padding:0 5px;color:#fff;font-weight:700;font-size:10px;text-transform:uppercase}
.badge.keep{background:var(--keep)} .badge.remove{background:var(--remove)} .badge.unique{background:#6b7280}
.sim{font-weight:600;font-variant-numeric:tabular-nums}
.path{display:block;color:var(--muted);word-break:break-all}
.path-inline{word-break:break-all}
.more{color:var(--muted);margin:8px 0 0}
.bar-cell{width:160px} .tbar{display:block;height:8px;background:#6b9bd1;border-radius:2px}
pre{background:#fff;border:1px solid var(--line);padding:8px;overflow:auto;max-height:360px}
"""


def _weights_label(params: dict) -> str | None:
    """The weights the model ran with, as the run recorded them (None for weight-free models)."""
    info = params.get("weights_info") or {}
    if "weights_info" in params and info.get("weights") is None:
        return None
    label = str(info.get("weights") or params.get("weights") or "")
    return (label + " (RANDOM: clusters meaningless)") if info.get("meaningful") is False else (label or None)


def _section_counts(summary: dict, man: pd.DataFrame, errors: pd.DataFrame) -> str:
    counts = dict(summary.get("counts") or {})
    if not counts:  # no summary.json: what the tables themselves say
        counts = {"images": len(man), "errors": len(errors), "clusters": int(man["cluster_id"].nunique()) if len(man) else 0,
                  "kept": int(man["is_canonical"].sum()) if len(man) else 0}
    rows = "".join(f'<tr><th>{_e(k.replace("_", " "))}</th><td class="num">{_fmt_num(v)}</td></tr>' for k, v in counts.items())
    params = summary.get("parameters") or {}
    extra = []
    bits = params.get("max_bits")
    v = (summary.get("stages") or {}).get("verify") or {}
    band = v.get("band") or [None, None]
    check = None
    if v.get("band"):
        check = (f"pairs {band[0]:.2f} to {band[1]:.2f}" if band[1] is not None else f"every pair from {band[0]:.2f}") + \
            f": {v.get('edges_checked', 0):,} checked, {v.get('rejected', 0):,} rejected"
    for label, value in (("threshold", params.get("threshold")), ("content check", check),
                         ("max Hamming distance", f"{bits} bits" if bits is not None else None), ("model", params.get("model")), ("weights", _weights_label(params)),
                         ("canonical policy", params.get("canonical")), ("inputs", ", ".join(map(str, params.get("inputs") or [])) or None),
                         ("total time", f'{summary["total_seconds"]:.1f} s' if isinstance(summary.get("total_seconds"), (int, float)) else None),
                         ("images per second", summary.get("images_per_second"))):
        if value is not None:
            extra.append(f"<tr><th>{_e(label)}</th><td>{_fmt_num(value)}</td></tr>")
    details = ""
    if params:
        details = f"<details><summary>all parameters</summary><pre>{_e(json.dumps(params, indent=2, default=str))}</pre></details>"
    return (f'<section id="counts"><h2>Counts</h2><div style="display:flex;gap:24px;flex-wrap:wrap">'
            f'<table id="counts-table">{rows}</table><table id="run-table">{"".join(extra)}</table></div>{details}</section>')


def _nearest(out: Path) -> np.ndarray | None:
    """Each image's nearest-neighbour similarity as the search recorded it (None for runs without it); with
    --reference, the nearer of its nearest new image and its nearest reference image."""
    layout = OutputLayout(out)
    parts = [pq.read_table(p, columns=["vid", "sim"]).to_pandas() for p in (layout.nearest(), layout.nearest("_reference")) if p.exists()]
    if not parts:
        return None
    return pd.concat(parts).groupby("vid")["sim"].max().to_numpy().astype(np.float64)


def _section_nearest(nearest: np.ndarray, threshold: float | None, searched: dict, images: int, verify_above: float | None = None) -> str:
    floor = searched.get("floor")
    below = max(0, images - len(nearest))
    stats = (f"{len(nearest):,} of {images:,} images have a nearest neighbour at or above {floor if floor is not None else 'the floor'}"
             f" (the lowest similarity the search recorded); {below:,} have none that close. "
             f"{int((nearest >= threshold).sum()) if threshold is not None else 0:,} are at or above the threshold.")
    note = ("Each image counts once, at the similarity of its most similar other image, below the threshold too. "
            "Copies pile up near 1 and distinct images lower down: a threshold in the valley between the two "
            "removes copies and nothing else. Images right of the line are duplicates (those in the verify band "
            "only when their shared content was confirmed); a hill just left of it holds copies that stay.")
    svg = histogram_svg(nearest, threshold, xlabel="similarity of each image to its nearest neighbour (cosine)", unit="images",
                        verify_above=verify_above)
    return (f'<section id="histogram"><h2>Nearest-neighbour similarities</h2><p>{_e(stats)}</p>'
            f'{svg}<p class="muted">{_e(note)}</p></section>')


def _section_histogram(sims: np.ndarray, threshold: float | None) -> str:
    if len(sims):
        stats = (f"{len(sims):,} unique edges; similarity min {np.nanmin(sims):.4f}, median {np.nanmedian(sims):.4f}, "
                 f"max {np.nanmax(sims):.4f}.")
    else:
        stats = "No edges: no two distinct images were at or above the threshold."
    note = ("This run recorded no nearest-neighbour similarities, and the job stores only edges at or above the "
            "threshold it ran with, so the histogram starts there. "
            "A gap or a valley just right of the line suggests a safe threshold; many edges piled against the "
            "line suggest the threshold cuts through a group of similar images (raise it to be stricter, or re-run "
            "lower to see what lies below).")
    return (f'<section id="histogram"><h2>Edge similarities</h2><p>{_e(stats)}</p>'
            f'{histogram_svg(sims, threshold)}<p class="muted">{_e(note)}</p></section>')


def _verify_above(params: dict) -> float | None:
    """The top of the run's verify band (None: no band)."""
    band = (params.get("verify_params") or {}).get("band") or [None, None]
    return float(band[1]) if band[1] is not None else None


def _search_state(out: Path) -> dict:
    """What ``state.json`` recorded of the search (threshold, floor), or {}."""
    state = OutputLayout(out).state
    return (_read_json(state).get("search") or {}) if state.exists() else {}


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _member_html(row: dict, thumb: Thumb | None) -> str:
    """One cluster member: thumbnail (or placeholder), keep/remove badge, similarity, match, size, path."""
    canonical = bool(row["is_canonical"])
    match = str(row.get("match") or ("canonical" if canonical else "near"))
    sim = float(row["similarity_to_canonical"])
    path = _e(row["path"])
    if thumb is not None and thumb.uri:
        img = f'<img class="thumb" src="{thumb.uri}" width="{thumb.width}" height="{thumb.height}" alt="{path}" decoding="async">'
    else:
        reason = thumb.reason if thumb is not None and thumb.reason else "not read"
        short = "image not found" if "not found" in reason.lower() else "cannot preview"
        img = f'<div class="placeholder" title="{_e(reason[:300])}">no preview<br>({short})</div>'
    badge = '<span class="badge keep">keep · canonical</span>' if canonical else '<span class="badge remove">remove</span>'
    w, h = row.get("width"), row.get("height")
    dims = "?" if _missing(w) or _missing(h) else f"{int(w)}×{int(h)}"
    fmt = row.get("format")
    meta = f'{dims} · {_human_bytes(row.get("bytes"))}' + (f" · {_e(fmt)}" if isinstance(fmt, str) else "")
    if str(row.get("verified") or "") == "true":
        meta += f' · <span class="verified" title="shared content confirmed by matched local features">checked: {int(row.get("inliers") or 0)} inliers</span>'
    cls = "member canonical" if canonical else "member duplicate"
    return (f'<figure class="{cls} match-{_e(match)}" data-similarity="{sim:.6f}" data-match="{_e(match)}">'
            f'<div class="thumb-box">{img}</div><figcaption>{badge} <span class="sim" title="similarity to the canonical">'
            f'{sim:.4f}</span> <span class="match">{_e(match)}</span><br><span class="meta">{meta}</span>'
            f'<span class="path" title="{path}">{path}</span></figcaption></figure>')


def _section_clusters(members: pd.DataFrame, dup_sizes: pd.Series, thumbs: dict[str, Thumb], px: int, max_clusters: int, max_members: int) -> str:
    """The shown clusters, in the members' order (largest cluster first), with the cap stated."""
    n_dup = len(dup_sizes)
    n_dup_images = int(dup_sizes.sum())
    if n_dup == 0:
        return '<section id="clusters"><h2>Clusters</h2><p id="no-clusters">No duplicates: every image is its own cluster.</p></section>'
    records = members.to_dict("records")
    by_cluster: dict[object, list[dict]] = {}
    for r in records:
        by_cluster.setdefault(r["cluster_id"], []).append(r)
    n_shown = len(by_cluster)
    cap = (f"Showing the {n_shown:,} largest of {n_dup:,} clusters with duplicates ({n_dup_images:,} images in them), "
           f"largest first, at most {max_members} images per cluster ({len(records):,} images shown). ")
    cap += "Every cluster and image is listed in manifest.csv." if (n_shown < n_dup or len(records) < n_dup_images) else "All of them are shown."
    parts = [f'<section id="clusters" style="--px:{px}px"><h2>Clusters</h2><p class="cap" id="cap" data-shown-clusters="{n_shown}" '
             f'data-total-clusters="{n_dup}" data-max-clusters="{max_clusters}" data-max-members="{max_members}">{_e(cap)}</p>']
    for cid, rows in by_cluster.items():
        size = int(dup_sizes.get(cid, len(rows)))
        title = f"Cluster {cid} · {size} images" + (f" ({len(rows)} shown)" if len(rows) < size else "")
        body = "".join(_member_html(r, thumbs.get(r["path"])) for r in rows)
        more = f'<p class="more">+ {size - len(rows):,} more images of this cluster in manifest.csv</p>' if len(rows) < size else ""
        kept = next((r for r in rows if r["is_canonical"]), None)
        keep = ""
        if kept is not None:
            why = kept.get("kept_because")
            why = f' <span class="why" title="why this version is kept (--canonical)">· kept because: {_e(why)}</span>' if isinstance(why, str) and why else ""
            keep = f'<p class="muted">keep: <span class="path-inline">{_e(kept["path"])}</span>{why}</p>'
        parts.append(f'<section class="cluster" id="cluster-{_e(cid)}" data-cluster-id="{_e(cid)}" data-size="{size}">'
                     f'<h3>{_e(title)}</h3>{keep}<div class="members">{body}</div>{more}</section>')
    return "".join(parts) + "</section>"


MAX_REJECTED = 12
MAX_REFERENCE_MATCHES = 48


def reference_matches(man: pd.DataFrame, limit: int = MAX_REFERENCE_MATCHES) -> pd.DataFrame:
    """The new images kept out for a reference image (``match`` reference), most similar first."""
    if "match" not in man or "reference_path" not in man:
        return man.iloc[:0]
    m = man[man["match"] == "reference"].sort_values(["similarity_to_canonical", "path"], ascending=[False, True])
    out = m.head(limit).copy()
    out.attrs["total"] = len(m)
    return out


def _section_reference(matches: pd.DataFrame, thumbs: dict[str, Thumb], params: dict) -> str:
    refs = params.get("references") or []
    if not refs:
        return ""
    total = int(matches.attrs.get("total", len(matches)))
    where = ", ".join(map(str, refs))
    if not total:
        return (f'<section id="reference-matches"><h2>Matches to the reference</h2><p>No new image copies an image of the '
                f'reference ({_e(where)}).</p></section>')
    rows = []
    for r in matches.itertuples():
        new = _member_html({"is_canonical": False, "match": "reference", "similarity_to_canonical": r.similarity_to_canonical,
                            "path": r.path, "width": r.width, "height": r.height, "bytes": r.bytes}, thumbs.get(r.path))
        ref = _member_html({"is_canonical": True, "match": "reference image", "similarity_to_canonical": 1.0, "path": r.reference_path,
                            "width": None, "height": None, "bytes": None}, thumbs.get(r.reference_path))
        ref = ref.replace('<span class="badge keep">keep · canonical</span>', '<span class="badge keep">reference</span>')
        rows.append(f'<section class="reference-pair" data-similarity="{r.similarity_to_canonical:.6f}"><div class="members">{new}{ref}</div></section>')
    note = (f"{total:,} new images copy an image of the reference ({where}) and are in remove.txt; the reference is never "
            f"changed. The {len(matches)} most similar are shown, each beside the reference image it copies; all are in "
            "manifest.csv (match = reference, reference_path).")
    return f'<section id="reference-matches"><h2>Matches to the reference</h2><p>{_e(note)}</p>{"".join(rows)}</section>'


def rejected_pairs(out: Path, limit: int = MAX_REJECTED) -> pd.DataFrame:
    """The pairs the content check rejected, most similar first: ``path_a``, ``path_b``, ``sim``,
    ``inliers`` (at most ``limit`` of them), with the count of all of them in ``attrs["total"]``."""
    layout = OutputLayout(out)
    f = layout.edges_checked
    cols = ["path_a", "path_b", "sha_a", "sha_b", "sim", "inliers"]
    if not f.exists() or not layout.files.exists():
        return pd.DataFrame(columns=cols)
    t = pq.read_table(f)
    t = t.filter(pc.equal(t["verified"], pa.scalar(0, pa.int8())))
    total = t.num_rows
    df = t.to_pandas().sort_values(["sim", "a", "b"], ascending=[False, True, True]).head(limit)
    files = pq.read_table(layout.files, columns=["path", "vid", "sha"]).to_pandas().dropna(subset=["vid"])
    files = files.sort_values("path").drop_duplicates("vid")  # a content's first path: its representative
    first = files.set_index(files["vid"].astype(np.int64))
    out_df = pd.DataFrame({"path_a": first["path"].reindex(df["a"]).to_numpy(), "path_b": first["path"].reindex(df["b"]).to_numpy(),
                           "sha_a": first["sha"].reindex(df["a"]).to_numpy(), "sha_b": first["sha"].reindex(df["b"]).to_numpy(),
                           "sim": df["sim"].to_numpy(), "inliers": df["inliers"].to_numpy()})
    out_df.attrs["total"] = total
    return out_df


def _outcome_badge(row: dict | None) -> str:
    """What happened to an image, from its manifest row: kept for its cluster, removed (in remove.txt) or
    unique (no duplicate, kept)."""
    if row is None:
        return '<span class="badge remove" title="not in the manifest: see errors.csv">not read</span>'
    size = int(row.get("cluster_size") or 1) if not _missing(row.get("cluster_size")) else 1
    if not bool(row.get("is_canonical")):
        return f'<span class="badge remove" title="in remove.txt: a duplicate of {_e(row.get("canonical_path"))}">removed</span>'
    if size > 1:
        return f'<span class="badge keep" title="in keep.txt: the image kept for its cluster of {size}">kept</span>'
    return '<span class="badge unique" title="in keep.txt: no duplicate found">unique</span>'


def _rejected_member_html(path: str, sim: float, row: dict | None, thumb: Thumb | None) -> str:
    """One image of a rejected pair: its real outcome and size (manifest), the pair's similarity."""
    info = {k: (row or {}).get(k) for k in ("width", "height", "bytes", "format")}
    html_ = _member_html({**info, "is_canonical": False, "match": "rejected", "similarity_to_canonical": sim, "path": path}, thumb)
    return html_.replace('<span class="badge remove">remove</span>', _outcome_badge(row), 1)


def _section_rejected(pairs: pd.DataFrame, thumbs: dict[str, Thumb], checked: bool, man: pd.DataFrame | None = None) -> str:
    if not checked:
        return ""
    total = int(pairs.attrs.get("total", len(pairs)))
    if pairs.empty:
        return ('<section id="rejected"><h2>Pairs the content check rejected</h2><p id="no-rejected">None: every pair in '
                'the verify band shared content.</p></section>')
    rows = []
    paths = set(pairs["path_a"]) | set(pairs["path_b"])
    by_path = {} if man is None else {r["path"]: r for r in man[man["path"].isin(paths)].to_dict("records")}
    for r in pairs.itertuples():
        figs = "".join(_rejected_member_html(p, r.sim, by_path.get(p), thumbs.get(p)) for p in (r.path_a, r.path_b))
        rows.append(f'<section class="rejected-pair" data-similarity="{r.sim:.6f}"><h3>similarity {r.sim:.4f} · '
                    f'{int(r.inliers)} inliers</h3><div class="members">{figs}</div></section>')
    note = (f"{total:,} pairs in the verify band were rejected because the two images did not share enough content "
            f"(matched local features under one transform); the {len(pairs)} most similar are shown. Both images of each "
            "pair stay unless something else makes them duplicates (each badge says what happened to the image: kept for "
            "its cluster, removed as another image's duplicate, or unique). All checks are in edges_checked.parquet.")
    return f'<section id="rejected"><h2>Pairs the content check rejected</h2><p>{_e(note)}</p>{"".join(rows)}</section>'


def _error_reason(errors: pd.Series) -> pd.Series:
    """The reason of an error message: its text before the first ':' or '(' (details vary per file)."""
    msg = errors.fillna("unknown error").astype(str)
    reason = msg.str.extract(r"^([^:(]*)", expand=False).str.strip()
    return reason.where(reason.str.len() > 0, msg)


def _section_errors(errors: pd.DataFrame) -> str:
    if errors.empty:
        return '<section id="errors"><h2>Errors</h2><p id="no-errors">No errors: every input was read and decoded.</p></section>'
    e = errors.assign(reason=_error_reason(errors["error"]), stage=errors.get("stage", pd.Series("?", index=errors.index)).fillna("?"))
    counts = e.groupby(["stage", "reason"], sort=False).size().sort_values(ascending=False, kind="stable")
    examples = e.groupby(["stage", "reason"], sort=False).head(ERROR_EXAMPLES).groupby(["stage", "reason"], sort=False)
    ex = {k: list(zip(g["path"], g["error"])) for k, g in examples}
    rows = []
    for (stage, reason), n in counts.head(MAX_ERROR_REASONS).items():
        items = "".join(f'<li><span class="path-inline">{_e(p)}</span> <span class="muted">{_e(m)}</span></li>' for p, m in ex[(stage, reason)])
        rows.append(f'<tr class="error-reason"><td>{_e(reason)}</td><td>{_e(stage)}</td><td class="num">{int(n):,}</td><td><ul>{items}</ul></td></tr>')
    more = (f'<p class="cap">Showing the {MAX_ERROR_REASONS} most frequent of {len(counts):,} reasons; all errors are in errors.csv.</p>'
            if len(counts) > MAX_ERROR_REASONS else "")
    return (f'<section id="errors"><h2>Errors</h2><p>{len(errors):,} inputs could not be used, by reason (every one is in errors.csv).</p>{more}'
            f'<table id="errors-table"><tr><th>reason</th><th>stage</th><th class="num">count</th><th>examples</th></tr>{"".join(rows)}</table></section>')


def _section_runs(out: Path, summary: dict) -> str:
    """The runs kept on this output folder (``runs/``, :mod:`dedup.runs`), each linked to its own report,
    and what this run changed against the one before it. Nothing for a folder with one run."""
    from dedup import runs

    layout = OutputLayout(out)
    this = summary.get("run_id")
    kept = [r for r in runs.list_runs(layout) if r.id != this]
    if not kept:
        return ""
    current = runs.Run(this or out.name, out, summary)
    rows = []
    for r in kept + [current]:
        name = (f'<a {runs.RUN_LINK}runs/{_e(r.id)}/report.html">{_e(r.id)}</a>' if r is not current
                else f'{_e(r.id)} <span class="badge keep">this report</span>')
        rows.append(f"<tr><td>{name}</td><td>{_e(r.describe())}</td></tr>")
    previous = [r for r in kept if r.id < current.id] or kept
    diff = runs.compare(previous[-1], current)
    if diff["same_result"]:
        change = f"the same result as the run before it ({_e(previous[-1].id)})."
    else:
        change = (f"against the run before it ({_e(previous[-1].id)}): {diff['removed_in_a_kept_in_b']['count']:,} images it removed "
                  f"are kept here, {diff['kept_in_a_removed_in_b']['count']:,} it kept are removed here, "
                  f"{diff['clusters_merged_in_b']['count']:,} clusters merged, {diff['clusters_split_in_b']['count']:,} split.")
        if diff["parameters"]:
            change += " Parameters that differ: " + _e("; ".join(f"{k} {runs._fmt(a)} -> {runs._fmt(b)}" for k, (a, b) in diff["parameters"].items())) + "."
    return (f'<section id="runs"><h2>Runs on this output folder</h2><p>This run, {change} '
            f'<code>dedup report {_e(out)} --compare {_e(previous[-1].id)}</code> lists the images.</p>'
            f'<table id="runs-table"><tr><th>run</th><th>parameters and result</th></tr>{"".join(rows)}</table></section>')


def _fmt_detail(v: object, depth: int = 0) -> str:
    """A stage metric as text (escaped later): numbers as _fmt_num, a dict as "(key value, ...)", a list
    joined, True/False as yes/no; nothing of Python's repr."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, dict):
        if not v:
            return "none"
        inner = ", ".join(f"{str(k).replace('_', ' ')} {_fmt_detail(x, depth + 1)}" for k, x in v.items())
        return f"({inner})" if depth < 3 else "(...)"
    if isinstance(v, (list, tuple)):
        parts = [_fmt_detail(x, depth + 1) if x is not None else "none" for x in v]
        return ("–" if all(x is None or isinstance(x, (int, float)) for x in v) else ", ").join(parts)
    if isinstance(v, (int, float)):
        return html.unescape(_fmt_num(v))
    return "" if v is None else str(v)


def _section_timings(summary: dict) -> str:
    stages = summary.get("stages") or {}
    if not stages:
        return '<section id="timings"><h2>Stage timings</h2><p class="muted">No stage timings (summary.json missing or empty).</p></section>'
    total = summary.get("total_seconds") or sum(float(s.get("seconds") or 0) for s in stages.values()) or 1.0
    rows = []
    for name, st in stages.items():
        sec = float(st.get("seconds") or 0.0)
        rate = next((f"{_fmt_num(v)} {k.removesuffix('_per_second')}/s" for k, v in st.items() if k.endswith("_per_second") and v is not None), "")
        details = ", ".join(f"{k.replace('_', ' ')} {_fmt_detail(v)}" for k, v in st.items() if k != "seconds" and not k.endswith("_per_second"))
        pct = 100.0 * sec / total
        rows.append(f'<tr><td>{_e(name)}</td><td class="num">{sec:,.2f}</td><td class="num">{pct:.1f}%</td>'
                    f'<td class="bar-cell"><span class="tbar" style="width:{min(pct, 100):.1f}%"></span></td><td>{_e(rate)}</td><td>{_e(details)}</td></tr>')
    foot = f'<tr><th>total</th><th class="num">{float(total):,.2f}</th><th></th><th></th><th>{_e(summary.get("images_per_second"))} images/s end to end</th><th></th></tr>'
    return (f'<section id="timings"><h2>Stage timings</h2><table id="timings-table"><tr><th>stage</th><th class="num">seconds</th>'
            f'<th class="num">share</th><th></th><th>throughput</th><th>details</th></tr>{"".join(rows)}{foot}</table></section>')


# ------------------------------------------------------------------------------------------------ api


def write_report(out_dir: Path, *, max_clusters: int = 200, max_members: int = 24, thumb_px: int = 128) -> Path:
    """Write ``out_dir/report.html`` for a finished run and return its path.

    Raises FileNotFoundError when ``out_dir`` has no manifest (not the output folder of a finished run).
    """
    out = Path(out_dir)
    layout = OutputLayout(out)
    t0 = time.perf_counter()
    man = _read_frame(layout.manifest_parquet, layout.manifest_csv)
    if man is None:
        raise FileNotFoundError(f"{out} has no manifest.parquet or manifest.csv: not the output folder of a finished dedup run")
    if man["is_canonical"].dtype != bool:
        man["is_canonical"] = man["is_canonical"].astype(str).str.lower().isin(["true", "1"])
    errors = _read_frame(layout.errors_parquet, layout.errors_csv)
    errors = errors if errors is not None else pd.DataFrame(columns=["path", "error", "stage", "source"])
    summary = _read_json(layout.summary)
    params = summary.get("parameters") or {}
    threshold = params.get("threshold")
    sims = _edge_similarities(layout.edges())
    nearest = _nearest(out)

    members, dup_sizes = _select_clusters(man, max_clusters, max_members)
    rejected = rejected_pairs(out)
    ref_matches = reference_matches(man)
    pair_paths = pd.DataFrame({"path": list(rejected["path_a"]) + list(rejected["path_b"]) + list(ref_matches["path"] if len(ref_matches) else [])
                               + list(ref_matches["reference_path"] if len(ref_matches) else []),
                               "sha": list(rejected["sha_a"]) + list(rejected["sha_b"]) + [None] * (2 * len(ref_matches))})
    shown = pd.concat([members[["path", "sha"]] if "sha" in members else members[["path"]], pair_paths], ignore_index=True).drop_duplicates("path")
    known = _known_units(out, shown["path"])
    thumbs = load_thumbnails(shown, known, params.get("image_column"), thumb_px, int(params.get("max_pixels") or DEFAULT_MAX_PIXELS))

    weights = params.get("weights_info") or {}
    warning = ""
    if weights.get("meaningful") is False:
        warning = '<p class="warning" id="random-weights">This run used RANDOM weights: its clusters mean nothing. Do not act on remove.txt.</p>'
    title = f"dedup report: {out.resolve().name}"
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    body = "".join([
        _section_counts(summary, man, errors),
        (_section_nearest(nearest, float(threshold) if threshold is not None else None, _search_state(out),
                          int(summary.get("counts", {}).get("distinct_contents", len(man))), _verify_above(params))
         if nearest is not None else _section_histogram(sims, float(threshold) if threshold is not None else None)),
        _section_reference(ref_matches, thumbs, params),
        _section_clusters(members, dup_sizes, thumbs, thumb_px, max_clusters, max_members),
        _section_rejected(rejected, thumbs, layout.edges_checked.exists(), man),
        _section_errors(errors),
        _section_runs(out, summary),
        _section_timings(summary),
    ])
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<header><h1>{_e(title)}</h1><p class="muted">Output folder {_e(out.resolve())}; report generated {_e(generated)} '
        f"by ray-image-dedup {_e(__version__)} in {{elapsed}}.</p>{warning}"
        '<nav><a href="#counts">counts</a><a href="#histogram">similarities</a><a href="#clusters">clusters</a><a href="#rejected">rejected pairs</a>'
        '<a href="#errors">errors</a><a href="#runs">runs</a><a href="#timings">timings</a></nav></header>'
        f"<main>{body}</main><footer class=\"muted\">Self-contained page: no scripts, no network. The manifest "
        "(manifest.csv) is the full result; this page shows a capped view of it.</footer></body></html>"
    )
    page = page.replace("{elapsed}", f"{time.perf_counter() - t0:.1f} s", 1)
    target = layout.report
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    return target


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``report`` to the ``dedup`` command's subparsers (``args.func`` is :func:`main`)."""
    p = subparsers.add_parser(
        "report", help="write OUTPUT_DIR/report.html: a self-contained HTML page about a finished run",
        description="Write OUTPUT_DIR/report.html for a finished run: counts, a histogram of edge similarities with the "
                    "threshold, the largest clusters with thumbnails (canonical marked), errors by reason, stage timings. "
                    "One file, no server, no internet.",
    )
    p.add_argument("output_dir", metavar="OUTPUT_DIR", help="the --output folder of a finished dedup run")
    p.add_argument("--runs", action="store_true", help="list the runs kept under OUTPUT_DIR/runs/ (each re-run with other parameters adds one) and exit")
    p.add_argument("--compare", nargs="+", metavar="RUN", help="compare two runs (RUN_A RUN_B; one RUN: with the latest) and exit: "
                   "parameters, images one removes and the other keeps, clusters merged or split. A RUN is a run id, a unique "
                   "part of one (its key or time), latest, previous (the run before the latest), or the path of a run or output folder")
    p.add_argument("--json", action="store_true", help="with --compare: print the comparison as JSON")
    p.add_argument("--max-clusters", type=int, default=200, help="clusters shown, largest first (default 200)")
    p.add_argument("--max-members", type=int, default=24, help="images shown per cluster (default 24)")
    p.add_argument("--thumb-px", type=int, default=128, help="thumbnail size in pixels (default 128)")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    """``dedup report``: 0 on success, 2 when the folder is not a finished run's output (or a run is not there)."""
    if getattr(args, "runs", False) or getattr(args, "compare", None):
        return _runs_main(args)
    for name in ("max_clusters", "max_members", "thumb_px"):
        if getattr(args, name) < 1:
            print(f"dedup report: error: --{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return 2
    try:
        path = write_report(Path(args.output_dir), max_clusters=args.max_clusters, max_members=args.max_members, thumb_px=args.thumb_px)
    except FileNotFoundError as e:
        print(f"dedup report: error: {e}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


def _runs_main(args: argparse.Namespace) -> int:
    """``dedup report OUTPUT --runs`` / ``--compare A [B]`` (text on stdout, or JSON)."""
    from dedup import runs

    if args.runs:
        print(runs.format_runs(args.output_dir))
        return 0
    if len(args.compare) > 2:
        print("dedup report: error: --compare takes one or two runs", file=sys.stderr)
        return 2
    try:
        a = runs.resolve(args.output_dir, args.compare[0])
        b = runs.resolve(args.output_dir, args.compare[1] if len(args.compare) > 1 else "latest")
    except runs.RunNotFound as e:
        print(f"dedup report: error: {e}", file=sys.stderr)
        return 2
    diff = runs.compare(a, b)
    print(json.dumps(diff, indent=2, default=str) if args.json else runs.format_compare(diff))
    return 0


__all__ = ["write_report", "add_parser", "main", "make_thumbnail", "histogram_svg", "load_thumbnails"]
