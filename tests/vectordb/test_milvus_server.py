"""Against a real Milvus server: the PyPI package ``milvus`` (embedded Milvus 2.3 standalone) on loopback.

One server per module (it takes seconds to start). Skipped, with the reason, only when the package is not
installed or the server cannot start here. Covers: per-run collections and the no-clobber rule, batched
inserts, FLAT / IVF_FLAT / HNSW indexes, range search through the search stage, bulk import (and its
refusal on Milvus Lite, with the fallback to inserts), and the whole job with ``milvus_uri``.
"""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest

from dedup.vectordb.bulk import BulkImportUnavailable, BulkStaging, bulk_load
from dedup.vectordb.milvus import (
    CollectionInUseError,
    IndexChoice,
    MilvusTarget,
    build_index_and_load,
    choose_index,
    collection_owner,
    create_collection,
    drop_collection,
    run_collection_name,
)
from dedup.vectordb.embedded import EmbeddedMilvus
from dedup.vectordb.lite import MilvusLiteServer
from dedup.vectordb.searcher import Searcher
from dedup.vectordb.writer import MilvusWriter, store_vectors

pytestmark = [pytest.mark.milvus_server, pytest.mark.slow]  # a real server: seconds a test

DIM = 256
THRESHOLD = 0.9


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    milvus = pytest.importorskip("milvus", reason="the PyPI package `milvus` (embedded Milvus server) is not installed")
    if not hasattr(milvus, "MilvusServer"):
        pytest.skip("the installed `milvus` package has no embedded MilvusServer")
    server = EmbeddedMilvus(tmp_path_factory.mktemp("milvus-server"))
    try:
        server.start()
    except Exception as e:  # noqa: BLE001 - any start failure: skip, with the reason and the server's log
        server.stop()
        pytest.skip(f"embedded Milvus server could not start here: {e}\n{server.log_tail()}")
    yield server
    server.stop()


@pytest.fixture
def target(milvus_server) -> MilvusTarget:
    return MilvusTarget(milvus_server.uri)


def planted_vectors(n_random: int = 3000, seed: int = 7):
    """Random unit vectors plus planted copies: returns (table, pairs at >= THRESHOLD).

    Every 3rd anchor gets two copies (a triangle of pairs), the others one; each copy is the anchor plus
    noise, at cosine 0.93 to 0.99 to it. Some anchors also get a near miss at cosine ~0.8 that must not pair.
    """
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n_random, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    extra = []
    for k, anchor in enumerate(range(0, min(600, n_random), 15)):
        for sim in ([0.99, 0.95] if k % 3 == 0 else [0.93 + 0.06 * rng.random()]) + ([0.8] if k % 4 == 0 else []):
            noise = rng.normal(size=DIM).astype(np.float32)
            noise -= noise @ v[anchor] * v[anchor]
            noise /= np.linalg.norm(noise)
            extra.append(sim * v[anchor] + np.sqrt(1 - sim**2) * noise)
    allv = np.concatenate([v, np.asarray(extra, np.float32)])
    allv /= np.linalg.norm(allv, axis=1, keepdims=True)
    sims = allv @ allv.T
    a, b = np.nonzero(np.triu(sims >= THRESHOLD, k=1))
    table = pa.table({
        "vid": pa.array(np.arange(len(allv)), pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(allv.ravel(), pa.float32()), DIM),
    })
    return table, set(zip(a.tolist(), b.tolist()))


def found_pairs(target: MilvusTarget, name: str, table: pa.Table, index: str) -> set[tuple[int, int]]:
    searcher = Searcher(target, name, threshold=THRESHOLD, limit=16, batch=64, index=index, max_limit=256, range_search=True)
    out = searcher(table)
    assert (out["b"] != -1).all(), "no query may saturate here"
    real = out["b"] >= 0
    return set(zip(out["a"][real].tolist(), out["b"][real].tolist()))


