"""Stage `plan`: one representative per distinct byte content, and the vector ids.

In:  files table from `hashing`.
Out: the files table with a ``vid`` column (the vector id of its content; null for errors), and the
     decode work list: one row per unit (file or shard) holding the representatives to decode
     (columns ``kind``, ``unit``, ``items`` (item paths), ``vids``, ``shas``).

Byte-identical files share a vid, so each distinct content is decoded and embedded exactly once. The
representative of a content is its first path in sort order, and vids are numbered in that order, so
both are the same from run to run.
"""
from __future__ import annotations

import pandas as pd
import pyarrow as pa


def assign_vids(files: pa.Table) -> tuple[pa.Table, pd.DataFrame]:
    df = files.to_pandas()
    ok = df[df["error"].isna()]
    reps = (
        ok.sort_values("path", kind="stable")
        .drop_duplicates("sha", keep="first")
        .sort_values("path", kind="stable")
        .reset_index(drop=True)
    )
    reps["vid"] = range(len(reps))
    vid_of_sha = dict(zip(reps["sha"], reps["vid"]))
    df["vid"] = df["sha"].map(vid_of_sha).astype("Int64")
    out = pa.Table.from_pandas(df, preserve_index=False)
    return out, reps[["vid", "sha", "path", "kind", "unit"]]


def representatives(files: pd.DataFrame) -> pd.DataFrame:
    """The representatives of a files table that already has vids (as stored in files.parquet)."""
    ok = files[files["vid"].notna()]
    reps = ok.sort_values("path", kind="stable").drop_duplicates("vid", keep="first").copy()
    reps["vid"] = reps["vid"].astype("int64")
    return reps.sort_values("vid").reset_index(drop=True)[["vid", "sha", "path", "kind", "unit"]]


def decode_units(reps: pd.DataFrame) -> list[dict]:
    """Group representatives by the unit that holds them (a file is its own unit)."""
    units = []
    for (kind, unit), g in reps.groupby(["kind", "unit"], sort=True):
        units.append(
            {
                "kind": kind,
                "unit": unit,
                "items": [str(p) for p in g["path"]],
                "vids": [int(v) for v in g["vid"]],
                "shas": [str(h) for h in g["sha"]],
            }
        )
    return units
