"""Score a manifest against ``truth.csv``: pair precision/recall/F1 and the user's view.

* pair metrics: a pair of images is predicted duplicate when they share a cluster, truly duplicate when
  they share a group;
* ``wrongly_removed``: images the manifest would remove although none of their group is kept (data lost);
* ``missed``: copies left in the keep set (for each group, kept images beyond the first).

Images in the error table are scored as kept singletons (the job does not remove them).

:func:`score_parts` scores the whole corpus and each part of it (``truth.csv``'s ``part`` column, see
:mod:`dedup.bench.corpus`) from the same clusters: ``bench`` (standard copies and near-miss negatives),
``hard`` (hard copies) and ``near_miss`` alone. Pairs across parts count only in the whole.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def _pairs(sizes) -> int:
    s = np.asarray(sizes, np.int64)
    return int((s * (s - 1) // 2).sum())


def score(manifest: pd.DataFrame, truth: pd.DataFrame) -> dict:
    t = truth[["path", "group"]]
    m = manifest[["path", "cluster_id", "is_canonical"]]
    df = t.merge(m, on="path", how="left")
    lone = df["cluster_id"].isna()
    df.loc[lone, "is_canonical"] = True  # errors/unlisted: nothing removes them
    df["cluster"] = df["cluster_id"].astype("string").fillna("err:" + df["path"])
    df["is_canonical"] = df["is_canonical"].astype(bool)
    tp = _pairs(df.groupby(["cluster", "group"]).size())
    pred = _pairs(df.groupby("cluster").size())
    true = _pairs(df.groupby("group").size())
    precision = tp / pred if pred else 1.0
    recall = tp / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    kept_per_group = df.groupby("group")["is_canonical"].sum()
    removed = df[~df["is_canonical"]]
    wrongly_removed = int((kept_per_group.reindex(removed["group"]).to_numpy() == 0).sum())
    missed = int((kept_per_group - 1).clip(lower=0).sum())
    return {
        "images": int(len(df)),
        "pair_precision": round(precision, 4),
        "pair_recall": round(recall, 4),
        "pair_f1": round(f1, 4),
        "true_pairs": true,
        "predicted_pairs": pred,
        "removed": int(len(removed)),
        "wrongly_removed": wrongly_removed,
        "missed": missed,
        "unlisted": int(lone.sum()),
    }


PART_SETS = {"bench": ("standard", "near_miss"), "hard": ("hard",), "near_miss": ("near_miss",)}


def score_parts(manifest: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """:func:`score` of the whole corpus, plus ``<part>_f1``, ``<part>_wrongly_removed`` and
    ``<part>_missed`` for each part set present in ``truth`` (:data:`PART_SETS`)."""
    out = score(manifest, truth)
    if "part" not in truth:
        return out
    for name, parts in PART_SETS.items():
        sub = truth[truth["part"].isin(parts)]
        if sub.empty:
            continue
        s = score(manifest[manifest["path"].isin(sub["path"])], sub)
        out.update({f"{name}_f1": s["pair_f1"], f"{name}_wrongly_removed": s["wrongly_removed"], f"{name}_missed": s["missed"]})
    return out


def sweep(out_dir, truth: pd.DataFrame, thresholds, canonical_keys=("pixels", "bytes", "path"), bands=None, passed=None) -> pd.DataFrame:
    """Re-cluster a finished run from its stored edges (no embedding) and score it: at each plain
    threshold (every edge at or above it kept), or with ``bands`` (pairs (lo, hi)) and ``passed`` (a
    boolean per stored edge: its content check passed), as the verify stage would: edges at or above hi
    kept, edges in [lo, hi) kept where they passed.

    Only thresholds at or above the run's own threshold are meaningful: lower edges were never stored.
    """
    from pathlib import Path

    from dedup import build_manifest, cluster_vids, load_stored, representative_paths

    out_dir = Path(out_dir)
    stored = load_stored(out_dir)
    files_df, meta, n, edges = stored.files, stored.meta, stored.n, stored.edges
    a, b, s = (edges[c].to_numpy() for c in ("a", "b", "sim"))
    reps = representative_paths(files_df)
    cases = [({"threshold": float(th)}, s >= th) for th in thresholds]
    for lo, hi in bands or []:
        cases.append(({"threshold": float(lo), "verify_above": float(hi)}, (s >= hi) | ((s >= lo) & np.asarray(passed, bool))))
    rows = []
    for label, keep in cases:
        clusters = cluster_vids(files_df, meta, n, a[keep], b[keep], s[keep], list(canonical_keys))
        man, _ = build_manifest(files_df, meta, clusters, reps)
        rows.append({**label, **score_parts(man, truth)})
    return pd.DataFrame(rows)


def check_all(out_dir, lo: float, hi: float) -> np.ndarray:
    """Whether each stored edge of a finished run passes the content check, for every edge with
    similarity in [lo, hi): the run's own checks (``verify.parquet``) and the missing ones computed now
    (the verify stage's parameters). Edges outside [lo, hi) get False. For band sweeps (:func:`sweep`)."""
    from pathlib import Path

    import pyarrow.parquet as pq

    from dedup import OutputLayout, load_stored
    from dedup.stages import verify

    out_dir = Path(out_dir)
    layout = OutputLayout.of(out_dir)
    stored = load_stored(out_dir)
    files_df, edges = stored.files, stored.edges
    a, b, s = (edges[c].to_numpy() for c in ("a", "b", "sim"))
    vp = verify.VerifyParams()
    cached = verify.read_checks(layout.verify_cache, vp.key())
    n = int(max(a.max(initial=0), b.max(initial=0))) + 1
    key = a * n + b
    band = (s >= lo) & (s < hi)
    known = dict(zip(cached["a"].to_numpy(np.int64) * n + cached["b"].to_numpy(np.int64), cached["ok"].to_numpy(bool)))
    todo = band & ~np.isin(key, np.fromiter(known, np.int64, len(known)))
    if todo.any():
        from dedup.ops.plan import representatives

        new, _ = verify.run_checks(a[todo], b[todo], verify.where(representatives(files_df), a[todo], b[todo]), vp)
        known.update(zip(new["a"].to_numpy() * n + new["b"].to_numpy(), new["ok"].to_numpy()))
        pq.write_table(new, layout.verify_sweep)
    return np.array([band[i] and known.get(int(k), False) for i, k in enumerate(key)], bool)
