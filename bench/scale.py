"""``python -m bench --scale``: the vector stages alone (store, search, graph) on synthetic embeddings.

Planted near-duplicate groups among random unit vectors, at 10k, 100k and 1M vectors: time per stage,
peak memory (the driver, and the driver plus every process it started: Ray workers, the Milvus Lite
server), and recall of the planted pairs. Runs the job's own code (the store and search stages, run by the runner,
:func:`dedup.ops.graph.assign_clusters`) on a ``vectors/`` folder written here instead of by the model.

Vectors: ``dim``-d (default 256: the dimension a PCA of ResNet-50's 2048-d features would keep, see
:func:`pca_recall`), random unit vectors (cosine between two of them ~ N(0, 1/dim): far below any
threshold), and ``group_fraction`` of them are the first member of a group of 2 to 5 near copies
(base + Gaussian noise of norm ``noise``: cosine ~ 1/sqrt(1 + noise^2) to the base). A planted pair is
one whose exact cosine is at least the threshold; recall is the share of those found as edges.
"""
from __future__ import annotations

import dataclasses

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dedup.layout import OutputLayout

def planted_vectors(n: int, dim: int = 256, group_fraction: float = 0.1, noise: float = 0.2, seed: int = 0,
                    copy_cos: tuple[float, float] | None = None):
    """(vectors (n, dim) float32 unit rows, group id per row (-1: no group)); rows in random order.

    ``copy_cos`` (lo, hi): each copy's cosine to its group's base is drawn uniformly from it (noise
    orthogonal-ish to the base, of norm sqrt(1/c^2 - 1)), so two copies of one base meet at the product of
    their cosines: SSCD-like pairs spread from clear copies down past a low threshold, instead of ``noise``'s
    one level."""
    rng = np.random.default_rng(seed)
    sizes = []
    total = 0
    while total < n * group_fraction:
        k = int(rng.integers(2, 6))
        sizes.append(k)
        total += k
    n_groups = len(sizes)
    n_single = max(0, n - total)
    base = rng.standard_normal((n_groups + n_single, dim), dtype=np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    group_of_base = np.repeat(np.arange(n_groups), sizes)
    if copy_cos is None:
        copies = base[group_of_base] + rng.standard_normal((total, dim), dtype=np.float32) * (noise / np.sqrt(dim))
    else:
        c = rng.uniform(copy_cos[0], copy_cos[1], total).astype(np.float32)
        step = rng.standard_normal((total, dim), dtype=np.float32)
        step /= np.linalg.norm(step, axis=1, keepdims=True)
        copies = base[group_of_base] + step * np.sqrt(1.0 / c**2 - 1.0)[:, None]
    vecs = np.concatenate([copies, base[n_groups:]])[:n]
    groups = np.concatenate([group_of_base, np.full(n_single, -1)])[:n]
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    order = rng.permutation(n)
    return vecs[order].astype(np.float32), groups[order]


def planted_pairs(vecs: np.ndarray, groups: np.ndarray, threshold: float, every: int = 1) -> set[tuple[int, int]]:
    """Pairs within a planted group whose exact cosine is >= threshold (with a vid multiple of ``every``)."""
    pairs = set()
    idx = np.flatnonzero(groups >= 0)
    order = idx[np.argsort(groups[idx], kind="stable")]
    g = groups[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], len(order)]
    for s, e in zip(starts, ends):
        members = order[s:e]
        sims = vecs[members] @ vecs[members].T
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                a, b = sorted((int(members[i]), int(members[j])))
                if sims[i, j] >= threshold and (a % every == 0 or b % every == 0):
                    pairs.add((a, b))
    return pairs


