"""Which file of a content is kept, and why, in the manifest (dedup.ops.manifest): among byte-identical
files the oldest, then the shallowest path, then the name; ``kept_because`` in plain words, ``kept_rule``
the rule names."""
import os

import numpy as np
import pandas as pd

from dedup.ops.canonical import PLAIN, RULE_NAMES, in_words
from dedup.ops.graph import Clusters
from dedup.ops.hashing import hash_units
from dedup.ops.manifest import build, representative_paths


def _files(paths, vids, mtimes=None):
    df = pd.DataFrame({"path": paths, "source": "in", "kind": "file", "unit": paths, "sha": [f"s{v}" for v in vids],
                       "bytes": 100, "error": None, "vid": pd.array(vids, "Int64")})
    if mtimes is not None:
        df["mtime"] = mtimes
    return df


def _meta(n):
    return pd.DataFrame({"vid": range(n), "width": 64, "height": 48, "mode": "RGB", "format": "JPEG", "error": None})


def _clusters(canonical, sims=None):
    canonical = np.asarray(canonical, np.int64)
    sim = np.ones(len(canonical)) if sims is None else np.asarray(sims, np.float64)
    return Clusters(canonical.copy(), canonical, sim, 1, canonical.copy())


def test_identical_files_keep_the_shallowest_path_at_one_modification_time():
    """The issue's case: a copy in edits/ sorts first by path, but the top-level file is kept."""
    files = _files(["/r/edits/a_copy.jpg", "/r/photo.jpg"], [0, 0], [1e9, 1e9])
    assert representative_paths(files)[0] == "/r/photo.jpg"
    man, _ = build(files, _meta(1), _clusters([0]), representative_paths(files))
    kept = man[man["is_canonical"]].iloc[0]
    assert kept["path"] == "/r/photo.jpg" and kept["kept_rule"] == "byte-identical"
    assert kept["kept_because"] == PLAIN["byte-identical"]
    assert man.loc[~man["is_canonical"], "match"].tolist() == ["exact"]


def test_the_oldest_identical_file_is_kept_wherever_it_is():
    files = _files(["/r/new.jpg", "/r/old/deep/x.jpg", "/r/also.jpg"], [0, 0, 0], [2e9, 1e9, 3e9])
    assert representative_paths(files)[0] == "/r/old/deep/x.jpg"
    files = _files(["/r/b.jpg", "/r/a.jpg", "/r/sub/c.jpg"], [0, 0, 0], [1e9, 1e9, 1e9])
    assert representative_paths(files)[0] == "/r/a.jpg"  # then the name


def test_without_modification_times_the_shallowest_path_is_kept():
    """A files table from before mtime was recorded (a cached discover), or items of shards (no mtime)."""
    files = _files(["/r/a/b/c.jpg", "/r/z.jpg", "/r/q.png"], [0, 0, 1])
    assert representative_paths(files).to_dict() == {0: "/r/z.jpg", 1: "/r/q.png"}
    files = _files(["/r/a/b/c.jpg", "/r/z.jpg"], [0, 0], [1e9, np.nan])
    assert representative_paths(files)[0] == "/r/a/b/c.jpg"  # a known time before an unknown one


def test_hashing_records_the_modification_time(tmp_path):
    p = tmp_path / "x.jpg"
    p.write_bytes(b"abc")
    os.utime(p, (1_500_000_000, 1_500_000_000))
    row = hash_units({"kind": ["file"], "unit": [str(p)], "source": ["s"]}).to_pylist()[0]
    assert row["mtime"] == 1_500_000_000


def test_kept_because_is_in_plain_words_and_kept_rule_keeps_the_names():
    """A cluster decided by the quality policy (why: rule names, most used first), whose kept content is
    also in two identical files; and a cluster no rule decided."""
    paths = ["/r/photo.jpg", "/r/copies/photo.jpg", "/r/crop.jpg", "/r/caption.jpg", "/r/p.jpg", "/r/q.jpg"]
    files = _files(paths, [0, 0, 1, 2, 3, 4], [1e9] * 6)
    clusters = _clusters([0, 0, 0, 3, 3], [1, 0.9, 0.9, 1, 0.95])
    man, _ = build(files, _meta(5), clusters, representative_paths(files), kept_because={0: "local_edit, picture", 3: "largest"})
    kept = man[man["is_canonical"]].set_index("path")
    assert kept.loc["/r/photo.jpg", "kept_rule"] == "local_edit, picture+byte-identical"
    assert kept.loc["/r/photo.jpg", "kept_because"] == (
        "another has something drawn on it (caption, watermark, patch); another is a crop or a smaller version of it"
        "; of its identical files, the oldest (then the shallowest path, then the name)")
    assert kept.loc["/r/p.jpg", "kept_rule"] == "largest"
    assert kept.loc["/r/p.jpg", "kept_because"] == "largest (no evidence told them apart)"
    assert (man.loc[~man["is_canonical"], ["kept_because", "kept_rule"]] == "").all().all()


def test_every_rule_has_plain_words():
    assert set(RULE_NAMES) <= set(PLAIN)
    assert in_words("same_pixels") == "the other is a lossless re-save of it"
    assert in_words("sharpness, resampled", 3) == "another is blurred; another is resampled (zoomed, rotated or blurred)"
    assert in_words("local_edit, drawn_on") == "the other has something drawn on it (caption, watermark, patch)"  # once
