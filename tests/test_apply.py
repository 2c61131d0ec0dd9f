"""dedup apply: real job runs on images made here, then the keep set written to local and fsspec targets."""
import argparse
import hashlib
import io
import json
import os
import tarfile
import uuid
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedup.apply import LOG_NAME, ApplyError, add_parser, execute, make_plan, sample_key
from dedup.config import DedupConfig
from dedup import run
from dedup.synth import base_image, encode, make_corpus, write


def snapshot(root: Path) -> dict:
    return {
        str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns, p.stat().st_ino)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dedup")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["apply", *argv])
    return args.func(args)


def run_job(inputs: list[str], out: Path) -> None:
    run(DedupConfig(inputs=inputs, output=str(out), model="thumb", threshold=0.9))


def make_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def job(ray_local, tmp_path_factory):
    """One run over two sources: a folder of plain images and a folder with a Parquet and a tar shard."""
    root = tmp_path_factory.mktemp("apply")
    corpus, shards, out = root / "corpus", root / "shards", root / "out"
    make_corpus(corpus, groups=3)
    a = encode(base_image(500))
    rows = [a, a, encode(base_image(501)), encode(base_image(502), "PNG")]
    shards.mkdir()
    pq.write_table(pa.table({"label": [10, 11, 12, 13], "jpg": rows}), shards / "s.parquet", row_group_size=2)
    t = encode(base_image(600))
    make_tar(shards / "sub" / "w.tar", [
        ("k0.jpg", t), ("k0.json", b'{"i": 0}'), ("k0.cls", b"3"),
        ("k1.jpg", t), ("k1.json", b'{"i": 1}'),  # byte copy of k0: removed, with its json
        ("k2.png", encode(base_image(601), "PNG")), ("k2.json", b'{"i": 2}'),
    ])
    run_job([str(corpus), str(shards)], out)
    man = pq.read_table(out / "manifest.parquet").to_pandas()
    return {"root": root, "corpus": corpus, "shards": shards, "out": out, "man": man}


def expected_files(job) -> dict[str, Path]:
    """Destination name -> source file, for the kept plain files (relative to their source)."""
    keep = job["man"][job["man"]["is_canonical"]]["path"]
    return {os.path.relpath(p, job["corpus"]): Path(p) for p in keep if "#" not in p}


def kept_members(job, shard: str) -> list[str]:
    keep = job["man"][job["man"]["is_canonical"]]["path"]
    prefix = str(job["shards"] / shard) + "#"
    return sorted(p[len(prefix):] for p in keep if p.startswith(prefix))


def check_shards(job, dest_read) -> None:
    """The Parquet and tar shards at the destination hold exactly the kept rows / samples."""
    rows = sorted(int(m.removeprefix("row=")) for m in kept_members(job, "s.parquet"))
    assert 1 not in rows and 0 in rows  # row 1 is a byte copy of row 0
    src = pq.read_table(job["shards"] / "s.parquet")
    got = pq.read_table(io.BytesIO(dest_read("s.parquet")))
    assert got.schema.equals(src.schema, check_metadata=True)
    assert got.to_pylist() == src.take(rows).to_pylist()

    keys = {sample_key(m) for m in kept_members(job, "sub/w.tar")}
    assert keys == {"k0", "k2"}
    with tarfile.open(fileobj=io.BytesIO(dest_read("sub/w.tar"))) as tar:
        names = tar.getnames()
        assert names == ["k0.jpg", "k0.json", "k0.cls", "k2.png", "k2.json"]
        assert tar.extractfile("k0.json").read() == b'{"i": 0}'
        assert tar.getmember("k0.jpg").mtime == 1_700_000_000


def test_dry_run_writes_nothing(job, tmp_path, capsys):
    dest = tmp_path / "clean"
    assert cli(str(job["out"]), "--to", str(dest)) == 0
    assert not dest.exists()
    printed = capsys.readouterr().out
    assert "DRY RUN" in printed and f"{len(expected_files(job))} to copy" in printed and "1 Parquet, 1 tar" in printed
    plan = make_plan(job["out"], str(dest))
    assert {a.status for a in plan.actions} == {"write"} and not dest.exists()
    assert plan.n_kept == int(job["man"]["is_canonical"].sum())


def test_execute_to_local_folder_then_rerun_is_idempotent(job, tmp_path):
    before = snapshot(job["root"])
    dest = tmp_path / "clean"
    assert cli(str(job["out"]), "--to", str(dest), "--execute") == 0
    files = expected_files(job)
    assert tree(dest) == set(files) | {"s.parquet", "sub/w.tar", LOG_NAME}
    assert {"a/g0.jpg", "solo/s0.jpg", "solo/s1.jpg"} <= set(files) and "b/nested/g0_copy.jpg" not in files
    for rel, src in files.items():
        assert (dest / rel).read_bytes() == src.read_bytes()
        assert (dest / rel).stat().st_ino != src.stat().st_ino  # a copy by default, not a link
    check_shards(job, lambda rel: (dest / rel).read_bytes())
    assert snapshot(job["root"]) == before  # sources and output untouched

    written = snapshot(dest)
    plan = make_plan(job["out"], str(dest))
    assert {a.status for a in plan.actions} == {"skip"}
    result = execute(plan)
    assert result.written == [] and len(result.skipped) == len(plan.actions)
    log = json.loads((dest / LOG_NAME).read_text())
    assert [r["written"] for r in log["runs"]] == [len(plan.actions), 0]
    assert set(log["files"]) == tree(dest) - {LOG_NAME}
    assert {k: v for k, v in snapshot(dest).items() if not k.endswith(LOG_NAME)} == {
        k: v for k, v in written.items() if not k.endswith(LOG_NAME)
    }


