"""``python -m bench --verify-cost N``: what the content check (stage `verify`) costs at N edges, on this machine.

The images are distinct JPEGs made from the photo folder (:func:`bench.throughput.build_corpus`,
320-640 px on the long side, like the ImageNet photos). The edges are what a verify band holds: small dense
groups (every pair within groups of ``group`` images, as copies and near misses come), N edges in all; and,
for comparison, N/10 random edges among the same images (one giant component, the worst case for "decode
each image once": an image's pairs land in different tasks). Each is checked with :func:`dedup.ops.verify.run_checks` on Ray, as the job does.
Writes ``RESULTS/verify-cost.md`` and ``.json``.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def group_edges(n_edges: int, group: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Every pair within consecutive groups of ``group`` images, enough groups for ``n_edges`` edges."""
    per = group * (group - 1) // 2
    groups = -(-n_edges // per)
    ia, ib = np.triu_indices(group, 1)
    base = (np.arange(groups) * group)[:, None]
    a, b = (base + ia).ravel()[:n_edges], (base + ib).ravel()[:n_edges]
    return a.astype(np.int64), b.astype(np.int64), groups * group


def random_edges(n_edges: int, images: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, images, n_edges * 2)
    b = rng.integers(0, images, n_edges * 2)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = np.unique(lo[lo != hi] * images + hi[lo != hi])[:n_edges]
    return key // images, key % images


def verify_cost_bench(src: Path, work: Path, results: Path, n_edges: int = 100_000, group: int = 10, with_random: bool = True) -> dict:
    import ray

    from bench.throughput import build_corpus
    from dedup.ray_env import init_ray
    from dedup.stages import verify

    a, b, n_images = group_edges(n_edges, group)
    images_dir, info = build_corpus(src, work / f"verify-corpus-{n_images}", n_images)
    paths = sorted(str(p) for p in images_dir.rglob("*.jpg"))
    where = {i: ("file", p, p) for i, p in enumerate(paths)}
    started = init_ray(logging_level="ERROR")  # the bench's own Ray, on loopback as a local run's
    report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "corpus": info,
              "params": verify.VerifyParams().__dict__, "runs": {}}
    try:
        cases = [("groups", a, b)]
        if with_random:
            cases.append(("random", *random_edges(n_edges // 10, n_images)))
        for name, ea, eb in cases:
            t0 = time.perf_counter()
            table, counts = verify.run_checks(ea, eb, where, verify.VerifyParams())
            seconds = time.perf_counter() - t0
            report["runs"][name] = {"edges": int(len(ea)), "images": int(len(np.unique(np.concatenate([ea, eb])))), "seconds": round(seconds, 1),
                                    "edges_per_second": round(len(ea) / seconds, 1), "passed": int(table["ok"].to_numpy().sum()),
                                    "cpu_ms_per_edge": round(1000 * counts["task_cpu_seconds"] / max(1, len(ea)), 2), **counts}
    finally:
        if started:
            ray.shutdown()
    results.mkdir(parents=True, exist_ok=True)
    (results / "verify-cost.json").write_text(json.dumps(report, indent=2, default=str))
    lines = ["# Cost of the content check (stage verify)", "",
             f"{os.cpu_count()} CPUs ({platform.platform()}); {n_images} distinct JPEGs of 320-640 px made from `{src}`; "
             "the content check with VerifyParams' defaults (docs/how-it-decides.md), templates not looked for.", "",
             "| edges | structure | images | tasks | images decoded | seconds | edges/s | CPU-seconds in tasks (wall) | CPU ms per edge | passed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["runs"].items():
        what = f"groups of {group} (every pair)" if name == "groups" else "random pairs (one giant component)"
        lines.append(f"| {r['edges']:,} | {what} | {r['images']:,} | {r['tasks']} | {r['images_decoded']:,} | {r['seconds']} | "
                     f"{r['edges_per_second']} | {r['task_cpu_seconds']} ({r['task_seconds']}) | {r['cpu_ms_per_edge']} | {r['passed']} |")
    md = "\n".join(lines) + "\n"
    (results / "verify-cost.md").write_text(md)
    print(md)
    return report
