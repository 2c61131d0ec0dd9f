"""The vectors as store and search read them (Vectors.table): rows without an error, in vid order, from
files written in any order, the values unchanged."""
import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dedup.stages.decode_embed import Vectors


def test_table_is_the_rows_without_error_in_vid_order(tmp_path):
    rng = np.random.default_rng(0)
    n, dim = 300, 8
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    errors = [("unreadable" if v % 7 == 0 else None) for v in range(n)]
    order = rng.permutation(n)
    for k, part in enumerate(np.array_split(order, 4)):  # each file a shuffled share, as Ray writes them
        col = pa.FixedSizeListArray.from_arrays(pa.array(vecs[part].ravel()), dim)
        pq.write_table(pa.table({"vid": pa.array(part, pa.int64()), "embedding": col,
                                 "error": pa.array([errors[v] for v in part], pa.string())}), tmp_path / f"part-{k}.parquet")
    v = Vectors(tmp_path, pd.DataFrame({"vid": np.arange(n), "error": errors}), n)
    got = []
    readers = [threading.Thread(target=lambda: got.append(v.table("embedding"))) for _ in range(2)]
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    t = got[0]
    assert got[1] is t  # read once, shared
    keep = np.array([e is None for e in errors])
    assert t["vid"].to_pylist() == np.flatnonzero(keep).tolist()
    values = t["embedding"].combine_chunks().flatten().to_numpy().reshape(-1, dim)
    assert np.array_equal(values, vecs[keep]) and t.num_rows == v.ok_count
