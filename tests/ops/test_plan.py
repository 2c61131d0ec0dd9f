"""Stage `plan`: the decode work list groups representatives by unit, as a pandas groupby would."""
import numpy as np
import pandas as pd

from dedup.ops.plan import decode_units


def _reference(reps: pd.DataFrame) -> list[dict]:
    return [{"kind": k, "unit": u, "items": [str(p) for p in g["path"]], "vids": [int(v) for v in g["vid"]],
             "shas": [str(h) for h in g["sha"]]} for (k, u), g in reps.groupby(["kind", "unit"], sort=True)]


def test_decode_units_groups_like_groupby():
    rng = np.random.default_rng(0)
    n = 500
    kinds = rng.choice(["file", "parquet", "tar"], n)
    units = [f"/data/{k}/{int(u)}" if k != "file" else f"/data/img{i}.jpg" for i, (k, u) in enumerate(zip(kinds, rng.integers(0, 20, n)))]
    reps = pd.DataFrame({"vid": np.arange(n), "sha": [f"{i:040x}" for i in rng.permutation(n)], "kind": kinds, "unit": units,
                         "path": [f"{u}::{i}" for i, u in enumerate(units)]})
    reps = reps.sample(frac=1.0, random_state=1).sort_values("vid").reset_index(drop=True)
    got = decode_units(reps)
    assert got == _reference(reps)
    assert sum(len(u["items"]) for u in got) == n and any(len(u["items"]) > 1 for u in got)
    assert all(isinstance(v, int) for u in got for v in u["vids"])
    assert decode_units(reps.iloc[:0]) == []
