"""The manifest: clusters + files + errors -> the tables a user acts on (no Ray; stage `manifest` writes them).

In:  files table (from `plan`, with ``vid``), vector metadata (``vid``, ``width``, ``height``, ``mode``,
     ``format``, ``error``), :class:`~dedup.ops.graph.Clusters`.
Out:
* ``manifest.parquet`` / ``manifest.csv``: one row per input read as an image: ``path``, ``cluster_id``,
  ``canonical_path``, ``is_canonical``, ``similarity_to_canonical``, ``width``, ``height``, ``bytes``,
  ``sha``, and ``match`` (canonical | exact | near), ``cluster_size``, ``component_id``, ``format``,
  ``mode``, ``source``, ``verified`` (the content check of the pair that put a near copy in its cluster:
  ``true``, or ``not needed`` for a pair at or above the verify band or a run without the check; empty for
  canonical images and exact copies), ``inliers`` (that check's matched features; 0 for a pair of one frame it
  matched by its pixels alone; -1 where none), ``reference_path``, ``kept_because`` (on a kept image of a
  cluster of two or more: why, in plain words, :func:`dedup.ops.canonical.in_words`: what the ``quality``
  policy's rules found in the others, ``largest (no evidence told them apart)``, or for identical files the
  rule of :func:`representative_paths`) and ``kept_rule`` (the same as names: the rules, most used first,
  ``largest`` or ``byte-identical``; ``+byte-identical`` added where the kept content is in several identical
  files);
* ``errors.parquet`` / ``errors.csv``: one row per input that could not be used: ``path``, ``error``,
  ``stage`` (read | decode), ``source``;
* (written by the stage) ``keep.txt`` (one canonical per cluster) and ``remove.txt`` (every other path).

Every input is in exactly one of manifest and errors; :func:`build` checks it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from dedup.ops.canonical import in_words
from dedup.ops.graph import Clusters

MANIFEST_COLUMNS = [
    "path", "cluster_id", "canonical_path", "is_canonical", "similarity_to_canonical", "width", "height",
    "bytes", "sha", "match", "cluster_size", "component_id", "format", "mode", "source", "verified", "inliers",
    "reference_path", "kept_because", "kept_rule",
]
ERROR_COLUMNS = ["path", "error", "stage", "source"]


def representative_paths(files: pd.DataFrame) -> pd.Series:
    """vid -> the path kept of that content, where several files hold the same bytes: the oldest
    modification time (``mtime``, :mod:`dedup.ops.hashing`; an item without one after those with one),
    then the shallowest path (fewest components), then path order. A copy put in a sub-folder later (or a
    re-download) is not kept over the file it copies. (Which file `plan` decodes does not matter: the
    bytes are the same.)"""
    ok = files[files["vid"].notna()]
    mtime = ok["mtime"].astype(np.float64) if "mtime" in ok else pd.Series(np.nan, index=ok.index)
    path = ok["path"].astype(str)
    order = pd.DataFrame({"vid": ok["vid"].astype(np.int64), "mtime": mtime.fillna(np.inf),
                          "depth": path.str.count("/"), "path": path})
    order = order.sort_values(["vid", "mtime", "depth", "path"], kind="stable").drop_duplicates("vid")
    return pd.Series(order["path"].to_numpy(), index=pd.Index(order["vid"].to_numpy(), name="vid"), name="path")


def build(files: pd.DataFrame, meta: pd.DataFrame, clusters: Clusters, rep_path: pd.Series, checks=None,
          reference_from: int | None = None, kept_because: dict[int, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (manifest, errors). ``rep_path`` maps vid -> the path kept of that content (:func:`representative_paths`); ``checks``: the
    edges with their content check (stage `verify`), or None for a run without it; ``reference_from``: the
    first vid of the reference images (--reference): a new image kept for one of them has match
    ``reference`` and that image in ``reference_path``; ``kept_because``: canonical vid -> why (stage
    `canonical`)."""
    read_err = files[files["error"].notna()]
    errors = [pd.DataFrame({"path": read_err["path"], "error": read_err["error"], "stage": "read", "source": read_err["source"]})]
    ok = files[files["error"].isna()].copy()
    ok["vid"] = ok["vid"].astype(np.int64)
    meta = meta.set_index("vid")
    ok = ok.join(meta[["width", "height", "mode", "format", "error"]].rename(columns={"error": "decode_error"}), on="vid")
    lost = ok["width"].isna() & ok["decode_error"].isna()
    ok.loc[lost, "decode_error"] = "no vector was produced for this image (internal error, please report)"
    bad = ok[ok["decode_error"].notna()]
    errors.append(pd.DataFrame({"path": bad["path"], "error": bad["decode_error"], "stage": "decode", "source": bad["source"]}))
    good = ok[ok["decode_error"].isna()].copy()

    vids = good["vid"].to_numpy()
    canon = clusters.canonical[vids]
    uniq_canon, cluster_id = np.unique(canon, return_inverse=True)
    good["cluster_id"] = cluster_id.astype(np.int64)
    good["canonical_path"] = rep_path.reindex(canon).to_numpy()
    good["is_canonical"] = good["path"].to_numpy() == good["canonical_path"].to_numpy()
    same_content = vids == canon
    sim = np.where(same_content, 1.0, clusters.similarity[vids]).astype(np.float64)
    good["similarity_to_canonical"] = np.round(sim, 6)
    good["match"] = np.where(good["is_canonical"], "canonical", np.where(same_content, "exact", "near"))
    to_ref = canon >= reference_from if reference_from is not None else np.zeros(len(canon), bool)
    good.loc[to_ref, "match"] = "reference"
    good["reference_path"] = np.where(to_ref, good["canonical_path"].to_numpy(), "")
    good["verified"], good["inliers"] = _pair_checks(vids, canon, checks, np.isin(good["match"].to_numpy(), ["near", "reference"]))
    good["cluster_size"] = good.groupby("cluster_id")["path"].transform("size").astype(np.int64)
    good["kept_rule"] = _kept_rule(good, canon, same_content, kept_because or {})
    good["kept_because"] = [in_words(r.removesuffix("+byte-identical"), n) + (IDENTICAL if r.endswith("+byte-identical") else "")
                            if r else "" for r, n in zip(good["kept_rule"], good["cluster_size"])]
    _, comp = np.unique(clusters.component[vids], return_inverse=True)
    good["component_id"] = comp.astype(np.int64)
    for col in ("width", "height", "bytes"):
        good[col] = good[col].astype(np.int64)
    manifest = (
        good[MANIFEST_COLUMNS]
        .sort_values(["cluster_id", "is_canonical", "path"], ascending=[True, False, True], kind="stable")
        .reset_index(drop=True)
    )
    errors_df = pd.concat(errors, ignore_index=True)[ERROR_COLUMNS].sort_values("path", kind="stable").reset_index(drop=True)

    # The promise: every input is in exactly one of the two tables, and every cluster has one canonical.
    if set(manifest["path"]) & set(errors_df["path"]):
        raise AssertionError("an input is both in the manifest and in the errors")
    if len(manifest) + len(errors_df) != len(files):
        raise AssertionError(f"{len(files)} inputs but {len(manifest)} manifest rows + {len(errors_df)} errors")
    per_cluster = manifest.groupby("cluster_id")["is_canonical"].sum()
    kept_by_reference = manifest.groupby("cluster_id")["match"].first().eq("reference") if len(manifest) else per_cluster
    expected = np.where(kept_by_reference.reindex(per_cluster.index).to_numpy(bool), 0, 1)  # a reference image is kept outside
    if len(per_cluster) and not (per_cluster.to_numpy() == expected).all():
        raise AssertionError("a cluster without exactly one canonical")
    return manifest, errors_df


