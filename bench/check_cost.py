"""``python -m bench --check-cost [N]``: the content check's CPU per pair on the bench corpus's own pairs.

A run's ``cpu_ms_per_pair`` (``summary.json``) is one reading, and on a shared VM one reading moves by a
tenth or more from one minute to the next. Here the pairs the bench corpus's default run checked (the SSCD
run of an earlier ``python -m bench`` in ``--work``: ``out-sscd/verify.parquet``) are checked again on Ray
tasks, as the job runs them (:func:`dedup.stages.verify.run_checks`), ``N`` times, with the check as it
ships and, alternated with it in the same run, the baseline without its one-frame pass
(``VerifyParams.identity_detail`` 0). Reported: the least and the median CPU milliseconds per pair of each,
and the pairs each passed. Writes ``RESULTS/check-cost.md`` and ``.json``.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def check_cost_bench(work: Path, results: Path, repeats: int = 5) -> dict:
    import pyarrow.parquet as pq
    import ray

    from dedup.ops.verify import VerifyParams
    from dedup.ray_env import init_ray
    from dedup.stages.verify import run_checks, where

    run = work / "out-sscd"
    if not (run / "verify.parquet").exists():
        raise SystemExit(f"no {run}/verify.parquet: run `python -m bench` first")
    checked = pq.read_table(run / "verify.parquet").to_pandas()
    reps = pq.read_table(run / "files.parquet").to_pandas().drop_duplicates("vid")
    a, b = checked["a"].to_numpy(), checked["b"].to_numpy()
    located = where(reps, a, b)
    variants = {"as shipped": VerifyParams(), "without the one-frame pass": VerifyParams(identity_detail=0)}
    readings: dict[str, list[float]] = {k: [] for k in variants}
    passed: dict[str, int] = {}
    started = init_ray(logging_level="ERROR")
    try:
        for _ in range(repeats):
            for name, params in variants.items():
                table, counts = run_checks(a, b, located, params)
                readings[name].append(round(1000 * counts["task_cpu_seconds"] / len(a), 2))
                passed[name] = int(table["ok"].to_numpy().sum())
    finally:
        if started:
            ray.shutdown()
    report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "pairs": int(len(a)),
              "images": int(len(located)), "repeats": repeats,
              "variants": {k: {"cpu_ms_per_pair": v, "least": min(v), "median": sorted(v)[len(v) // 2], "passed": passed[k]}
                           for k, v in readings.items()}}
    _write(report, results)
    return report


def _write(report: dict, results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "check-cost.json").write_text(json.dumps(report, indent=1))
    lines = ["# The content check's CPU per pair on the bench corpus (`python -m bench --check-cost`)", "",
             f"{report['machine']['cpus']} CPUs ({report['machine']['platform']}). The {report['pairs']:,} pairs the bench "
             f"corpus's default run checked ({report['images']:,} images), checked again on Ray tasks as the job runs "
             f"them, {report['repeats']} times each, the two variants alternated in one run. CPU ms per pair: the "
             "tasks' CPU seconds over the pairs, as `summary.json`'s `cpu_ms_per_pair`.", "",
             "| check | least | median | every reading | pairs passed |", "|---|---|---|---|---|"]
    for name, r in report["variants"].items():
        lines.append(f"| {name} | {r['least']} | {r['median']} | {', '.join(map(str, r['cpu_ms_per_pair']))} | {r['passed']:,} |")
    md = "\n".join(lines) + "\n"
    (results / "check-cost.md").write_text(md)
    print(md)
