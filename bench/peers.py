"""Peer tools run on the same corpus, each from its own virtual environment (bench/peers/install.sh).

Each runner writes ``path,cluster``; the image kept per cluster is its first path (what a user of a
duplicate map does), so the same scorer applies.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd

from bench.score import score_parts

ROOT = Path(__file__).resolve().parents[1]
PEERS = {
    # tool: (venv, runner, thresholds swept, extra arguments)
    "imagededup-phash": ("imagededup", "run_imagededup.py", [4, 8, 10, 12, 16], []),
    # fastdup keeps only k=2 neighbours per image by default, which loses true pairs: k=10 is fairer.
    "fastdup": ("fastdup", "run_fastdup.py", [0.8, 0.85, 0.9, 0.95], ["--k", "10"]),
    # immaculate's thresholds are fixed per method (pdq 31 bits, sscd 0.75): one run each, whole process timed.
    "immaculate-pdq": ("immaculate", "run_immaculate.py", ["31 bits"], ["--method", "pdq"]),
    "immaculate-sscd_distilled": ("immaculate", "run_immaculate.py", [0.75], ["--method", "sscd_distilled"]),
    "immaculate-sscd": ("immaculate", "run_immaculate.py", [0.75], ["--method", "sscd"]),
}


def venv_python(venv: str) -> Path:
    return ROOT / "bench" / "work" / "venvs" / venv / "bin" / "python"


def run_peer(tool: str, images: Path, truth: pd.DataFrame, work: Path) -> dict:
    venv, runner, thresholds, extra = PEERS[tool]
    py = venv_python(venv)
    skipped = py.parents[2] / f".{venv}.skipped"
    if not py.exists():
        why = f"skipped by bench/peers/install.sh: {skipped.read_text().strip()}" if skipped.exists() else f"not installed ({py} missing): run bench/peers/install.sh"
        return {"tool": tool, "error": why}
    best = None
    for th in thresholds:
        out_csv = work / f"{tool}-{str(th).replace(' ', '')}.csv"
        r = subprocess.run(
            [str(py), str(ROOT / "bench" / "peers" / runner), "--images", str(images), "--threshold", str(th).split()[0], "--out", str(out_csv), *extra],
            capture_output=True, text=True,
        )
        if r.returncode != 0:
            return {"tool": tool, "error": (r.stderr or r.stdout)[-500:]}
        info = json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])
        pred = pd.read_csv(out_csv)
        pred = pred.sort_values("path")
        pred["cluster_id"] = pred["cluster"]
        pred["is_canonical"] = ~pred.duplicated("cluster")  # a stand-in: the runners report clusters, not the image kept
        s = {"tool": tool, "threshold": th, "seconds": info["seconds"], **score_parts(pred, truth)}
        s.pop("kept_original", None), s.pop("clusters_with_original", None)  # so which image is kept is not scored
        s["images_per_second"] = round(s["images"] / info["seconds"], 2) if info["seconds"] else None
        if best is None or s["pair_f1"] > best["pair_f1"]:
            best = s
    return best


def _timed(cmd: list[str], env: dict | None = None) -> dict:
    """Wall and CPU seconds (its own and its children's) of one whole process."""
    import os
    import time

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    return {"wall_seconds": round(wall, 2), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2), "rc": proc.returncode}


def side_by_side(images: Path, work: Path, rounds: int = 2) -> dict:
    """Ours (``dedup run --model multihash``, a fresh output each time, Ray started by the run) and
    immaculate's pdq on the same folder, as a user runs each from a shell: whole processes, in turn,
    ``rounds`` times (the means and every run kept). The CPU time includes child processes (Ray's, Milvus
    Lite's) where they are reaped; Ray's daemons are not the run's children, so ours is a lower bound."""
    import shutil
    import sys

    imm = venv_python("immaculate").parent / "immaculate"
    if not imm.exists():
        return {"error": "immaculate not installed: run bench/peers/install.sh"}
    dedup_exe = Path(sys.executable).parent / "dedup"
    runs: dict[str, list] = {"ours: dedup run --model multihash": [], "immaculate --method pdq": []}
    for _ in range(rounds):
        out = work / "out-side-by-side"
        shutil.rmtree(out, ignore_errors=True)
        runs["ours: dedup run --model multihash"].append(_timed([str(dedup_exe), "run", "--input", str(images), "--output", str(out),
                                                                 "--model", "multihash", "--no-report"]))
        runs["immaculate --method pdq"].append(_timed([str(imm), "--json", "--method", "pdq", str(images)]))
    mean = {k: round(sum(r["wall_seconds"] for r in v) / len(v), 2) for k, v in runs.items()}
    timeline = _timeline(work / "out-side-by-side" / "summary.json")
    ours, theirs = mean["ours: dedup run --model multihash"], mean["immaculate --method pdq"]
    return {"images": str(images), "rounds": rounds, "runs": runs, "mean_wall_seconds": mean, "timeline": timeline,
            "ours_over_immaculate": round(ours / theirs, 2) if theirs else None}