IDENTICAL = "; of its identical files, the oldest (then the shallowest path, then the name)"


def _kept_rule(good: pd.DataFrame, canon: np.ndarray, same_content: np.ndarray, why: dict[int, str]) -> np.ndarray:
    """Why each kept image of a cluster of two or more was kept, as rule names; empty on every other row."""
    out = np.full(len(good), "", object)
    kept = good["is_canonical"].to_numpy() & (good["cluster_size"].to_numpy() > 1)
    cluster = good["cluster_id"].to_numpy()
    only_exact = pd.Series(same_content).groupby(cluster).transform("all").to_numpy()
    identical = pd.Series(same_content).groupby(cluster).transform("sum").to_numpy() > 1
    for i in np.flatnonzero(kept):
        out[i] = "byte-identical" if only_exact[i] else why.get(int(canon[i]), "largest") + ("+byte-identical" if identical[i] else "")
    return out


def _pair_checks(vids: np.ndarray, canon: np.ndarray, checks, near: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(verified, inliers) of each near copy's edge to its canonical, from the verify stage's edges."""
    verified = np.where(near, "not needed", "").astype(object)
    inliers = np.full(len(vids), -1, np.int64)
    if checks is None or not near.any() or checks.num_rows == 0:
        return verified, inliers
    a, b = checks["a"].to_numpy(), checks["b"].to_numpy()
    n = int(max(a.max(), b.max(), vids.max(), canon.max())) + 1
    key = a * n + b
    order = np.argsort(key)
    lo, hi = np.minimum(vids[near], canon[near]), np.maximum(vids[near], canon[near])
    pos = order[np.clip(np.searchsorted(key[order], lo * n + hi), 0, len(key) - 1)]
    found = key[pos] == lo * n + hi
    flag = checks["verified"].to_numpy()[pos]
    idx = np.flatnonzero(near)
    verified[idx[found & (flag == 1)]] = "true"
    inliers[idx[found]] = checks["inliers"].to_numpy()[pos][found]
    return verified, inliers