def count_rows(target: MilvusTarget, name: str) -> int:
    client = target.client()
    try:
        return int(client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"])
    finally:
        client.close()


def test_server_runs_a_full_milvus(target):
    client = target.client()
    try:
        version = client.get_server_version()
    finally:
        client.close()
    assert version.startswith("v2.") and not version.startswith("milvus_lite")


def test_run_collection_names():
    a = run_collection_name("/data/out-a")
    assert a == run_collection_name("/data/out-a/") and a.startswith("dedup_")
    assert a != run_collection_name("/data/out-b")
    assert run_collection_name("/x", "my_run_1") == "my_run_1"
    with pytest.raises(ValueError):
        run_collection_name("/x", "1-bad name")


def test_choose_index_rule():
    assert choose_index(99_999).index_type == "FLAT"
    hnsw = choose_index(100_000, limit=512)
    assert hnsw.index_type == "HNSW" and hnsw.search_params["ef"] == 512
    assert hnsw.search_params_for(16384)["ef"] == 16384  # HNSW needs ef >= top-k
    ivf = choose_index(10_000_000)
    assert ivf.index_type == "IVF_FLAT" and ivf.build_params["nlist"] == 12649
    assert ivf.search_params["nprobe"] == 12649 // 16
    assert choose_index(10, "HNSW").index_type == "HNSW"  # an explicit choice is kept
    assert choose_index(10, "IVF_FLAT").build_params == {"nlist": 16}
    with pytest.raises(ValueError):
        choose_index(10, "IVF_PQ")


def test_collections_are_not_clobbered(target, tmp_path):
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    name = run_collection_name(run_a)
    table, _ = planted_vectors(50)
    create_collection(target, name, DIM, owner=run_a)
    assert collection_owner(target, name) == str(run_a.resolve())
    MilvusWriter(target, name)(table)
    # Another run must not drop it ...
    with pytest.raises(CollectionInUseError, match="--replace-collection"):
        create_collection(target, name, DIM, owner=run_b)
    assert drop_collection(target, name, owner=run_b) is False
    build_index_and_load(target, name, "FLAT")
    assert count_rows(target, name) == table.num_rows
    # ... the same run may (a re-run), and so may anyone who asks for it.
    create_collection(target, name, DIM, owner=run_a)
    create_collection(target, name, DIM, owner=run_b, replace=True)
    assert collection_owner(target, name) == str(run_b.resolve())
    assert drop_collection(target, name, owner=run_b) is True
    assert collection_owner(target, name) is None

    # A collection dedup did not make is never taken over without replace.
    client = target.client()
    try:
        client.create_collection("not_ours", dimension=8)
    finally:
        client.close()
    with pytest.raises(CollectionInUseError, match="something else"):
        create_collection(target, "not_ours", DIM, owner=run_a)
    assert collection_owner(target, "not_ours") == ""
    drop_collection(target, "not_ours")


@pytest.mark.parametrize("index", ["FLAT", "IVF_FLAT", "HNSW"])
def test_insert_index_range_search(target, tmp_path, index):
    table, planted = planted_vectors()
    name = f"planted_{index.lower()}"
    create_collection(target, name, DIM, owner=tmp_path)
    writer = MilvusWriter(target, name)
    inserted = sum(int(writer(table.slice(i, 1000))["inserted"][0]) for i in range(0, table.num_rows, 1000))
    assert inserted == table.num_rows
    choice = build_index_and_load(target, name, index)
    assert choice.index_type == index
    client = target.client()
    try:
        desc = client.describe_index(name, client.list_indexes(name)[0])
    finally:
        client.close()
    assert desc["index_type"] == index and int(desc["indexed_rows"]) == table.num_rows
    assert count_rows(target, name) == table.num_rows
    assert len(planted) == 40 + 14 * 2  # one pair per anchor, three per triangle
    assert found_pairs(target, name, table, index) == planted
    assert drop_collection(target, name)


def test_bulk_import(target, tmp_path):
    table, planted = planted_vectors(seed=11)
    name = "bulk_planted"
    create_collection(target, name, DIM, owner=tmp_path)
    staging = BulkStaging(local_dir=str(tmp_path / "staging"))
    lines = []
    rows = bulk_load(target, name, [table.slice(0, 2000), table.slice(2000)], DIM, staging, timeout=300, progress=lines.append)
    assert rows == table.num_rows
    assert any("2/2 shards done, 100%" in line for line in lines), lines
    assert not list((tmp_path / "staging").rglob("*.parquet"))  # shards removed after the import
    assert build_index_and_load(target, name, "AUTO").index_type == "FLAT"
    assert count_rows(target, name) == table.num_rows
    assert found_pairs(target, name, table, "FLAT") == planted
    drop_collection(target, name)


def test_bulk_import_of_files_the_server_cannot_read_is_unavailable(target, tmp_path):
    name = "bulk_unreadable"
    create_collection(target, name, DIM, owner=tmp_path)
    # The server is told the shards are under a folder that does not exist on its side.
    staging = BulkStaging(local_dir=str(tmp_path / "staging"), server_dir=str(tmp_path / "not-there"))
    table, _ = planted_vectors(100)
    with pytest.raises(BulkImportUnavailable, match="cannot read the staged shards"):
        bulk_load(target, name, [table], DIM, staging, timeout=120, progress=lambda s: None)
    drop_collection(target, name)


def test_store_uses_bulk_import_on_a_server(ray_local, target, tmp_path):
    table, planted = planted_vectors(seed=5)
    name = "store_auto"
    create_collection(target, name, DIM, owner=tmp_path)
    ds = ray_local.data.from_arrow(table).repartition(3)
    res = store_vectors(ds, target, name, DIM, method="auto", staging=BulkStaging(local_dir=str(tmp_path / "st")),
                        shard_rows=1500, owner=tmp_path)
    assert (res.method, res.rows, res.fallback_reason) == ("bulk", table.num_rows, None)
    build_index_and_load(target, name, IndexChoice("HNSW", {"M": 16, "efConstruction": 200}, {"ef": 64}))
    assert count_rows(target, name) == table.num_rows
    assert found_pairs(target, name, table, "HNSW") == planted
    drop_collection(target, name)


def test_store_falls_back_to_inserts_on_milvus_lite(ray_local, tmp_path):
    table, planted = planted_vectors(500, seed=3)
    with MilvusLiteServer(str(tmp_path / "lite"), str(tmp_path / "lite.log")) as lite:
        lite_target = MilvusTarget(lite.uri)
        staging = BulkStaging(local_dir=str(tmp_path / "st"))
        with pytest.raises(BulkImportUnavailable, match="Milvus Lite"):
            bulk_load(lite_target, "c", [table], DIM, staging)
        create_collection(lite_target, "c", DIM, owner=tmp_path)
        ds = ray_local.data.from_arrow(table).repartition(2)
        res = store_vectors(ds, lite_target, "c", DIM, method="auto", staging=staging, insert_batch=400, owner=tmp_path)
        assert res.method == "insert" and res.rows == table.num_rows and "Milvus Lite" in res.fallback_reason
        assert not (tmp_path / "st").exists() or not list((tmp_path / "st").rglob("*.parquet"))  # nothing staged
        build_index_and_load(lite_target, "c", "FLAT")
        assert found_pairs_topk(lite_target, "c", table) == planted
        with pytest.raises(BulkImportUnavailable):
            store_vectors(ds, lite_target, "c", DIM, method="bulk", staging=staging)


def found_pairs_topk(target: MilvusTarget, name: str, table: pa.Table) -> set[tuple[int, int]]:
    out = Searcher(target, name, threshold=THRESHOLD, limit=16, batch=64, range_search=False)(table)
    real = out["b"] >= 0
    return set(zip(out["a"][real].tolist(), out["b"][real].tolist()))


def test_job_against_the_server(ray_local, milvus_server, tmp_path):
    from dedup.config import DedupConfig
    from dedup import run
    from dedup.synth import make_corpus

    root = tmp_path / "corpus"
    truth = make_corpus(root)
    out = tmp_path / "out"
    summary = run(DedupConfig(inputs=[str(root)], output=str(out), model="thumb", threshold=0.9, milvus_uri=milvus_server.uri))
    c = summary["counts"]
    assert c["images"] == 22 and c["errors"] == 0
    assert c["clusters"] == 7 and c["duplicates"] == 15 and c["exact_duplicates"] == 5
    import pandas as pd

    man = pd.read_parquet(out / "manifest.parquet")
    man["group"] = man["path"].map(lambda p: truth[os.path.relpath(p, root)])
    assert (man.groupby("cluster_id")["group"].nunique() == 1).all()
    assert (man.groupby("group")["cluster_id"].nunique() == 1).all()
    assert not (out / "milvus").exists()  # no Milvus Lite was started: the server took the vectors
    name = run_collection_name(out)
    assert collection_owner(MilvusTarget(milvus_server.uri), name) is not None
    drop_collection(MilvusTarget(milvus_server.uri), name)


def hash_vectors(n: int = 300, bits: int = 256, seed: int = 3):
    """Random hash bits plus copies with 0 to 60 bits flipped, as the job stores them: +1/-1 scaled to unit
    length, in a (vid, embedding) table."""
    rng = np.random.default_rng(seed)
    base = rng.random((n, bits)) > 0.5
    copies = base[::5].copy()
    for i, row in enumerate(copies):
        row[rng.choice(bits, size=(i * 7) % 61, replace=False)] ^= True
    allbits = np.concatenate([base, copies])
    vecs = np.where(allbits, 1.0, -1.0).astype(np.float32) / np.sqrt(bits)
    table = pa.table({
        "vid": pa.array(np.arange(len(vecs)), pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel(), pa.float32()), bits),
    })
    return table, vecs


