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
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

from dedup import __version__
from dedup.layout import OutputLayout
from dedup.report.data import DEFAULT_MAX_PIXELS, _edge_similarities, _known_units, _read_frame, _read_json, _select_clusters, load_thumbnails
from dedup.report.render import _CSS, _e, histogram_svg  # noqa: F401 - histogram_svg: part of this module's API
from dedup.report.sections import _nearest, _search_state, _section_clusters, _section_counts, _section_errors, _section_histogram, _section_nearest, _section_reference, _section_rejected, _section_runs, _section_timings, _verify_above, reference_matches, rejected_pairs


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