def exact_pairs_of(vecs: np.ndarray, sample: np.ndarray, threshold: float, block: int = 256) -> set[tuple[int, int]]:
    """Every pair (a < b) with exact cosine >= ``threshold`` that involves a vid of ``sample``: the truth a
    search's recall is measured against (the sample's queries against every vector, by brute force)."""
    pairs = set()
    for start in range(0, len(sample), block):
        q = sample[start : start + block]
        sims = vecs[q] @ vecs.T
        r, c = np.nonzero(sims >= threshold)
        a, b = q[r], c
        keep = a != b
        pairs.update(zip(np.minimum(a, b)[keep].tolist(), np.maximum(a, b)[keep].tolist()))
    return pairs


def write_vectors(vecs: np.ndarray, folder: Path, rows_per_file: int = 50_000) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    dim = vecs.shape[1]
    for start in range(0, len(vecs), rows_per_file):
        chunk = vecs[start : start + rows_per_file]
        flat = pa.array(chunk.reshape(-1), pa.float32())
        pq.write_table(pa.table({
            "vid": pa.array(np.arange(start, start + len(chunk)), pa.int64()),
            "error": pa.nulls(len(chunk), pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
        }), folder / f"part-{start // rows_per_file:05d}.parquet")


class PeakMemory:
    """Samples RSS of this process, and of it plus all its descendants (Ray workers, Milvus Lite), every 0.2 s."""

    def __init__(self):
        import psutil

        self.psutil = psutil
        self.proc = psutil.Process()
        self.driver = 0
        self.total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            try:
                d = self.proc.memory_info().rss
                t = d
                for c in self.proc.children(recursive=True):
                    try:
                        t += c.memory_info().rss
                    except self.psutil.Error:
                        pass
                self.driver = max(self.driver, d)
                self.total = max(self.total, t)
            except self.psutil.Error:
                pass
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _sampled_queries(n: int, query_every: int, recall_sample: int) -> np.ndarray:
    """``recall_sample`` of the queried vids (every ``query_every``-th), sorted; none for 0."""
    if not recall_sample:
        return np.zeros(0, np.int64)
    queried = np.arange(0, n, query_every)
    return np.sort(np.random.default_rng(1).choice(queried, min(recall_sample, len(queried)), replace=False))


def _drop(cfg, services, sig) -> None:
    from dedup.stages.common import collection_name
    from dedup.vectordb.milvus import drop_collection

    drop_collection(services.milvus(), collection_name(cfg, sig), owner=cfg.output_path)


def scale_run(n: int, work: Path, dim: int = 256, threshold: float = 0.9, index: str = "FLAT",
              query_every: int = 1, milvus_uri: str | None = None, copy_cos: tuple[float, float] | None = None,
              recall_sample: int = 0, label: str = "", **overrides) -> dict:
    """Store + search + graph on ``n`` planted vectors; returns times, memory, recall and the engine's reason.

    Recall: of the planted pairs at or above the threshold, and with ``recall_sample`` > 0 also of every pair
    at or above it that involves one of that many sampled queries, found by brute force (``recall_exact``).
    ``overrides``: config fields as the job takes them (search_engine, exact_below, local_below,
    search_batch, search_mode, ...), so each engine is timed as the job runs it."""
    import pandas as pd

    from dedup.config import DedupConfig
    from dedup.job import signals
    from dedup.ops import graph
    from dedup.runner import Runner, RunState
    from dedup.services import Services
    from bench.sampled_search import SampledSearchStage
    from dedup.stages import StoreStage, Vectors
    from dedup.stages.base import StageContext

    out = (work / f"scale-{n}-{index.lower()}{'-server' if milvus_uri else ''}{'-' + label if label else ''}").resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    vecs, groups = planted_vectors(n, dim, copy_cos=copy_cos)
    write_vectors(vecs, OutputLayout.of(out).vectors)
    truth = planted_pairs(vecs, groups, threshold, query_every)
    sample = _sampled_queries(n, query_every, recall_sample)
    exact = exact_pairs_of(vecs, sample, threshold) if len(sample) else set()
    gen_s = time.perf_counter() - t0
    del vecs
    cfg = DedupConfig(inputs=["synthetic"], output=str(out), model="thumb", threshold=threshold, index=index,
                      milvus_uri=milvus_uri, drop_collection=bool(milvus_uri), **overrides).validate()
    layout = OutputLayout.of(out)
    sig = dataclasses.replace(signals(cfg)[0], dim=dim)
    services = Services(cfg, layout)
    ctx = StageContext(cfg, layout, {}, services)
    vectors = Vectors(layout.vectors, pd.DataFrame({"vid": np.arange(n), "error": [None] * n}), n)
    runner = Runner([StoreStage(sig), SampledSearchStage(sig, every=query_every)], ctx, RunState(layout.state, fresh=True),
                    given={"decode_embed": (vectors, f"synthetic-{n}-{dim}")})
    try:
        with PeakMemory() as mem:
            t_run = time.perf_counter()
            stages = runner.run()
            store_search_wall = time.perf_counter() - t_run
            edges = ctx.value("search")
            t0 = time.perf_counter()
            a, b, s = (edges.column(c).to_numpy() for c in ("a", "b", "sim"))
            clusters = graph.assign_clusters(n, a, b, s, np.arange(n))
            stages["graph"] = {"seconds": round(time.perf_counter() - t0, 3), "vectors": n, "edges": int(len(a)),
                               "clusters_with_copies": int(np.sum(np.bincount(clusters.canonical, minlength=n) > 1))}
        if cfg.drop_collection:
            _drop(cfg, services, sig)
    finally:
        services.close()
    stats = stages["search"]
    found = set(zip(a.tolist(), b.tolist())) if len(a) < 20_000_000 else set()
    recall = len(truth & found) / len(truth) if truth else 1.0
    row = {
        "n": n, "dim": dim, "index": (stages.get("store", {}).get("index") or {}).get("type", index), "milvus": "server" if milvus_uri else "lite", "threshold": threshold,
        "engine": "exact" if stats.get("mode", "").startswith("exact") else f"milvus: {stats.get('mode')}",
        "label": label, "query_every": query_every, "queries": stats.get("queries"),
        "planted_pairs": len(truth), "recall": round(recall, 4), "edges": int(len(a)),
        "seconds": {k: v["seconds"] for k, v in stages.items()},
        "store_plus_search_wall_seconds": round(store_search_wall, 1),
        "per_second": {k: next((x for key, x in v.items() if key.endswith("_per_second")), None) for k, v in stages.items()},
        "generate_seconds": round(gen_s, 1),
        "peak_driver_mb": round(mem.driver / 2**20), "peak_all_processes_mb": round(mem.total / 2**20),
        "search": {k: stats.get(k) for k in ("saturated_brute_forced", "requeried_at_max_limit", "edges_found", "mode", "requests", "products", "why")},
        "store": {k: v for k, v in stages.get("store", {}).items() if k in ("method", "index", "bulk_fallback_reason", "background")},
    }
    if len(sample):
        chosen = set(sample.tolist())
        sampled_found = {p for p in found if p[0] in chosen or p[1] in chosen}
        row.update(recall_sample=int(len(sample)), exact_pairs_of_sample=len(exact),
                   recall_exact=round(len(exact & sampled_found) / len(exact), 4) if exact else 1.0)
    return row


def graph_only(n_vectors: int, n_edges: int, seed: int = 0) -> dict:
    """The graph stage alone on random edges (bounded-memory check for very large edge lists)."""
    from dedup.ops import graph

    rng = np.random.default_rng(seed)
    a = rng.integers(0, n_vectors, n_edges, dtype=np.int64)
    b = rng.integers(0, n_vectors, n_edges, dtype=np.int64)
    s = rng.uniform(0.9, 1.0, n_edges).astype(np.float32)
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        c = graph.assign_clusters(n_vectors, a, b, s, np.arange(n_vectors))
        seconds = time.perf_counter() - t0
    return {"n": n_vectors, "edges": n_edges, "seconds": round(seconds, 1), "rounds": c.rounds,
            "peak_driver_mb": round(mem.driver / 2**20), "input_arrays_mb": round((a.nbytes + b.nbytes + s.nbytes) / 2**20)}


def to_markdown(rows: list[dict], graph_rows: list[dict]) -> str:
    lines = ["## Scale: vector stages on synthetic embeddings", "",
             "| vectors | dim | Milvus | index | queries | store s | search s | graph s | store vec/s | search q/s | recall | edges | peak driver MB | peak all MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| | | {r['milvus']} | {r['error']} | | | | | | | | | | |")
            continue
        sec, ps = r["seconds"], r["per_second"]
        lines.append(f"| {r['n']:,} | {r['dim']} | {r['milvus']} | {r['index']} | {r['queries']:,} | {sec.get('store')} | {sec.get('search')} | "
                     f"{sec.get('graph')} | {ps.get('store')} | {ps.get('search')} | {r['recall']} | {r['edges']:,} | {r['peak_driver_mb']} | {r['peak_all_processes_mb']} |")
    if graph_rows:
        lines += ["", "| graph only: vectors | edges | seconds | most clusters in one component | peak driver MB | edge arrays MB |", "|---|---|---|---|---|---|"]
        for g in graph_rows:
            lines.append(f"| {g['n']:,} | {g['edges']:,} | {g['seconds']} | {g['rounds']} | {g['peak_driver_mb']} | {g['input_arrays_mb']} |")
    return "\n".join(lines) + "\n"


# How each size is run: (index, query every k-th vid). Milvus Lite answers a few hundred queries per second,
# so beyond 100k its search is timed on a 1 % sample of the queries; a server on 10 %.
PLAN = {
    "lite": {10_000: ("FLAT", 1), 100_000: ("IVF_FLAT", 1), 1_000_000: ("IVF_FLAT", 100)},
    "server": {10_000: ("AUTO", 1), 100_000: ("AUTO", 1), 1_000_000: ("AUTO", 10)},
}


def scale_bench(sizes, work: Path, results: Path | None = None, graph_edges=(10_000_000, 100_000_000),
                milvus=("lite", "server")) -> dict:
    """Scale rows for each size and Milvus (Lite, and the embedded server of the PyPI package ``milvus``
    when it is installed), and the graph stage alone on large random edge lists; writes scale.md/json."""
    import json
    from contextlib import ExitStack

    import ray

    from dedup.ray_env import init_ray

    started = init_ray(logging_level="ERROR")  # the bench's own Ray, on loopback as a local run's
    rows = []
    try:
        for kind in milvus:
            with ExitStack() as stack:
                uri = None
                if kind == "server":
                    try:
                        from dedup.vectordb.embedded import EmbeddedMilvus

                        base = (work / "milvus-server").resolve()  # the server resolves its config paths itself
                        shutil.rmtree(base, ignore_errors=True)
                        base.mkdir(parents=True)
                        uri = stack.enter_context(EmbeddedMilvus(base)).uri
                    except Exception as e:  # noqa: BLE001 - no server here: say so in the results
                        rows.append({"milvus": "server", "error": f"embedded Milvus server not available: {e}"})
                        continue
                for n in sizes:
                    index, every = PLAN[kind].get(n, ("AUTO", max(1, n // 100_000)))
                    rows.append(scale_run(n, work, index=index, query_every=every, milvus_uri=uri))
                    print(to_markdown(rows[-1:], []), flush=True)
    finally:
        if started:
            ray.shutdown()
    if results is not None and (results / "scale.json").exists():  # keep the other Milvus kind's rows of an earlier run
        earlier = json.loads((results / "scale.json").read_text()).get("rows", [])
        rows = [r for r in earlier if r.get("milvus") not in milvus] + rows
    graphs = [graph_only(1_000_000, e) for e in graph_edges]
    pca = pca_recall()
    report = {"rows": rows, "graph_only": graphs, "pca": pca, "machine_cpus": os.cpu_count()}
    md = to_markdown(rows, graphs) + pca_markdown(pca)
    if results is not None:
        results.mkdir(parents=True, exist_ok=True)
        (results / "scale.json").write_text(json.dumps(report, indent=2))
        (results / "scale.md").write_text(md)
    print(md)
    return report


def pca_markdown(p: dict) -> str:
    lines = ["", f"PCA {p['dim']} -> {p['k']} (synthetic power-law features, {p['n']:,} vectors, {p['true_pairs']} pairs >= "
             f"{p['threshold']} in {p['dim']}-d; {p['explained_variance']:.0%} of the variance kept; "
             f"{p['memory_per_million_vectors_gb']['full']} GB -> {p['memory_per_million_vectors_gb']['pca']} GB per million vectors):", "",
             "| threshold in PCA space | recall | precision |", "|---|---|---|"]
    lines += [f"| {r['pca_threshold']} | {r['recall']} | {r['precision']} |" for r in p["rows"]]
    return "\n".join(lines) + "\n"


def pca_recall(n: int = 20_000, dim: int = 2048, k: int = 256, threshold: float = 0.9, decay: float = 1.0,
               seed: int = 0) -> dict:
    """Recall/precision cost of reducing ``dim``-d vectors to ``k`` with PCA, at the same cosine threshold.

    Synthetic stand-in for CNN features (real ImageNet features cannot be made here): a power-law spectrum
    (variance of component i ~ i^-decay, as pooled CNN features roughly have), 10 % of the rows in planted
    near-copy groups. Pairs at or above the threshold in the full space are the truth; the PCA space's pairs
    at the same threshold (vectors re-normalised) are compared with them. Brute force, in blocks.
    """
    rng = np.random.default_rng(seed)
    scale = (np.arange(1, dim + 1, dtype=np.float32) ** (-decay / 2)).astype(np.float32)
    n_groups = n // 30
    base = rng.standard_normal((n - 2 * n_groups, dim), dtype=np.float32) * scale
    copies = np.repeat(base[:n_groups], 2, axis=0)
    copies += rng.standard_normal(copies.shape, dtype=np.float32) * scale * 0.25
    x = np.concatenate([base, copies])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t0 = time.perf_counter()
    sample = x[rng.choice(len(x), min(len(x), 10_000), replace=False)]
    mean = sample.mean(axis=0)
    _, sv, vt = np.linalg.svd(sample - mean, full_matrices=False)
    proj = vt[:k].T.astype(np.float32)
    fit_s = time.perf_counter() - t0
    explained = float((sv[:k] ** 2).sum() / (sv**2).sum())
    y = (x - mean) @ proj
    y /= np.linalg.norm(y, axis=1, keepdims=True)

    def pairs(v: np.ndarray, th: float) -> set:
        out = set()
        for s in range(0, len(v), 2048):
            sims = v[s : s + 2048] @ v.T
            r, c = np.nonzero(sims >= th)
            keep = s + r < c
            out.update(zip((s + r[keep]).tolist(), c[keep].tolist()))
        return out

    truth = pairs(x, threshold)
    rows = []
    for th in (threshold, threshold - 0.02, threshold - 0.05):
        got = pairs(y, th)
        hit = len(truth & got)
        rows.append({"pca_threshold": round(th, 3), "recall": round(hit / max(1, len(truth)), 4),
                     "precision": round(hit / max(1, len(got)), 4), "pairs": len(got)})
    return {"n": n, "dim": dim, "k": k, "threshold": threshold, "true_pairs": len(truth),
            "explained_variance": round(explained, 4), "fit_seconds": round(fit_s, 1), "rows": rows,
            "memory_per_million_vectors_gb": {"full": round(dim * 4e6 / 1e9, 1), "pca": round(k * 4e6 / 1e9, 1)}}
