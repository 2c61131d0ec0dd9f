"""``python -m bench --exact-products N ...``: the exact search's products, float32 against int8
(:mod:`dedup.ops.search`), on the same planted SSCD-like vectors in one process with nothing beside them
(the engine bench times the search beside the background store). Up to ``SAMPLE_ABOVE`` vectors every pair
is computed; above it a sample of 10,000 queries against every vector, extrapolated (x queries / 2: each
pair once). The runs alternate (int8, float32, int8, float32) so that a machine's drift shows as spread,
and both must find the same edges. Writes ``RESULTS/exact-products.md`` and ``.json``; the crossover
``DedupConfig.INT8_FROM`` is read off it."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

SAMPLE_ABOVE = 100_000


def products_bench(sizes, results: Path) -> list[dict]:
    from bench.scale import planted_vectors
    from bench.scale_engines import SSCD_COPY_COS, SSCD_DIM, SSCD_THRESHOLD

    rows = []
    for n in sizes:
        vecs, _ = planted_vectors(n, SSCD_DIM, copy_cos=SSCD_COPY_COS)
        every = 1 if n <= SAMPLE_ABOVE else max(1, n // 10_000)
        times, edges = {"int8": [], "float32": []}, {}
        for products in ("int8", "float32", "int8", "float32"):
            seconds, found = _timed(np.arange(n), vecs, SSCD_THRESHOLD, every, products)
            times[products].append(round(seconds * (every / 2 if every > 1 else 1), 2))
            edges.setdefault(products, found)
        row = {"n": n, "queries": n if every == 1 else -(-n // every), "seconds_all_pairs": times,
               "same_edges": edges["int8"] == edges["float32"], "edges": len(edges["int8"]),
               "speedup": round(min(times["float32"]) / min(times["int8"]), 2)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    results.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "platform": platform.platform()}
    (results / "exact-products.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    (results / "exact-products.md").write_text(products_markdown(rows, machine))
    return rows


def _timed(vids, vecs, threshold, every, products) -> tuple[float, set]:
    from bench.sampled_search import sampled_edges
    from dedup.ops.search import exact_edges

    t0 = time.perf_counter()
    e = exact_edges(vids, vecs, threshold, products) if every == 1 else sampled_edges(vids, vecs, threshold, every, products)
    return time.perf_counter() - t0, set(zip(e["a"].tolist(), e["b"].tolist()))


def products_markdown(rows: list[dict], machine: dict) -> str:
    lines = ["## Exact search: float32 or int8 products", "",
             f"Machine: {machine['cpus']} CPUs, {machine['platform']}. 512-d planted vectors (as the engine bench: 10 % in "
             "groups of 2-5 copies, cosine to their base 0.45-0.99), threshold 0.3, the search alone in one process. Above "
             f"{SAMPLE_ABOVE:,} vectors a sample of 10,000 queries is timed and extrapolated to every pair once.", "",
             "| vectors | queries timed | float32 s (two runs) | int8 s (two runs) | int8 speedup (best of each) | same edges | edges |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["seconds_all_pairs"]
        lines.append(f"| {r['n']:,} | {r['queries']:,} | {', '.join(map(str, t['float32']))} | {', '.join(map(str, t['int8']))} | "
                     f"{r['speedup']} | {r['same_edges']} | {r['edges']:,} |")
    lines += ["", "`python -m bench --exact-products N ...`. `--exact-products auto` uses int8 from `DedupConfig.INT8_FROM` vectors."]
    return "\n".join(lines) + "\n"