def test_existing_copies_without_log_are_recognised(job, tmp_path):
    dest = tmp_path / "clean"
    execute(make_plan(job["out"], str(dest)))
    (dest / LOG_NAME).unlink()  # no record: the content itself is compared
    assert {a.status for a in make_plan(job["out"], str(dest)).actions} == {"skip"}


def test_execute_to_memory_filesystem(job):
    dest = f"memory://apply-{uuid.uuid4().hex}/clean"
    plan = make_plan(job["out"], dest)
    execute(plan)
    fs = fsspec.filesystem("memory")

    def read(rel: str) -> bytes:
        with fs.open(f"{dest}/{rel}", "rb") as f:
            return f.read()

    for rel, src in expected_files(job).items():
        assert read(rel) == src.read_bytes()
    check_shards(job, read)
    assert json.loads(read(LOG_NAME))["runs"][0]["written"] == len(plan.actions)
    assert {a.status for a in make_plan(job["out"], dest).actions} == {"skip"}


def test_link_makes_hard_links_for_plain_files(job, tmp_path):
    dest = tmp_path / "linked"
    assert cli(str(job["out"]), "--to", str(dest), "--execute", "--link") == 0
    for rel, src in expected_files(job).items():
        assert os.path.samefile(dest / rel, src)
    check_shards(job, lambda rel: (dest / rel).read_bytes())
    assert {a.status for a in make_plan(job["out"], str(dest), link=True).actions} == {"skip"}


def test_conflicting_destination_is_refused_unless_overwrite(job, tmp_path, capsys):
    dest = tmp_path / "clean"
    write(dest / "a" / "g0.jpg", b"something else")
    write(dest / "s.parquet", b"not the shard")
    assert cli(str(job["out"]), "--to", str(dest), "--execute") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert tree(dest) == {"a/g0.jpg", "s.parquet"}  # refused before writing anything
    plan = make_plan(job["out"], str(dest))
    assert sorted(a.rel for a in plan.conflicts) == ["a/g0.jpg", "s.parquet"]
    assert cli(str(job["out"]), "--to", str(dest), "--execute", "--overwrite") == 0
    assert (dest / "a" / "g0.jpg").read_bytes() == (job["corpus"] / "a" / "g0.jpg").read_bytes()
    check_shards(job, lambda rel: (dest / rel).read_bytes())


def test_refuses_to_write_into_an_input_or_the_output(job, capsys):
    before = snapshot(job["root"])
    for dest in (job["corpus"], job["corpus"] / "clean", job["shards"] / "sub", job["out"] / "clean"):
        assert cli(str(job["out"]), "--to", str(dest), "--execute") == 2
        assert "refusing to write into" in capsys.readouterr().err
    assert cli(str(job["out"]), "--to", f"file://{job['corpus']}/x", "--execute") == 2
    assert snapshot(job["root"]) == before
    with pytest.raises(ApplyError, match="not a finished dedup output"):
        make_plan(job["corpus"], "memory://never")


@pytest.fixture(scope="module")
def clash(ray_local, tmp_path_factory):
    """Two sources with the same relative names, given as relative paths from another folder."""
    root = tmp_path_factory.mktemp("clash")
    write(root / "c" / "x" / "p.jpg", encode(base_image(700)))
    write(root / "c" / "y" / "p.jpg", encode(base_image(701)))
    write(root / "c" / "y" / "q.jpg", encode(base_image(702)))
    here = os.getcwd()
    os.chdir(root)
    try:
        run_job(["c/x", "c/y"], root / "out")
    finally:
        os.chdir(here)
    return root


def test_colliding_sources_get_a_folder_each_and_relative_sources_resolve(clash, tmp_path, monkeypatch):
    dest = tmp_path / "clean"
    plan = make_plan(clash / "out", str(dest))  # started from the repo, not where the job ran
    assert plan.prefixed and sorted(a.rel for a in plan.actions) == ["x/p.jpg", "y/p.jpg", "y/q.jpg"]
    monkeypatch.chdir(clash)
    assert sorted(a.rel for a in make_plan("out", str(dest)).actions) == ["x/p.jpg", "y/p.jpg", "y/q.jpg"]
    execute(plan)
    assert (dest / "x" / "p.jpg").read_bytes() == (clash / "c" / "x" / "p.jpg").read_bytes()
    # DEST outside the inputs, but x/p.jpg would land in the source c/x: refused
    with pytest.raises(ApplyError, match="would land in") as e:
        make_plan(clash / "out", str(clash / "c"))
    assert e.value.code == 2


def test_a_source_changed_since_the_run_is_not_published(clash, tmp_path, capsys):
    src = clash / "c" / "y" / "q.jpg"
    original = src.read_bytes()
    try:
        src.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        dest = tmp_path / "clean"
        assert cli(str(clash / "out"), "--to", str(dest), "--execute") == 1
        assert "changed since the dedup run" in capsys.readouterr().err
        assert tree(dest) == {"x/p.jpg", "y/p.jpg", LOG_NAME}
    finally:
        src.write_bytes(original)


def test_sample_key():
    assert sample_key("a/b/k1.seg.png") == "a/b/k1" and sample_key("k2.json") == "k2" and sample_key("k3") == "k3"
