"""Stage `canonical`: the policy that says which image of a cluster is kept.

In:  per vid: ``pixels`` (width x height), ``bytes`` (file size), and its place in path order (vids are
     numbered in path order of their first file, see `plan`).
Out: ``rank`` per vid, lower is preferred; the graph stage keeps the lowest rank of each cluster.

``--canonical`` is a comma list of keys, applied in order, each breaking the previous one's ties:

* ``pixels``: more pixels first (the largest resolution copy is kept);
* ``bytes``: larger file first (at equal resolution, the less compressed copy);
* ``path``: path order (alphabetical; for byte-identical copies, the first path is the canonical file).

Default ``pixels,bytes,path``. Path order is always the last tie-break, so the choice is deterministic
from run to run whatever the policy.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def policy_rank(keys: list[str], pixels: np.ndarray, nbytes: np.ndarray, path_order: np.ndarray) -> np.ndarray:
    columns = {
        "pixels": -np.asarray(pixels, np.int64),
        "bytes": -np.asarray(nbytes, np.int64),
        "path": np.asarray(path_order, np.int64),
    }
    sort_keys = [columns[k] for k in keys] + [columns["path"]]
    order = np.lexsort(tuple(reversed(sort_keys)))  # lexsort's last key is the primary one
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank


def per_vid(files: pd.DataFrame, meta: pd.DataFrame, n: int) -> dict[str, np.ndarray]:
    """The policy's inputs per vid: ``pixels`` (from the decoded metadata) and ``bytes`` (the file size)."""
    pixels = np.zeros(n, np.int64)
    nbytes = np.zeros(n, np.int64)
    if n:
        m = meta.set_index("vid")
        idx = m.index.to_numpy(np.int64)
        pixels[idx] = m["width"].to_numpy(np.int64) * m["height"].to_numpy(np.int64)
        ok = files[files["vid"].notna()]
        nbytes[ok["vid"].to_numpy(np.int64)] = ok["bytes"].to_numpy(np.int64)
    return {"pixels": pixels, "bytes": nbytes}


def rank_vids(keys: list[str], files: pd.DataFrame, meta: pd.DataFrame, n: int) -> np.ndarray:
    """Each vid's place in the policy's order (vids are numbered in path order, see `plan`)."""
    v = per_vid(files, meta, n)
    return policy_rank(keys, v["pixels"], v["bytes"], np.arange(n))
