"""dedup.ray.deduplicate: a Ray Data Dataset deduplicated inside a pipeline (local Ray, Milvus Lite,
images made here): every row comes back with its cluster, keep flag, kept row's id and error; the same
clusters as the CLI on the same images, whatever shape the image column has."""
import hashlib
import io
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import dedup
from dedup.raydata import image_bytes
from dedup.synth import base_image, encode, make_corpus


def corpus_rows():
    """(key, jpg bytes, caption, group) rows: 5 groups of an original, a byte copy, a half-size PNG and
    a quality-40 JPEG, two singletons, a null image and bytes that are no image."""
    rows = []
    for g in range(5):
        img = base_image(100 + g)
        original = encode(img, "JPEG", quality=92)
        for kind, data in (("orig", original), ("copy", original), ("small", encode(img.resize((160, 120)), "PNG")),
                           ("q40", encode(img, "JPEG", quality=40))):
            rows.append((f"g{g}-{kind}", data, f"photo {g} ({kind})", f"g{g}"))
    rows += [(f"s{s}", encode(base_image(900 + s)), f"single {s}", f"s{s}") for s in range(2)]
    rows += [("null", None, "no image", None), ("garbage", b"not an image at all", "broken", None)]
    return rows


def partition(ids, clusters):
    """The clusters as a set of frozensets of ids."""
    groups = {}
    for i, c in zip(ids, clusters):
        groups.setdefault(c, set()).add(i)
    return {frozenset(g) for g in groups.values()}


@pytest.mark.slow
def test_a_parquet_dataset_deduplicated_in_a_pipeline_and_written_back_out(ray_local, tmp_path):
    rows = corpus_rows()
    src = tmp_path / "shards"
    src.mkdir()
    for part, chunk in enumerate((rows[:11], rows[11:])):  # two shards, as a dataset on disk would be
        pq.write_table(pa.table({"key": [r[0] for r in chunk], "jpg": pa.array([r[1] for r in chunk], pa.binary()),
                                 "caption": [r[2] for r in chunk]}), src / f"part-{part}.parquet")
    ds = ray_local.data.read_parquet(str(src))
    work = tmp_path / "dedup-work"
    out = dedup.ray.deduplicate(ds, image_column="jpg", id_column="key", output=work, model="thumb", threshold=0.9)
    dst = tmp_path / "annotated"
    out.write_parquet(str(dst))

    got = pq.read_table(str(dst)).to_pandas().set_index("key").sort_index()
    assert sorted(got.index) == sorted(r[0] for r in rows)  # no row lost
    assert list(got.columns) == ["jpg", "caption", "dedup_cluster", "dedup_keep", "dedup_canonical_id", "dedup_error"]
    assert got.loc["g3-small", "caption"] == "photo 3 (small)" and got.loc["g3-small", "jpg"] == rows[14][1]
    assert "null" in got.loc["null", "dedup_error"] and "not a recognised" in got.loc["garbage", "dedup_error"]
    bad = got.loc[["null", "garbage"]]
    assert bad["dedup_cluster"].isna().all() and not bad["dedup_keep"].any() and bad["dedup_canonical_id"].isna().all()
    ok = got.drop(["null", "garbage"])
    assert ok["dedup_error"].isna().all()
    truth = {r[0]: r[3] for r in rows if r[3]}
    assert partition(ok.index, ok["dedup_cluster"]) == partition(truth, truth.values())
    kept = ok[ok["dedup_keep"]]
    assert sorted(kept.index) == ["g0-copy", "g1-copy", "g2-copy", "g3-copy", "g4-copy", "s0", "s1"]  # of identical rows the smallest id
    assert (ok["dedup_canonical_id"] == ok["dedup_cluster"].map(kept.reset_index().set_index("dedup_cluster")["key"])).all()
    assert (work / "manifest.parquet").exists() and (work / "report.html").exists()

    # keep_only: the kept rows alone, written as deduplicated shards; the same rows again resume every stage
    only = dedup.ray.deduplicate(ds, image_column="jpg", id_column="key", output=work, keep_only=True, model="thumb", threshold=0.9)
    only.write_parquet(str(tmp_path / "deduplicated"))
    assert sorted(pq.read_table(str(tmp_path / "deduplicated")).column("key").to_pylist()) == sorted(kept.index)
    summary = dedup.Result.load(work).summary
    assert {"discover", "decode_embed", "store", "search"} <= set(summary["reused_stages"])
    assert len([p for p in (work / "input-shards").iterdir() if p.is_dir()]) == 1


