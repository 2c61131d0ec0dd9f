"""immaculate (PyPI 0.3.0: Rust core, PDQ and SSCD) as a peer: write path,cluster, print one JSON line.

Run with the immaculate venv (bench/peers/install.sh; CPython >= 3.12):

    bench/work/venvs/immaculate/bin/python bench/peers/run_immaculate.py --images DIR --method pdq --out OUT.csv

immaculate has no threshold option: each method uses its own (pdq: 31 bits of 256, any rotation or flip;
sscd and sscd_distilled: cosine 0.75); ``--threshold`` is accepted and ignored so that the bench can call
every runner alike. Its sets (exact and near) are joined by union-find into clusters; images in no set are
singletons and left out of the CSV (the scorer counts unlisted images as kept singletons). "seconds" is
the wall time of the whole ``immaculate`` process (interpreter, model load, decode, search), as a user
would time it.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


def clusters(sets: list[list[str]]) -> dict[str, int]:
    """Union-find over the sets; cluster ids in order of each cluster's first path (sorted)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for group in sets:
        for p in group[1:]:
            ra, rb = find(group[0]), find(p)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        find(group[0])
    ids: dict[str, int] = {}
    return {p: ids.setdefault(find(p), len(ids)) for p in sorted(parent)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", required=True, type=Path)
    ap.add_argument("--method", default="pdq", choices=["pdq", "phash", "sscd", "sscd_distilled"])
    ap.add_argument("--threshold", help="ignored: immaculate's thresholds are fixed per method")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    exe = shutil.which("immaculate", path=str(Path(sys.executable).parent)) or "immaculate"
    t0 = time.perf_counter()
    r = subprocess.run([exe, "--json", "--method", args.method, str(args.images)], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        print(r.stderr[-2000:], file=sys.stderr)
        return r.returncode
    found = json.loads(r.stdout)
    cl = clusters([[str(Path(p).resolve()) for p in s] for s in found["exact"] + found["near"]])
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "cluster"])
        w.writerows(sorted(cl.items()))
    for p in found["skipped"]:
        print(f"skipped by immaculate: {p}", file=sys.stderr)
    print(json.dumps({"tool": f"immaculate-{args.method}", "seconds": round(seconds, 3), "clustered": len(cl),
                      "skipped": len(found["skipped"]), "version": "0.3.0"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
