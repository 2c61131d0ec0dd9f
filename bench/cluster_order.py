"""``python -m bench --cluster-order``: the clusters of finished runs formed in the ``largest`` order and in the
graph stage's order (images with a picture found inside them last, :func:`dedup.stages.graph.forming_order`),
from the same stored edges (``edges_checked.parquet``, the pairs the check kept), scored against each corpus's
truth: pair precision and recall over the vids, and the images the chaining guard split off.

The runs are those in ``--work`` that other modes made: ``out-sscd`` (``python -m bench``, ``corpus/``),
``out-lineage-seedN`` (``--kept-model``), ``out-hard-seedN`` (``--hard``). Writes ``RESULTS/cluster-order.md``
and ``.json``.
"""
from __future__ import annotations

import json
import os
from itertools import combinations
from pathlib import Path

import numpy as np


def order_scores(n: int, a: np.ndarray, b: np.ndarray, sim: np.ndarray, rank: np.ndarray, pictured: np.ndarray,
                 group: dict[int, str]) -> dict:
    """Per order (``largest``, ``pictured last``): pair precision and recall of the clusters over the vids with a
    ``group``, and the vids split off by the chaining guard."""
    from dedup.ops.graph import assign_clusters
    from dedup.stages.graph import forming_order

    truth = _pairs({v: g for v, g in group.items() if g is not None})
    out = {}
    for name, order in (("largest", rank), ("pictured last", forming_order(rank, pictured))):
        clusters = assign_clusters(n, a, b, sim, order)
        found = _pairs({v: int(clusters.canonical[v]) for v in group if group[v] is not None})
        hit = len(found & truth)
        out[name] = {"precision": round(hit / max(1, len(found)), 4), "recall": round(hit / max(1, len(truth)), 4),
                     "split_off": clusters.split_off}
    return out


def _pairs(label: dict) -> set:
    by: dict = {}
    for v, g in label.items():
        by.setdefault(g, []).append(v)
    return {p for vs in by.values() for p in combinations(sorted(vs), 2)}


def _runs(work: Path):
    """(name, run, truth.csv) of every finished run in ``work`` with its corpus's truth."""
    candidates = [("bench corpus", work / "out-sscd", work / "corpus" / "truth.csv")]
    for kind in ("lineage", "hard"):
        name = "AugLy edit chains" if kind == "lineage" else "AugLy hard corpus"
        candidates += [(f"{name} seed {seed}", work / f"out-{kind}-seed{seed}", work / f"{kind}-seed{seed}" / "truth.csv")
                       for seed in range(10)]
    return [(name, run, truth) for name, run, truth in candidates if (run / "edges_checked.parquet").exists() and truth.exists()]


def _run_scores(run: Path, truth_csv: Path) -> dict:
    import pandas as pd
    import pyarrow.parquet as pq

    from bench.score import _pictured
    from dedup import load_stored
    from dedup.ops.canonical import rank_vids

    stored = load_stored(run)
    edges = pq.read_table(run / "edges_checked.parquet").to_pandas()
    edges = edges[edges["verified"] != 0]  # REJECTED; -1 (above the band) and 1 (passed) are kept
    truth = pd.read_csv(truth_csv)
    base = truth_csv.parent.resolve()
    group = {os.path.abspath(p if os.path.isabs(p) else base / p): g for p, g in zip(truth["path"], truth["group"])}
    files = stored.files[stored.files["vid"].notna()]
    by_vid: dict[int, str] = {}
    for p, v in zip(files["path"], files["vid"].astype(int)):
        by_vid.setdefault(int(v), group.get(os.path.abspath(p)))
    rank = rank_vids(["pixels", "bytes", "path"], stored.files, stored.meta, stored.n)
    return order_scores(stored.n, *(edges[c].to_numpy() for c in ("a", "b", "sim")), rank, _pictured(run, stored), by_vid)


def cluster_order_bench(work: Path, results: Path) -> dict:
    rows = [{"run": name, **_run_scores(run, truth)} for name, run, truth in _runs(work)]
    if not rows:
        raise SystemExit(f"no finished runs in {work}: run `python -m bench`, `--kept-model` or `--hard` first")
    results.mkdir(parents=True, exist_ok=True)
    (results / "cluster-order.json").write_text(json.dumps({"runs": rows}, indent=2) + "\n")
    lines = ["# The order clusters are formed in (`python -m bench --cluster-order`)", "",
             "Each finished run's stored edges (the pairs the content check kept) clustered again by the chaining guard "
             "in the `largest` order and in the graph stage's order (images with a picture found inside them last); pair "
             "precision and recall over the distinct images against the corpus's truth, and the images the guard split "
             "off from their component's first choice.", "",
             "| run | largest: precision | recall | split off | pictured last: precision | recall | split off |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        x, y = r["largest"], r["pictured last"]
        lines.append(f"| {r['run']} | {x['precision']:.4f} | {x['recall']:.4f} | {x['split_off']} | "
                     f"{y['precision']:.4f} | {y['recall']:.4f} | {y['split_off']} |")
    (results / "cluster-order.md").write_text("\n".join(lines) + "\n")
    return {"runs": rows}