def test_ids_must_be_unique_and_columns_must_exist(ray_local, tmp_path):
    img = encode(base_image(1))
    ds = ray_local.data.from_items([{"id": 1, "img": img}, {"id": 1, "img": img}])
    with pytest.raises(ValueError, match="unique"):
        dedup.ray.deduplicate(ds, image_column="img", id_column="id", output=tmp_path / "o", model="thumb")
    with pytest.raises(ValueError, match="image_column 'image' is not a column.*id, img"):
        dedup.ray.deduplicate(ds, image_column="image", id_column="id", output=tmp_path / "o", model="thumb")
    with pytest.raises(TypeError, match="'input_format'.*valid options"):
        dedup.ray.deduplicate(ds, image_column="img", id_column="id", output=tmp_path / "o", input_format="files")


def test_image_values_bytes_structs_and_pixel_arrays(tmp_path):
    jpg = encode(base_image(3))
    assert image_bytes(jpg) == (jpg, None) and image_bytes(memoryview(jpg)) == (jpg, None)
    assert image_bytes({"bytes": jpg, "path": "x.jpg"}) == (jpg, None)
    (tmp_path / "y.jpg").write_bytes(jpg)
    assert image_bytes({"bytes": None, "path": str(tmp_path / "y.jpg")}) == (jpg, None)
    arr = np.asarray(base_image(4))
    png, err = image_bytes(arr)
    assert err is None and np.array_equal(np.asarray(Image.open(io.BytesIO(png))), arr)  # lossless
    grey = (np.arange(64 * 48) % 65536).astype(np.uint16).reshape(48, 64)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(image_bytes(grey)[0]))), grey)
    assert image_bytes(None)[1] == "no image in the row (null)"
    assert "no image" in image_bytes(np.zeros((4, 4, 2), np.uint8))[1]
    assert "not encoded bytes" in image_bytes("a string")[1]


@pytest.mark.slow
def test_the_ray_data_form_gives_the_same_clusters_as_the_cli(ray_local, tmp_path):
    from dedup.cli import main

    root = tmp_path / "photos"
    make_corpus(root)
    cli_out = tmp_path / "cli"
    assert main(["run", "--input", str(root), "--output", str(cli_out), "--model", "thumb", "--threshold", "0.9"]) == 0
    cli = dedup.Result.load(cli_out)
    want = partition(cli.clusters["path"], cli.clusters["cluster"])
    sha = {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in cli.clusters["path"]}
    kept_content = {frozenset(g["path"]): sha[g.loc[g["kept"], "path"].iloc[0]] for _, g in cli.clusters.groupby("cluster")}
    assert len(want) == 7

    data = ray_local.data
    files = data.read_binary_files(str(root), include_paths=True)  # {bytes, path}: the files' own bytes
    structs = data.from_items([{"id": p, "image": {"bytes": open(p, "rb").read(), "path": os.path.basename(p)}}
                               for p in sorted(sha)])  # a Hugging Face style struct column
    pixels = data.read_images(str(root), include_paths=True, mode="RGB")  # decoded arrays: re-encoded as PNG
    for name, ds, image, key in (("files", files, "bytes", "path"), ("structs", structs, "image", "id"), ("pixels", pixels, "image", "path")):
        got = dedup.ray.deduplicate(ds, image_column=image, id_column=key, output=tmp_path / name, model="thumb", threshold=0.9)
        df = got.select_columns([key, "dedup_cluster", "dedup_keep", "dedup_error"]).to_pandas()
        ids = df[key].map(lambda p: p if p.startswith("/") else "/" + p)
        assert df["dedup_error"].isna().all(), name
        assert partition(ids, df["dedup_cluster"]) == want, name
        if name != "pixels":  # PNG re-encodes: the kept-image choice cannot see the files' format and quality
            kept = {frozenset(ids[df["dedup_cluster"] == c]): sha[i] for i, c in zip(ids[df["dedup_keep"]], df.loc[df["dedup_keep"], "dedup_cluster"])}
            assert kept == kept_content, name