def test_choose_index_for_binary_vectors():
    assert choose_index(99_999, binary=True).index_type == "BIN_FLAT"
    ivf = choose_index(1_000_000, binary=True)
    assert ivf.index_type == "BIN_IVF_FLAT" and ivf.build_params["nlist"] == 4000
    assert choose_index(10, "HNSW", binary=True).index_type == "BIN_IVF_FLAT"  # no binary HNSW here
    assert choose_index(10, "FLAT", binary=True).index_type == "BIN_FLAT"


@pytest.mark.parametrize("index", ["FLAT", "IVF_FLAT"])
def test_hash_bits_as_binary_vectors(ray_local, target, tmp_path, index):
    """On a server the hash bits go in as BINARY_VECTOR and are searched by Hamming distance: exactly the
    pairs within --max-bits come back, each with the cosine its +1/-1 vectors have (what Milvus Lite's float
    hash vectors give), through the store's inserts and the search stage's range search."""
    from dedup.ops.hashes import bits_to_cosine, search_cosine

    table, vecs = hash_vectors()
    bits, max_bits = vecs.shape[1], 40
    name = f"hash_binary_{index.lower()}"
    create_collection(target, name, bits, replace=True, owner=tmp_path, binary=True)
    res = store_vectors(ray_local.data.from_arrow(table).repartition(2), target, name, bits, method="auto", owner=tmp_path, binary=True)
    assert res.rows == table.num_rows and res.method == "insert"
    choice = build_index_and_load(target, name, index, binary=True)
    assert choice.index_type == "BIN_" + index
    assert count_rows(target, name) == table.num_rows
    threshold = search_cosine(max_bits, bits)
    out = Searcher(target, name, threshold=threshold, limit=16, batch=64, index=choice.index_type,
                   index_params=choice.search_params, range_search=True, binary=True)(table)
    assert (out["b"] != -1).all()
    real = out["b"] >= 0
    got = {(int(a), int(b)): float(s) for a, b, s in zip(out["a"][real], out["b"][real], out["sim"][real])}
    sims = vecs @ vecs.T
    ea, eb = np.nonzero(np.triu(sims >= threshold, k=1))
    assert set(got) == set(zip(ea.tolist(), eb.tolist())) and len(got) > 30
    for (a, b), s in got.items():
        h = int(np.count_nonzero((vecs[a] > 0) != (vecs[b] > 0)))
        assert h <= max_bits and s == pytest.approx(bits_to_cosine(h, bits), abs=1e-6)
    drop_collection(target, name)


