"""End to end: Ray local, Milvus Lite, real images made here."""
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from dedup.config import DedupConfig
from dedup import run
from dedup.synth import base_image, encode, make_corpus, write


def snapshot(root: Path) -> dict:
    return {
        str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def check_accounting(out: Path, n_inputs: int):
    man = pd.read_csv(out / "manifest.csv")
    err = pd.read_csv(out / "errors.csv")
    assert len(man) + len(err) == n_inputs
    assert not set(man["path"]) & set(err["path"])
    for col in ["path", "cluster_id", "canonical_path", "is_canonical", "similarity_to_canonical", "width", "height", "bytes", "sha"]:
        assert col in man.columns
    assert (man.groupby("cluster_id")["is_canonical"].sum() == 1).all()
    keep = (out / "keep.txt").read_text().splitlines()
    remove = (out / "remove.txt").read_text().splitlines()
    assert sorted(keep + remove) == sorted(man["path"])
    assert set(keep) == set(man.loc[man["is_canonical"], "path"])
    return man, err


def test_known_corpus_gives_known_clusters(ray_local, tmp_path):
    root = tmp_path / "corpus"
    truth = make_corpus(root)
    before = snapshot(root)
    out = tmp_path / "out"
    summary = run(DedupConfig(inputs=[str(root)], output=str(out), model="thumb", threshold=0.9))
    assert snapshot(root) == before  # never modifies an input

    man, err = check_accounting(out, len(truth))
    assert len(err) == 0
    man["rel"] = man["path"].map(lambda p: os.path.relpath(p, root))
    groups = man.groupby("cluster_id")["rel"].apply(lambda s: sorted(truth[r] for r in s))
    # each cluster is exactly one true group
    assert sorted(tuple(g) for g in groups) == sorted(tuple([g] * list(truth.values()).count(g)) for g in set(truth.values()))
    canon = man[man["is_canonical"]].set_index("cluster_id")["rel"]
    for g in range(5):
        # most pixels, then largest file, then path order: the original, not its byte copy or re-encodes
        assert f"a/g{g}.jpg" in set(canon)
    copy = man[man["rel"] == "b/nested/g0_copy.jpg"].iloc[0]
    assert copy["match"] == "exact" and copy["similarity_to_canonical"] == 1.0
    small = man[man["rel"] == "a/g0_small.png"].iloc[0]
    assert small["match"] == "near" and 0.9 <= small["similarity_to_canonical"] < 1.0000001
    assert (small["width"], small["height"]) == (160, 120)

    c = summary["counts"]
    assert c["inputs"] == 22 and c["images"] == 22 and c["errors"] == 0
    assert c["clusters"] == 7 and c["duplicates"] == 15 and c["exact_duplicates"] == 5
    assert c["distinct_contents"] == 17  # byte copies are embedded once
    saved = json.loads((out / "summary.json").read_text())
    assert saved["parameters"]["threshold"] == 0.9
    assert saved["stages"]["decode_embed"]["images"] == 17
    for stage in ("discover", "decode_embed", "store", "search", "verify", "graph", "manifest"):
        assert saved["stages"][stage]["seconds"] >= 0


def test_bad_inputs_are_recorded_and_the_job_goes_on(ray_local, tmp_path):
    root = tmp_path / "bad"
    good = encode(base_image(1, (320, 240)))
    write(root / "good.jpg", good)
    write(root / "empty.jpg", b"")
    write(root / "truncated.jpg", good[: len(good) // 2])
    write(root / "notes.jpg", b"this is a text file, not a JPEG\n" * 4)
    write(root / "one_pixel.png", encode(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"))
    write(root / "huge.png", encode(Image.new("L", (3000, 2000)), "PNG"))
    import numpy as np

    write(root / "deep.png", encode(Image.fromarray((np.arange(65536).reshape(256, 256)).astype(np.uint16)), "PNG"))
    write(root / "cmyk.jpg", encode(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG"))
    pal = Image.new("P", (40, 40), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    write(root / "palette.gif", encode(pal, "GIF", transparency=0))
    exif = Image.Exif()
    exif[0x0112] = 6
    write(root / "rotated.jpg", encode(base_image(2, (300, 200)), "JPEG", exif=exif.tobytes()))
    write(root / "misnamed.jpg", encode(base_image(3), "PNG"))
    os.symlink(root / "does-not-exist.jpg", root / "broken-link.jpg")

    out = tmp_path / "out"
    summary = run(DedupConfig(inputs=[str(root)], output=str(out), model="thumb", max_pixels=4_000_000))
    man, err = check_accounting(out, 12)  # 12 files (one a broken link)
    reasons = dict(zip(err["path"].map(os.path.basename), err["error"]))
    assert "empty" in reasons["empty.jpg"]
    assert "truncated" in reasons["truncated.jpg"] or "corrupt" in reasons["truncated.jpg"]
    assert "not a recognised image" in reasons["notes.jpg"]
    assert "too large" in reasons["huge.png"]
    assert "not found" in reasons["broken-link.jpg"] or "broken" in reasons["broken-link.jpg"]
    ok = man.set_index(man["path"].map(os.path.basename))
    assert set(ok.index) == {"good.jpg", "one_pixel.png", "deep.png", "cmyk.jpg", "palette.gif", "rotated.jpg", "misnamed.jpg"}
    assert (ok.loc["rotated.jpg", "width"], ok.loc["rotated.jpg", "height"]) == (200, 300)
    assert ok.loc["misnamed.jpg", "format"] == "PNG"
    assert summary["counts"]["errors"] == 5


@pytest.mark.slow
def test_only_image_files_are_inputs_and_the_rest_is_counted_as_skipped(ray_local, tmp_path):
    """Sidecars, hidden files, an earlier run's output folder and --exclude matches are skipped and counted
    (summary.json), never errors; misnamed images (an image extension, or none) are still read by content."""
    root = tmp_path / "in"
    img = base_image(5)
    write(root / "a.jpg", encode(img))
    write(root / "b" / "a_copy.JPG", encode(img))
    write(root / "no_extension", encode(base_image(6), "PNG"))  # told apart by content
    write(root / "misnamed.jpg", encode(base_image(7), "PNG"))
    for side in ("a.txt", "a.json", "b/notes.md", "index.html", "labels.csv"):
        write(root / side, b"not an image")
    write(root / ".DS_Store", b"\0\0")
    write(root / "._a.jpg", b"AppleDouble")
    write(root / "drafts" / "d.jpg", encode(base_image(8)))
    earlier = tmp_path / "earlier"
    run(DedupConfig(inputs=[str(root / "b")], output=str(earlier), model="thumb"))
    os.rename(earlier, root / "old-run")  # an earlier output folder, moved inside the input
    n_old = sum(1 for p in (root / "old-run").rglob("*") if p.is_file())

    out = tmp_path / "out"
    summary = run(DedupConfig(inputs=[str(root)], output=str(out), model="thumb", exclude=["drafts/*"]))
    man, err = check_accounting(out, 4)
    assert len(err) == 0
    assert sorted(man["path"].map(lambda p: os.path.relpath(p, root))) == ["a.jpg", "b/a_copy.JPG", "misnamed.jpg", "no_extension"]
    skipped = summary["stages"]["discover"]["skipped"]
    assert skipped["by_reason"] == {"not_image": 5, "hidden": 2, "excluded": 1, "earlier_output": n_old}
    assert skipped["files"] == 8 + n_old
    old_txt = sum(1 for p in (root / "old-run").rglob("*.txt"))  # its keep.txt, remove.txt (and their copies under runs/)
    assert skipped["by_extension"][".txt"] == 1 + old_txt and skipped["by_extension"][".md"] == 1  # a.txt and the old run's
    assert json.loads((out / "summary.json").read_text())["stages"]["discover"]["skipped"] == skipped

    # --include narrows, and a changed filter reruns discovery
    summary = run(DedupConfig(inputs=[str(root)], output=str(out), model="thumb", include=["*.jpg"]))
    assert summary["counts"]["inputs"] == 3 and "discover" not in summary["reused_stages"]  # a, misnamed, drafts/d
    assert summary["stages"]["discover"]["skipped"]["by_reason"]["not_included"] == 7  # case-sensitive: not a_copy.JPG


def test_parquet_and_webdataset_shards(ray_local, tmp_path):
    imgs = [encode(base_image(10 + i)) for i in range(3)]
    shard = tmp_path / "in" / "part-0.parquet"
    shard.parent.mkdir(parents=True)
    pq.write_table(pa.table({"key": ["a", "b", "c", "d"], "image": pa.array([imgs[0], imgs[1], None, b"garbage"], pa.binary())}), shard)
    tar_path = tmp_path / "in" / "shard-000.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name, data in [("x.jpg", imgs[0]), ("x.json", b"{}"), ("y.png", encode(base_image(12), "PNG"))]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    write(tmp_path / "in" / "loose.jpg", imgs[1])
    out = tmp_path / "out"
    run(DedupConfig(inputs=[str(tmp_path / "in")], output=str(out), model="thumb"))
    man, err = check_accounting(out, 4 + 2 + 1)
    by = man.set_index(man["path"].map(lambda p: p.split("/in/")[1]))
    assert by.loc["part-0.parquet#row=0", "cluster_id"] == by.loc["shard-000.tar#x.jpg", "cluster_id"]
    assert by.loc["part-0.parquet#row=1", "cluster_id"] == by.loc["loose.jpg", "cluster_id"]
    assert by.loc["shard-000.tar#y.png", "cluster_id"] != by.loc["loose.jpg", "cluster_id"]
    errs = dict(zip(err["path"].map(lambda p: p.split("/in/")[1]), err["error"]))
    assert "null" in errs["part-0.parquet#row=2"] and "not a recognised" in errs["part-0.parquet#row=3"]


@pytest.mark.slow
@pytest.mark.parametrize("local_below", [20_000, 0], ids=["driver", "actor-pools"])
def test_clusters_bigger_than_the_search_limit_are_not_cut(ray_local, tmp_path, local_below):
    """Milvus search (forced: small runs search exactly by default) re-asks and brute-forces full queries."""
    root = tmp_path / "many"
    img = base_image(7)
    for q in range(70, 82):  # 12 different files of the same picture
        write(root / f"q{q}.jpg", encode(img, "JPEG", quality=q))
    write(root / "other.jpg", encode(base_image(8)))
    out = tmp_path / "out"
    summary = run(DedupConfig(inputs=[str(root)], output=str(out), model="thumb", search_limit=3, search_max_limit=5,
                              local_below=local_below, search_engine="milvus"))
    man, _ = check_accounting(out, 13)
    assert man.groupby("cluster_id").size().sort_values().tolist() == [1, 12]
    s = summary["search"]
    assert s["requeried_at_max_limit"] == 12 and s["saturated_brute_forced"] == 12
    assert s["edges_found"] >= 66  # all 12*11/2 pairs
    assert s["mode"] == ("driver" if local_below else "2 search actors")
    assert s["unique_edges"] == 66


@pytest.mark.slow
def test_exact_search_finds_the_same_edges_as_milvus(ray_local, tmp_path):
    """Small runs search exactly in memory (the default below --exact-below): same pairs and similarities
    as Milvus's search, while the vectors are still stored in Milvus."""
    root = tmp_path / "in"
    for i in range(6):
        img = base_image(40 + i)
        write(root / f"{i}.png", encode(img, "PNG"))
        for q in (55, 75, 90):
            write(root / f"{i}-q{q}.jpg", encode(img, "JPEG", quality=q))
    runs = {}
    for engine in ("exact", "milvus"):
        out = tmp_path / engine
        summary = run(DedupConfig(inputs=[str(root)], output=str(out), model="thumb", threshold=0.9, search_engine=engine))
        e = pq.read_table(out / "edges.parquet").to_pandas().sort_values(["a", "b"]).reset_index(drop=True)
        runs[engine] = (summary, e, pd.read_csv(out / "manifest.csv"))
    (se, ee, me), (sm, em, mm) = runs["exact"], runs["milvus"]
    assert se["search"]["mode"].startswith("exact") and sm["search"]["mode"] == "driver"
    assert len(ee) == len(em) > 0
    assert (ee[["a", "b"]].to_numpy() == em[["a", "b"]].to_numpy()).all()
    assert np.allclose(ee["sim"], em["sim"], atol=1e-5)
    assert me[["path", "cluster_id", "is_canonical"]].equals(mm[["path", "cluster_id", "is_canonical"]])
    assert se["stages"]["store"]["vectors"] == 24  # stored in Milvus either way


@pytest.mark.slow
def test_resnet50_from_a_weights_file(ray_local, tmp_path, tiny_resnet_weights):
    root = tmp_path / "r"
    for i in range(4):
        write(root / f"{i}.jpg", encode(base_image(30 + i)))
    write(root / "copy" / "0.jpg", (root / "0.jpg").read_bytes())
    out = tmp_path / "out"
    summary = run(DedupConfig(inputs=[str(root)], output=str(out), model="resnet50", weights=str(tiny_resnet_weights), threshold=0.99, embed_batch=8))
    man, err = check_accounting(out, 5)
    assert summary["parameters"]["weights_info"]["meaningful"] is True
    first = man[man["path"].str.endswith("/r/0.jpg")].iloc[0]
    copy = man[man["path"].str.endswith("/copy/0.jpg")].iloc[0]
    # byte-identical files are one image: one cluster, one similarity to whichever image the cluster keeps
    # (with these weights the four pictures cluster together too, and the kept one need not be 0.jpg)
    assert first["cluster_id"] == copy["cluster_id"] and first["sha"] == copy["sha"]
    assert copy["similarity_to_canonical"] == first["similarity_to_canonical"]
    # whatever the weights: every removed image is itself similar to its kept canonical
    assert (man.loc[~man["is_canonical"], "similarity_to_canonical"] >= 0.99).all()
    vectors = pq.read_table(out / "vectors")
    assert vectors.schema.field("embedding").type.list_size == 2048


def test_hash_model_finds_the_known_clusters_without_weights(ray_local, tmp_path):
    from dedup.ops.hashes import HASHES, search_cosine

    root = tmp_path / "corpus"
    truth = make_corpus(root)
    out = tmp_path / "out"
    summary = run(DedupConfig(inputs=[str(root)], output=str(out), model="multihash"))
    man, err = check_accounting(out, len(truth))
    man["group"] = man["path"].map(lambda p: truth[os.path.relpath(p, root)])
    assert (man.groupby("cluster_id")["group"].nunique() == 1).all() and man["cluster_id"].nunique() == 7
    p = summary["parameters"]
    assert p["max_bits"] == 64 and p["threshold"] == search_cosine(64, HASHES["multihash"].bits)
    vectors = pq.read_table(out / "vectors")
    assert vectors.schema.field("embedding").type.list_size == 256


def test_hash_models_take_the_threshold_in_bits():
    from dedup.config import ConfigError

    cfg = DedupConfig(inputs=["x"], model="phash", max_bits=12).validate()
    assert cfg.threshold == pytest.approx(1 - 2 * 12 / 64 - 1 / 64)
    with pytest.raises(ConfigError, match="max-bits"):
        DedupConfig(inputs=["x"], model="phash", threshold=0.9).validate()
    with pytest.raises(ConfigError, match="0..63"):
        DedupConfig(inputs=["x"], model="phash", max_bits=64).validate()
    with pytest.raises(ConfigError, match="hash models only"):
        DedupConfig(inputs=["x"], max_bits=3).validate()
    assert DedupConfig(inputs=["x"], model="resnet50").validate().threshold == 0.90


@pytest.mark.slow
def test_resnet50_plus_hash_takes_edges_from_either_signal(ray_local, tmp_path, tiny_resnet_weights):
    root = tmp_path / "corpus"
    truth = make_corpus(root, groups=3)
    out = tmp_path / "out"
    # ResNet-50 with test weights at a threshold no pair of different files reaches: the hash finds the groups
    summary = run(DedupConfig(inputs=[str(root)], output=str(out), model="resnet50+multihash",
                              weights=str(tiny_resnet_weights), threshold=0.999999, embed_batch=8))
    man, err = check_accounting(out, len(truth))
    man["group"] = man["path"].map(lambda p: truth[os.path.relpath(p, root)])
    assert (man.groupby("cluster_id")["group"].nunique() == 1).all() and man["cluster_id"].nunique() == 5
    union = summary["search"]["union"]
    assert union["hash_only"] >= 6 and union["model_edges"] == union["found_by_both"] == 0
    assert set(summary["stages"]) >= {"store", "search", "store_hash", "search_hash"}
    vectors = pq.read_table(out / "vectors")
    assert vectors.schema.field("embedding").type.list_size == 2048
    assert vectors.schema.field("hash_embedding").type.list_size == 256
    # similarities stay ResNet-50 cosines, also for the pairs only the hash found
    near = man[man["match"] == "near"]
    assert len(near) and (near["similarity_to_canonical"] < 0.999999).all()


def test_block_counts_keep_every_worker_busy_to_the_end(ray_local):
    """Blocks: about per_block items each, at least two per CPU, a multiple of the workers taking them
    (63 blocks on 2 actors left one actor idle for a whole block at the end), never more than the units."""
    from dedup.ray_env import blocks as _blocks

    assert _blocks(2014, 32, workers=2) == 64  # 63 rounded up to the 2 actors
    assert _blocks(2014, 32, workers=3) == 63
    assert _blocks(2014, 256) == 8
    assert _blocks(3, 256) == 3  # never more blocks than units
    assert _blocks(10, 1000) == 4  # two per CPU (the fixture's Ray has 2)
    assert _blocks(5, 1, items=5000, workers=2) == 5  # a shard is never split


def test_one_operator_datasets_skip_the_reservation_only_for_themselves(ray_local):
    """The one-map stages run without Ray Data's per-operator reservation (it held them to one task at first);
    the setting goes on that dataset's context, never on Ray's global one that other pipelines use."""
    from dedup.ray_env import one_operator

    glob = ray_local.data.DataContext.get_current()
    before = glob.op_resource_reservation_enabled
    ds = one_operator(ray_local.data.from_items([{"i": i} for i in range(8)], override_num_blocks=4).map_batches(lambda b: b))
    assert ds.context.op_resource_reservation_enabled is False
    assert glob.op_resource_reservation_enabled == before
    assert sorted(r["i"] for r in ds.take_all()) == list(range(8))