def _timeline(summary_path: Path) -> dict:
    """A run's start-up lines and stages, in order, from its summary.json (empty if there is none)."""
    import json

    from dedup.summary import timeline_note

    if not summary_path.exists():
        return {}
    s = json.loads(summary_path.read_text())
    tl, out = s.get("timeline", {}), {}
    for name in ("process_start_to_run", "ray_start", "milvus_lite_start"):
        if name in tl:
            st = tl[name]
            out[name] = {"seconds": st.get("seconds"), "note": timeline_note(st)}
    for name, st in s.get("stages", {}).items():
        out[name] = {"seconds": st.get("seconds"), "note": str(st["background"]) if st.get("background") else ""}
    if "shutdown" in tl:
        out["shutdown"] = {"seconds": tl["shutdown"].get("seconds"), "note": "after summary.json"}
    return out



def side_by_side_markdown(sbs: dict, what: str) -> list[str]:
    lines = ["## Whole processes, side by side", "",
             f"{what}, each tool as a user runs it from a shell (a fresh output, Ray started by the run), in turn, "
             f"{sbs['rounds']} rounds:", "",
             "| process | wall s (each run) | mean wall s | CPU s (each run; the process and the children it reaped: "
             "not Ray's workers, which its raylet reaps) |", "|---|---|---|---|"]
    for name, runs in sbs["runs"].items():
        lines.append(f"| `{name}` | {', '.join(str(r['wall_seconds']) for r in runs)} | {sbs['mean_wall_seconds'][name]} | "
                     f"{', '.join(str(r['cpu_seconds']) for r in runs)} |")
    lines += ["", f"Ours over immaculate's: **{sbs['ours_over_immaculate']}x** the wall time."]
    if sbs.get("timeline"):
        lines += ["", "Where our last run's wall time went (its `summary.json`; one line after the other, except where the note says "
                  "beside or in the background):", "", "| line | seconds | note |", "|---|---|---|"]
        for name, st in sbs["timeline"].items():
            lines.append(f"| {name} | {st.get('seconds')} | {st.get('note', '')} |")
    return lines


def side_by_side_bench(src: Path, work: Path, results: Path, n: int, rounds: int = 2) -> dict:
    """``python -m bench --side-by-side N``: :func:`side_by_side` on the speed mode's N JPEGs (made from ``src``,
    reused); writes ``RESULTS/side-by-side-N.md`` and ``.json``."""
    import json
    import os
    import platform

    from bench.throughput import build_corpus

    images, corpus = build_corpus(src, work / f"throughput-corpus-{n}", n)
    sbs = side_by_side(images, work, rounds)
    sbs.update(corpus=corpus, machine={"cpus": os.cpu_count(), "platform": platform.platform()})
    if "error" in sbs:
        raise SystemExit(f"python -m bench --side-by-side: {sbs['error']}")
    md = "\n".join([f"# Side by side: {n} JPEGs", "", f"Machine: {os.cpu_count()} CPUs, {platform.platform()}.", "",
                    *side_by_side_markdown(sbs, f"{n} JPEGs of `python -m bench --throughput`'s kind (made from `{src}`)")]) + "\n"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"side-by-side-{n}.json").write_text(json.dumps(sbs, indent=2, default=str))
    (results / f"side-by-side-{n}.md").write_text(md)
    print(md)
    return sbs
