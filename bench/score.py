"""Score a manifest against ``truth.csv``: pair precision/recall/F1 and the user's view.

* pair metrics: a pair of images is predicted duplicate when they share a cluster, truly duplicate when
  they share a group;
* ``wrongly_removed``: images the manifest would remove although none of their group is kept (data lost);
* ``missed``: copies left in the keep set (for each group, kept images beyond the first).

Images in the error table are scored as kept singletons (the job does not remove them).

:func:`score_parts` scores the whole corpus and each part of it (``truth.csv``'s ``part`` column, see
:mod:`bench.corpus`) from the same clusters: ``bench`` (standard copies and near-miss negatives),
``hard`` (hard copies) and ``near_miss`` alone. Pairs across parts count only in the whole.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def _pairs(sizes) -> int:
    s = np.asarray(sizes, np.int64)
    return int((s * (s - 1) // 2).sum())


def _scored(manifest: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """truth's rows with their ``cluster`` and ``is_canonical`` (an image not in the manifest: its own
    cluster, kept)."""
    df = truth[["path", "group"]].merge(manifest[["path", "cluster_id", "is_canonical"]], on="path", how="left")
    lone = df["cluster_id"].isna()
    df.loc[lone, "is_canonical"] = True  # errors/unlisted: nothing removes them
    df["cluster"] = df["cluster_id"].astype("string").fillna("err:" + df["path"])
    df["is_canonical"] = df["is_canonical"].astype(bool)
    return df


def score(manifest: pd.DataFrame, truth: pd.DataFrame) -> dict:
    df = _scored(manifest, truth)
    lone = df["cluster_id"].isna()
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
    kept_orig = kept_original(df, truth)
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
        **kept_orig,
    }


def kept_original(df: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """``kept_original``: of the clusters of two or more images that hold a group's untouched original
    (``truth``'s ``edit`` column), the share whose kept image is that original; ``clusters_with_original``."""
    if "edit" not in truth:
        return {}
    d = df.merge(truth[["path", "edit"]], on="path", how="left")
    d["size"] = d.groupby("cluster")["path"].transform("size")
    d = d[d["size"] > 1]
    has = d[d["edit"] == "original"][["cluster", "group"]]
    if has.empty:
        return {"kept_original": float("nan"), "clusters_with_original": 0}
    kept = d[d["is_canonical"]].set_index("cluster")["path"]
    orig = d[d["edit"] == "original"].set_index("cluster")["path"]
    orig = orig[~orig.index.duplicated(keep=False)]  # a cluster that merged two originals has no one answer
    hit = (kept.reindex(orig.index) == orig).to_numpy()
    return {"kept_original": round(float(hit.mean()), 4), "clusters_with_original": int(len(orig))}


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


def sweep(out_dir, truth: pd.DataFrame, thresholds, canonical_keys=("pixels", "bytes", "path"), bands=None, passed=None,
          chooser=None) -> pd.DataFrame:
    """Re-cluster a finished run from its stored edges (no embedding) and score it: at each plain
    threshold (every edge at or above it kept), or with ``bands`` (pairs (lo, hi)) and ``passed`` (a
    boolean per stored edge: its content check passed), as the verify stage would: edges at or above hi
    kept, edges in [lo, hi) kept where they passed.

    ``chooser`` (a :class:`QualityChooser`): the kept image of each cluster chosen as ``--canonical
    quality`` does; without it, as ``canonical_keys`` order it. Only thresholds at or above the run's own
    threshold are meaningful: lower edges were never stored.
    """
    from pathlib import Path

    from dedup import build_manifest, cluster_vids, load_stored, representative_paths

    out_dir = Path(out_dir)
    stored = load_stored(out_dir)
    files_df, meta, n, edges = stored.files, stored.meta, stored.n, stored.edges
    a, b, s = (edges[c].to_numpy() for c in ("a", "b", "sim"))
    reps = representative_paths(files_df)
    pictured = _pictured(out_dir, stored)
    cases = [({"threshold": float(th)}, s >= th) for th in thresholds]
    for lo, hi in bands or []:
        cases.append(({"threshold": float(lo), "verify_above": float(hi)}, (s >= hi) | ((s >= lo) & np.asarray(passed, bool))))
    rows = []
    for label, keep in cases:
        clusters = cluster_vids(files_df, meta, n, a[keep], b[keep], s[keep], list(canonical_keys), pictured)
        row = {**label}
        if chooser is not None:  # the largest order's choice beside it, from the same clusters
            man, _ = build_manifest(files_df, meta, clusters, reps)
            row["kept_original_largest"] = kept_original(_scored(man, truth), truth).get("kept_original")
            clusters = chooser(clusters, a[keep], b[keep], s[keep])
        man, _ = build_manifest(files_df, meta, clusters, reps)
        rows.append({**row, **score_parts(man, truth)})
    return pd.DataFrame(rows)


class QualityChooser:
    """``--canonical quality`` over re-clustered stored edges (:func:`sweep`): each image measured once
    (on Ray tasks, kept in memory by path: a bench corpus's views, not a job's; ``cache`` may be shared by
    the runs of one corpus) and every cluster chosen again."""

    def __init__(self, out_dir, cache: dict | None = None):
        from dedup import load_stored
        from dedup.ops.canonical import per_vid
        from dedup.ops.plan import representatives

        stored = load_stored(out_dir)
        self.where = representatives(stored.files).set_index("vid")[["kind", "unit", "path"]]
        self.size = per_vid(stored.files, stored.meta, stored.n)
        self.cache = {} if cache is None else cache

    def __call__(self, clusters, a, b, s):
        import pyarrow as pa
        import ray

        from dedup.stages import canonical as stage

        groups = stage.candidates(clusters.canonical, a, b, np.zeros(len(clusters.canonical), bool))
        info = stage.vid_info(self.where, self.size, [v for vs in groups.values() for v in vs])
        todo = sorted(v for v in info if info[v][2] not in self.cache)
        if todo:
            remote = ray.remote(num_cpus=1)(stage.measure_vids)
            parts = [todo[i::4] for i in range(4)]
            for part in ray.get([remote.remote({v: info[v][:3] for v in p}) for p in parts if p]):
                self.cache.update({info[v][2]: m for v, m in part.items()})
        measured = {v: self.cache[info[v][2]] for v in info}
        _, chosen = stage.choose_groups(list(groups.items()), measured, info, stage.cluster_sims(groups, a, b, s))
        return stage.rechoose(clusters, chosen, pa.table({"a": a, "b": b, "sim": s}))


def _pictured(out_dir, stored) -> np.ndarray:
    """The vids the run found a picture inside, as the graph stage has them (its vectors' pictures,
    :meth:`dedup.stages.decode_embed.Vectors.inner`); ``stored``: the run's :func:`dedup.load_stored`."""
    from dedup.stages.decode_embed import Vectors

    return Vectors(out_dir / "vectors", stored.meta, stored.n).inner()[0]


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
        pq.write_table(new, layout.root / "verify-sweep.parquet")  # the sweep's extra checks, beside the run's
    return np.array([band[i] and known.get(int(k), False) for i, k in enumerate(key)], bool)
