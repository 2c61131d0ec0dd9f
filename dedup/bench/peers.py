"""Peer tools run on the same corpus, each from its own virtual environment (bench/peers/install.sh).

Each runner writes ``path,cluster``; the image kept per cluster is its first path (what a user of a
duplicate map does), so the same scorer applies.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd

from dedup.bench.score import score_parts

ROOT = Path(__file__).resolve().parents[2]
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
        pred["is_canonical"] = ~pred.duplicated("cluster")
        s = {"tool": tool, "threshold": th, "seconds": info["seconds"], **score_parts(pred, truth)}
        s["images_per_second"] = round(s["images"] / info["seconds"], 2) if info["seconds"] else None
        if best is None or s["pair_f1"] > best["pair_f1"]:
            best = s
    return best
