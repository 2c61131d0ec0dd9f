"""Stage canonical in a job (Ray local, Milvus Lite, images made here): the quality policy keeps the
original where the old largest policy kept a copy, and the clusters are the same under both."""
import pandas as pd
import pytest
from PIL import Image, ImageOps

from dedup import run
from dedup.config import DedupConfig
from dedup.stages.canonical import candidates
from dedup.synth import encode, textured_image, write

import numpy as np


def _corpus(root):
    """Per group: the original JPEG, its lossless re-save (same pixels, bigger file: largest keeps it), and
    a copy with a letterbox (more pixels, not more picture); plus singletons."""
    for g in range(3):
        img = textured_image(40 + g)
        original = encode(img, "JPEG", quality=92)
        write(root / "orig" / f"g{g}.jpg", original)
        decoded = Image.open(__import__("io").BytesIO(original)).convert("RGB")
        write(root / "copies" / f"g{g}_resaved.png", encode(decoded, "PNG"))
        write(root / "copies" / f"g{g}_letterbox.jpg", encode(ImageOps.expand(decoded, border=(0, 30, 0, 30), fill=(0, 0, 0)), "JPEG", quality=95))
    for s in range(2):
        write(root / "solo" / f"s{s}.jpg", encode(textured_image(900 + s), "JPEG"))


def _clusters(man: pd.DataFrame) -> set:
    return {frozenset(g["path"]) for _, g in man.groupby("cluster_id")}


@pytest.mark.slow
def test_quality_keeps_the_original_and_the_clusters_stay(ray_local, tmp_path):
    root = tmp_path / "in"
    _corpus(root)
    out = {}
    for policy in ("largest", "quality"):
        run(DedupConfig(inputs=[str(root)], output=str(tmp_path / policy), model="thumb", threshold=0.85, canonical=policy))
        out[policy] = pd.read_csv(tmp_path / policy / "manifest.csv", keep_default_na=False)
    assert _clusters(out["largest"]) == _clusters(out["quality"])
    for policy, man in out.items():
        kept = man[man["is_canonical"] & (man["cluster_size"] > 1)]
        assert len(kept) == 3
        names = sorted(p.split("/")[-2] + "/" + p.split("/")[-1] for p in kept["path"])
        if policy == "quality":
            assert names == ["orig/g0.jpg", "orig/g1.jpg", "orig/g2.jpg"]
            assert all("same_pixels" in w for w in kept["kept_rule"])
            assert all("lossless re-save of it" in w for w in kept["kept_because"])
        else:
            assert not any(n.startswith("orig/") for n in names)  # the re-save or the letterbox: more pixels or bytes
            assert set(kept["kept_rule"]) == {"largest"}
            assert set(kept["kept_because"]) == {"largest (no evidence told them apart)"}
    table = pd.read_parquet(tmp_path / "quality" / "canonical.parquet")
    assert table["kept"].sum() == 3 and table["error"].isna().all() and {"picture_pixels", "jpeg_quality", "why"} <= set(table.columns)
    assert "spread" not in table  # the photo and its lossless re-save are one group: two groups have no centre
    import json  # the stage's CPU, summed inside its tasks, per candidate (issue 25's cost)
    stage = json.loads((tmp_path / "quality" / "summary.json").read_text())["stages"]["canonical"]
    assert stage["candidates"] >= 6 and stage["task_cpu_seconds"] > 0
    assert stage["task_cpu_seconds"] == round(stage["measure_cpu_seconds"] + stage["choose_cpu_seconds"], 3)
    assert stage["cpu_ms_per_candidate"] == round(1000 * stage["task_cpu_seconds"] / stage["candidates"], 2)


def test_candidates_are_copies_of_every_other_member():
    """A cluster formed around 0 with 1 and 2 not copies of each other: only 0 may be kept (1 and 2 each
    miss an edge); a cluster holding a reference image is left alone."""
    canonical = np.array([0, 0, 0, 3, 3, 5, 5])
    a = np.array([0, 0, 3, 5])
    b = np.array([1, 2, 4, 6])
    is_ref = np.array([False, False, False, False, False, False, True])
    groups = candidates(canonical, a, b, is_ref)
    assert groups == {3: [3, 4]}  # cluster 0 has one candidate (nothing to choose), cluster 5 holds a reference


def test_cluster_sims_are_the_candidates_edges():
    from dedup.stages.canonical import cluster_sims

    groups = {0: [0, 2, 5], 7: [7, 8]}
    a, b, s = np.array([0, 2, 0, 7, 5, 1]), np.array([2, 5, 5, 8, 9, 0]), np.array([0.9, 0.8, 0.7, 0.95, 0.5, 0.6])
    sims = cluster_sims(groups, a, b, s)
    assert np.allclose(sims[0], [[1, 0.9, 0.7], [0.9, 1, 0.8], [0.7, 0.8, 1]])  # in the candidates' order
    assert np.allclose(sims[7], [[1, 0.95], [0.95, 1]])  # edges to vids outside the candidates are left out


def test_pair_transforms_are_the_checks_of_pairs_inside_one_cluster():
    """The content check's transforms reach the kept-image stage for passed pairs of two candidates of one
    cluster only (not for rejected pairs, pairs across clusters, or pairs it did not check)."""
    import pyarrow as pa

    from dedup.ops.verify import VERIFY_SCHEMA, VERIFIED, REJECTED, NOT_NEEDED
    from dedup.stages.canonical import make_versions, pair_transforms

    groups = {0: [0, 2], 5: [5, 6]}
    t = [float(x) for x in np.eye(3).ravel() * 2]
    rows = [(0, 2, VERIFIED, t), (5, 6, REJECTED, t), (2, 5, VERIFIED, t), (5, 6, NOT_NEEDED, None), (1, 9, VERIFIED, t)]
    checks = pa.table({"a": [r[0] for r in rows], "b": [r[1] for r in rows], "sim": [0.5] * len(rows),
                       "verified": [r[2] for r in rows], "inliers": [30] * len(rows), "mirrored": [False] * len(rows),
                       "transform": [r[3] for r in rows]}, schema=VERIFY_SCHEMA)
    links = pair_transforms(groups, checks)
    assert list(links) == [0] and list(links[0]) == [(0, 2)]
    np.testing.assert_allclose(links[0][(0, 2)], np.eye(3) * 2)
    assert pair_transforms(groups, None) == {}  # --verify off
    f = {"picture_pixels": 1, "width": 1, "height": 1}
    measured = {0: (f,), 2: (f,)}
    keep, versions = make_versions([0, 2], measured, {0: (0, 0, "", 4, 9), 2: (0, 0, "", 4, 9)}, links[0])
    assert keep == [0, 1] and [v.vid for v in versions] == [0, 2]
    assert list(versions[0].links) == [2] and versions[1].links == {}
