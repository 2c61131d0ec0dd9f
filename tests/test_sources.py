"""Discovery and readers: local folders, fsspec URIs, Parquet and tar shards; failures become error items."""
import io
import tarfile

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from dedup.sources import discover, read_unit
from dedup.ops.hashing import hash_units
from dedup.synth import base_image, encode, write


def test_discover_is_recursive_sorted_and_reports_missing_sources(tmp_path):
    write(tmp_path / "b" / "deep" / "x.jpg", b"1")
    write(tmp_path / "a.png", b"2")
    write(tmp_path / "s" / "part.parquet", b"3")
    write(tmp_path / "s" / "shard.tar", b"4")
    units = discover([str(tmp_path), str(tmp_path / "missing")])
    assert [(u.kind, u.path.replace(str(tmp_path), "")) for u in units] == [
        ("file", "/a.png"),
        ("file", "/b/deep/x.jpg"),
        ("parquet", "/s/part.parquet"),
        ("webdataset", "/s/shard.tar"),
        ("missing", str(tmp_path / "missing").replace(str(tmp_path), "")),
    ]


def test_same_file_through_two_sources_is_one_input_and_output_is_excluded(tmp_path):
    write(tmp_path / "in" / "x.jpg", b"1")
    write(tmp_path / "in" / "out" / "manifest.csv", b"path")
    units = discover([str(tmp_path / "in"), str(tmp_path / "in" / "x.jpg")], exclude=[str(tmp_path / "in" / "out")])
    assert [u.path for u in units] == [str(tmp_path / "in" / "x.jpg")]


def test_fsspec_uris_memory_and_file(tmp_path):
    data = encode(base_image(1))
    with fsspec.open("memory://bucket/imgs/a.jpg", "wb") as f:
        f.write(data)
    units = discover(["memory://bucket/imgs"])
    (unit,) = units
    assert unit.path.startswith("memory://") and unit.path.endswith("bucket/imgs/a.jpg")  # fsspec's full URI
    assert list(read_unit("file", unit.path)) == [(unit.path, data, None)]
    write(tmp_path / "f.jpg", data)
    assert [u.path for u in discover([f"file://{tmp_path}"])] == [str(tmp_path / "f.jpg")]


def test_hashing_marks_empty_and_unreadable(tmp_path):
    write(tmp_path / "empty.jpg", b"")
    write(tmp_path / "ok.jpg", b"abc")
    batch = {
        "kind": ["file", "file", "file"],
        "unit": [str(tmp_path / "empty.jpg"), str(tmp_path / "ok.jpg"), str(tmp_path / "gone.jpg")],
        "source": ["s"] * 3,
    }
    t = hash_units(batch).to_pylist()
    assert t[0]["error"] == "empty file (0 bytes)" and t[0]["sha"] is None
    assert t[1]["sha"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" and t[1]["bytes"] == 3
    assert "not found" in t[2]["error"]


def test_parquet_reader_rows_and_hf_struct_column(tmp_path):
    p = tmp_path / "hf.parquet"
    col = pa.array([{"bytes": b"img0", "path": "a"}, {"bytes": b"img1", "path": "b"}])
    pq.write_table(pa.table({"label": [1, 2], "image": col}), p, row_group_size=1)
    assert list(read_unit("parquet", str(p))) == [(f"{p}#row=0", b"img0", None), (f"{p}#row=1", b"img1", None)]
    assert list(read_unit("parquet", str(p), members={"row=1"})) == [(f"{p}#row=1", b"img1", None)]


def test_corrupt_shards_become_errors(tmp_path):
    bad_tar = write(tmp_path / "bad.tar", b"\x00garbage" * 10)
    bad_pq = write(tmp_path / "bad.parquet", b"PAR1 not really")
    (t,) = list(read_unit("webdataset", str(bad_tar)))
    assert t[1] is None and t[2]
    (p,) = list(read_unit("parquet", str(bad_pq)))
    assert p[1] is None and p[2]


def test_tar_reader_keeps_images_only(tmp_path):
    path = tmp_path / "s.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in [("k1.jpg", b"j"), ("k1.json", b"{}"), ("k2.webp", b"w")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert [(i, d) for i, d, _ in read_unit("webdataset", str(path))] == [(f"{path}#k1.jpg", b"j"), (f"{path}#k2.webp", b"w")]


def test_find_inputs_skips_what_is_no_image_and_says_why(tmp_path):
    from dedup.sources import find_inputs, image_extensions

    assert {".jpg", ".jpeg", ".png", ".webp", ".tif", ".gif", ".bmp", ".heic", ".avif"} <= image_extensions()
    assert not {".txt", ".json", ".pdf", ".h5", ".parquet"} & image_extensions()
    for name in ("a.jpg", "B.PNG", "noext", "s.parquet", "w.tar", "x.txt", "y.json", "z/notes.md", ".hidden.jpg",
                 ".git/objects/ab", "tmp/t.jpg", "old/state.json", "old/summary.json", "old/o.jpg"):
        write(tmp_path / name, b"1")
    write(tmp_path / "other" / "state.json", b'{"not": "ours"}')  # another tool's state.json
    write(tmp_path / "other" / "i.jpg", b"1")
    write(tmp_path / "partial" / "state.json", b'{"weights": {"fingerprint": "abc"}}')  # an interrupted run
    write(tmp_path / "partial" / "p.jpg", b"1")
    found = find_inputs([str(tmp_path)], exclude=["tmp/*"])
    rel = lambda p: p.replace(str(tmp_path) + "/", "")  # noqa: E731
    assert [rel(u.path) for u in found.units] == ["B.PNG", "a.jpg", "noext", "other/i.jpg", "s.parquet", "w.tar"]
    reasons = {rel(p): r for p, r in found.skipped}
    assert reasons == {"x.txt": "not_image", "y.json": "not_image", "z/notes.md": "not_image", "other/state.json": "not_image",
                       ".hidden.jpg": "hidden", ".git/objects/ab": "hidden", "tmp/t.jpg": "excluded",
                       "old/state.json": "earlier_output", "old/summary.json": "earlier_output", "old/o.jpg": "earlier_output",
                       "partial/state.json": "earlier_output", "partial/p.jpg": "earlier_output"}
    s = found.skipped_summary()
    assert s["files"] == 12 and s["by_reason"]["earlier_output"] == 5 and s["by_extension"][".json"] == 5
    # --include: a whitelist (on the relative path or the name); --input-format files: no extension filter
    assert [rel(u.path) for u in find_inputs([str(tmp_path)], include=["*.jpg", "z/*"]).units] == ["a.jpg", "other/i.jpg", "tmp/t.jpg"]
    files = [rel(u.path) for u in find_inputs([str(tmp_path)], "files").units]
    assert "x.txt" in files and "old/o.jpg" not in files and ".hidden.jpg" not in files
    # a file named as an input is always read
    assert [rel(u.path) for u in find_inputs([str(tmp_path / "x.txt")]).units] == ["x.txt"]
