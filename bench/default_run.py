"""``python -m bench --default-run N``: the default job as a user runs it, on N JPEGs made as ``--throughput``
makes them (:func:`bench.throughput.build_corpus`: random crops, mirrors, sizes and qualities of the
``--src`` photos, so each photo has N / photos versions, many of them copies of each other): each stage's
wall time and its share of the run, and the CPU of the two stages after the model per unit of their work
(the content check per pair checked, the kept image per candidate: ``summary.json``'s own metrics).

The job is ``dedup run --input IMAGES --output OUT --no-report`` in a process of its own (``python -m dedup.cli``) (the report comes
after the stages and is not one of them). Writes ``RESULTS/default-run-N.json`` and ``.md``.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

# the two stages after the model whose CPU per unit of work summary.json gives: (the units' key, the CPU-per-unit key)
_PER_UNIT = {"verify": ("edges_checked", "cpu_ms_per_pair"), "canonical": ("candidates", "cpu_ms_per_candidate")}


def default_run_bench(src: Path, work: Path, results: Path, n: int) -> dict:
    """Build the corpus (reused when made before), run the job on a fresh output, write the results."""
    from bench.throughput import build_corpus

    images, corpus = build_corpus(src, work / f"throughput-corpus-{n}", n)
    out = work / f"out-default-{n}"
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "dedup.cli", "run", "--input", str(images), "--output", str(out), "--no-report"],
                   check=True)
    return write_results(json.loads((out / "summary.json").read_text()), corpus, results, n)


def write_results(summary: dict, corpus: dict, results: Path, n: int) -> dict:
    """``RESULTS/default-run-N.json`` and ``.md`` from a run's ``summary.json``."""
    report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "corpus": corpus,
              "total_seconds": summary["total_seconds"], "counts": summary["counts"], "stages": stage_rows(summary)}
    results.mkdir(parents=True, exist_ok=True)
    (results / f"default-run-{n}.json").write_text(json.dumps(report, indent=2))
    md = to_markdown(report, n)
    (results / f"default-run-{n}.md").write_text(md)
    print(md)
    return report


def stage_rows(summary: dict) -> list[dict]:
    """One row per stage: its wall seconds, their share of the run's, and for the check and the kept image
    the units of work and the CPU per unit."""
    total = summary["total_seconds"]
    rows = []
    for name, m in summary["stages"].items():
        row = {"stage": name, "seconds": m["seconds"], "share": round(m["seconds"] / total, 4),
               "background": bool(m.get("background"))}
        if name in _PER_UNIT:
            units, per = _PER_UNIT[name]
            row.update(units=m.get(units), unit=units, cpu_ms_per_unit=m.get(per), task_cpu_seconds=m.get("task_cpu_seconds"))
        rows.append(row)
    return rows


def to_markdown(report: dict, n: int) -> str:
    c = report["counts"]
    lines = [f"# The default job on {n} JPEGs (`python -m bench --default-run {n}`)", "",
             f"Machine: {report['machine']['cpus']} CPUs, {report['machine']['platform']}. Corpus: {n} JPEGs made from "
             f"{report['corpus'].get('photos')} photos as `--throughput` makes them. The job: `dedup run --input IMAGES "
             f"--output OUT --no-report` (SSCD, the content check, the kept image); {report['total_seconds']:.1f} s in all; "
             f"{c['clusters']} clusters, {c['duplicates']} duplicates.", "",
             "| stage | wall s | share of the run | work | CPU per unit (its tasks) |", "|---|---|---|---|---|"]
    for r in report["stages"]:
        share = "beside the others" if r["background"] else f"{100 * r['share']:.1f} %"
        work = f"{r['units']} {r['unit'].replace('_', ' ')}" if r.get("unit") else ""
        cpu = f"{r['cpu_ms_per_unit']} ms ({r['task_cpu_seconds']} s)" if r.get("unit") else ""
        lines.append(f"| {r['stage']} | {r['seconds']:.1f} | {share} | {work} | {cpu} |")
    return "\n".join(lines) + "\n"