def test_integer_ids_and_pixel_arrays_from_items(ray_local, tmp_path):
    """from_items rows with int ids and decoded arrays (as read_images gives): ids keep their type, a
    pixel array that is no image comes back with its reason, identical pixels are one content."""
    a, b = np.asarray(base_image(5)), np.asarray(base_image(6))
    items = [{"n": 30, "px": a}, {"n": 10, "px": a.copy()}, {"n": 20, "px": b}, {"n": 40, "px": np.zeros((8, 8, 2), np.uint8)}]
    ds = ray_local.data.from_items(items)
    got = dedup.ray.deduplicate(ds, image_column="px", id_column="n", output=tmp_path / "o", model="multihash", report=False)
    t = pa.concat_tables(ray_local.get(got.drop_columns(["px"]).to_arrow_refs()))
    assert t.schema.field("dedup_canonical_id").type == t.schema.field("n").type == pa.int64()
    df = t.to_pandas().set_index("n").sort_index()
    assert df["dedup_canonical_id"].tolist()[:3] == [10, 20, 10] and df["dedup_keep"].tolist() == [True, True, False, False]
    assert "pixel array of shape (8, 8, 2)" in df.loc[40, "dedup_error"]


@pytest.mark.slow
def test_the_example_job_reads_shards_from_a_uri_and_writes_the_deduplicated_shards(ray_local, tmp_path, capsys):
    """jobs/dedup_parquet.py (what README's `ray job submit` example runs), on file:// URIs here."""
    from jobs.dedup_parquet import main

    rows = [r for r in corpus_rows() if r[0].startswith(("g0", "g1", "s"))]
    src = tmp_path / "shards"
    src.mkdir()
    pq.write_table(pa.table({"key": [r[0] for r in rows], "jpg": pa.array([r[1] for r in rows], pa.binary()),
                             "caption": [r[2] for r in rows]}), src / "part-0.parquet")
    dst = tmp_path / "deduplicated"
    assert main(["--input", f"file://{src}", "--output", f"file://{dst}", "--image-column", "jpg", "--id-column", "key",
                 "--work", str(tmp_path / "work"), "--shards", f"file://{tmp_path / 'scratch'}", "--model", "thumb",
                 "--threshold", "0.9", "--set", "report=false"]) == 0
    got = pq.read_table(str(dst)).to_pandas()
    assert sorted(got["key"]) == ["g0-copy", "g1-copy", "s0", "s1"] and list(got.columns) == ["key", "jpg", "caption"]
    assert "10 images, 0 errors, 4 clusters, 6 duplicates; kept rows written" in capsys.readouterr().out
    assert not (tmp_path / "work" / "report.html").exists() and any((tmp_path / "scratch").iterdir())


def test_a_webdataset_read_without_decoding(ray_local, tmp_path):
    """read_webdataset(decoder=None): the members' bytes (a Python-object column), keyed by __key__."""
    import tarfile

    img = encode(base_image(1))
    with tarfile.open(tmp_path / "s-000.tar", "w") as tar:
        for name, data in [("a.jpg", img), ("a.json", b"{}"), ("b.jpg", img), ("c.jpg", encode(base_image(2))), ("d.jpg", b"nope")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ds = ray_local.data.read_webdataset(str(tmp_path / "s-000.tar"), decoder=None)
    got = dedup.ray.deduplicate(ds, image_column="jpg", id_column="__key__", output=tmp_path / "o", model="multihash", report=False)
    df = got.select_columns(["__key__", "dedup_keep", "dedup_canonical_id", "dedup_error"]).to_pandas().set_index("__key__").sort_index()
    assert df["dedup_keep"].tolist() == [True, False, True, False] and df["dedup_canonical_id"].tolist()[:3] == ["a", "a", "c"]
    assert df["dedup_error"].notna().tolist() == [False, False, False, True]
