"""``python -m bench --reference-scale N``: a new batch deduplicated against a reference of N vectors, timed.

The reference is a real run (SSCD) over ``photos`` distinct photos, stored on the embedded Milvus server
(PyPI ``milvus``), then grown to N vectors with random unit vectors (added to its ``vectors/`` Parquet, its
``files.parquet`` and its collection): random 512-d vectors are far from every photo (cosine about
+-0.13), so they cost search time and match nothing, as most of a large reference does. The new batch
holds edited copies of some reference photos and as many photos the reference does not hold. The new run
is timed twice, searching the reference's collection on the server and its Parquet vectors exactly, and
each is checked: every copy found, no other image matched, the reference folder unchanged.
Writes ``RESULTS/reference-scale.md`` and ``.json``.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageEnhance

from dedup.layout import OutputLayout


def _snapshot(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and "milvus" not in p.parts[len(folder.parts):][:1]:
            h.update(str(p.relative_to(folder)).encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _grow(ref: OutputLayout, target, collection: str, n_total: int, dim: int = 512, seed: int = 0) -> int:
    """Random unit vectors after the reference's own, in its Parquet vectors, files table and collection."""
    from pymilvus import MilvusClient

    from dedup.vectordb.milvus import ID_FIELD, VECTOR_FIELD

    files = pq.read_table(ref.files).to_pandas()
    start = int(files["vid"].max()) + 1
    extra = n_total - start
    rng = np.random.default_rng(seed)
    client = MilvusClient(uri=target)
    for lo in range(0, extra, 50_000):
        k = min(50_000, extra - lo)
        vecs = rng.normal(size=(k, dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        vids = np.arange(start + lo, start + lo + k, dtype=np.int64)
        pq.write_table(pa.table({"vid": vids, "width": np.full(k, 500), "height": np.full(k, 375), "mode": ["RGB"] * k,
                                 "format": ["JPEG"] * k, "error": pa.nulls(k, pa.string()), "decode_s": np.zeros(k), "embed_s": np.zeros(k),
                                 "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), dim)}),
                       ref.vectors / f"synthetic-{lo:08d}.parquet")
        for i in range(0, k, 5000):
            client.insert(collection, [{ID_FIELD: int(v), VECTOR_FIELD: vecs[j].tolist()} for j, v in enumerate(vids[i:i + 5000], start=i)])
    client.flush(collection)
    fake = pd.DataFrame({"path": [f"/synthetic/{v:08d}.jpg" for v in range(start, n_total)], "source": "/synthetic", "kind": "file",
                         "unit": [f"/synthetic/{v:08d}.jpg" for v in range(start, n_total)], "bytes": 100_000,
                         "sha": [hashlib.sha256(str(v).encode()).hexdigest() for v in range(start, n_total)], "error": None,
                         "vid": pd.array(np.arange(start, n_total), dtype="Int64")})
    pq.write_table(pa.Table.from_pandas(pd.concat([files, fake], ignore_index=True), preserve_index=False), ref.files)
    client.close()
    return extra


def _new_batch(photos: list[Path], copies: list[Path], out: Path) -> dict[str, str]:
    """Edited copies of reference photos (-> their reference path) and photos the reference lacks."""
    out.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i, p in enumerate(copies):
        img = Image.open(p).convert("RGB")
        edited = ImageEnhance.Brightness(img.resize((img.width * 3 // 4, img.height * 3 // 4))).enhance(1.15)
        dest = out / f"copy-{i:04d}.jpg"
        edited.save(dest, quality=75)
        truth[str(dest)] = str(p.resolve())
    for i, p in enumerate(photos):
        dest = out / f"new-{i:04d}{p.suffix}"
        shutil.copyfile(p, dest)
        truth[str(dest)] = ""
    return truth


def reference_scale_bench(src: Path, work: Path, results: Path, n: int = 100_000, ref_photos: int = 500, copies: int = 100,
                          new_photos: int = 400) -> dict:
    import ray

    from dedup import run
    from dedup.config import DedupConfig
    from dedup.ray_env import init_ray
    from dedup.vectordb.embedded import EmbeddedMilvus

    photos = sorted(p for p in Path(src).iterdir() if p.is_file())
    assert len(photos) >= ref_photos + new_photos, "not enough photos"
    work = work.resolve() / "reference-scale"
    shutil.rmtree(work, ignore_errors=True)
    (work / "ref-images").mkdir(parents=True)
    for p in photos[:ref_photos]:
        shutil.copyfile(p, work / "ref-images" / p.name)
    ref_imgs = sorted((work / "ref-images").iterdir())
    truth = _new_batch(photos[ref_photos:ref_photos + new_photos], ref_imgs[:copies], work / "new-images")
    started = init_ray(logging_level="ERROR")  # the bench's own Ray, on loopback as a local run's
    (work / "milvus-server").mkdir()
    report: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "n": n, "runs": {}}
    try:
        with EmbeddedMilvus(work / "milvus-server") as server:
            ref_out = work / "ref-out"
            t0 = time.perf_counter()
            s = run(DedupConfig(inputs=[str(work / "ref-images")], output=str(ref_out), milvus_uri=server.uri, report=False))
            report["reference_run_seconds"] = round(time.perf_counter() - t0, 1)
            collection = s["parameters"]["collection"]
            t0 = time.perf_counter()
            report["synthetic_vectors"] = _grow(OutputLayout.of(ref_out), server.uri, collection, n)
            report["grow_seconds"] = round(time.perf_counter() - t0, 1)
            before = _snapshot(ref_out)
            for label, engine in (("milvus server collection", "milvus"), ("exact over the Parquet vectors", "exact")):
                report["runs"][label] = _new_run(work, ref_out, server.uri, engine, truth, label)
            report["reference_unchanged"] = _snapshot(ref_out) == before
    finally:
        if started:
            ray.shutdown()
    results.mkdir(parents=True, exist_ok=True)
    (results / "reference-scale.json").write_text(json.dumps(report, indent=2, default=str))
    md = _markdown(report, copies, new_photos)
    (results / "reference-scale.md").write_text(md)
    print(md)
    return report


def _new_run(work: Path, ref_out: Path, uri: str, engine: str, truth: dict, label: str) -> dict:
    """The new batch against the reference (``--reference-engine``: its collection on the server, or its
    Parquet vectors exactly); the new run's own vectors go to the same server."""
    from dedup import run
    from dedup.config import DedupConfig

    out = work / f"new-out-{engine}"
    t0 = time.perf_counter()
    s = run(DedupConfig(inputs=[str(work / "new-images")], output=str(out), references=[str(ref_out)], milvus_uri=uri,
                        reference_engine=engine, report=False))
    seconds = time.perf_counter() - t0
    man = pd.read_csv(OutputLayout.of(out).manifest_csv, keep_default_na=False)
    found = dict(zip(man["path"], man["reference_path"]))
    expected = {p: r for p, r in truth.items() if r}
    hits = sum(found.get(p) == r for p, r in expected.items())
    false = sum(1 for p, r in found.items() if r and truth.get(p) != r)
    sr = s["stages"]["search_reference"]
    return {"engine": label, "seconds": round(seconds, 1), "copies_found": hits, "copies": len(expected), "false_matches": false,
            "search_reference_seconds": sr["seconds"], "queries": sr["queries"], "reference_vectors": sr["reference_vectors"],
            "embedded": s["stages"]["decode_embed"]["images"], "stages": {k: v["seconds"] for k, v in s["stages"].items()}}


def _markdown(report: dict, copies: int, new_photos: int) -> str:
    lines = ["# New images against a large reference", "",
             f"{report['machine']['cpus']} CPUs ({report['machine']['platform']}). Reference: a real SSCD run over "
             f"{report['n'] - report['synthetic_vectors']} photos stored on the embedded Milvus server (PyPI `milvus` 2.3; "
             f"{report['reference_run_seconds']} s), grown to {report['n']:,} vectors with random unit vectors "
             f"({report['grow_seconds']} s). New batch: {copies} edited copies of reference photos (3/4 size, brightness "
             f"1.15, JPEG 75) and {new_photos} photos the reference lacks. The reference folder unchanged after both runs: "
             f"{report['reference_unchanged']}.", "",
             "| reference searched by | new run, seconds | search_reference, seconds | queries | reference vectors | copies found | false matches | images embedded |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["runs"].values():
        lines.append(f"| {r['engine']} | {r['seconds']} | {r['search_reference_seconds']} | {r['queries']} | {r['reference_vectors']:,} | "
                     f"{r['copies_found']}/{r['copies']} | {r['false_matches']} | {r['embedded']} |")
    return "\n".join(lines) + "\n"
