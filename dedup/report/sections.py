"""The report's sections, each from what :mod:`dedup.report.data` read (HTML strings)."""
from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedup.layout import OutputLayout
from dedup.report.data import ERROR_EXAMPLES, MAX_ERROR_REASONS, Thumb, _read_json
from dedup.report.render import _e, _fmt_num, _human_bytes, histogram_svg

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
        meta += _checked_html(int(row.get("inliers") or 0))
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


def _checked_html(inliers: int) -> str:
    """How the content check confirmed a near copy: matched local features, or (0 inliers: the check's
    identity pass) one frame whose pixels agree as they are."""
    if inliers > 0:
        return (' · <span class="verified" title="shared content confirmed by matched local features">'
                f'checked: {inliers} inliers</span>')
    return (' · <span class="verified" title="one frame: the pixels agree where they are, no features needed">'
            'checked: same frame</span>')


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