def test_hash_job_on_a_server_stores_binary_vectors(ray_local, milvus_server, tmp_path):
    """--model multihash with --milvus-uri: BINARY_VECTOR by default (--hash-vectors auto), searched in
    Milvus, and the same clusters as the float vectors searched exactly."""
    import pandas as pd

    from dedup.config import DedupConfig
    from dedup import run
    from dedup.synth import make_corpus

    root = tmp_path / "corpus"
    make_corpus(root)
    runs = {}
    for mode, extra in (("binary", {"milvus_uri": milvus_server.uri, "search_engine": "milvus"}),
                        ("float", {"search_engine": "exact"})):
        out = tmp_path / mode
        summary = run(DedupConfig(inputs=[str(root)], output=str(out), model="multihash", report=False, **extra))
        runs[mode] = pd.read_parquet(out / "manifest.parquet").set_index("path")
        if mode == "binary":
            assert summary["stages"]["store"]["vector_type"] == "BINARY_VECTOR (HAMMING)"
            assert summary["stages"]["store"]["index"]["type"] == "BIN_FLAT"
            drop_collection(MilvusTarget(milvus_server.uri), run_collection_name(out))
    a, b = runs["binary"], runs["float"].loc[runs["binary"].index]
    assert (a["canonical_path"] == b["canonical_path"]).all()
    assert np.allclose(a["similarity_to_canonical"], b["similarity_to_canonical"], atol=1e-5)
