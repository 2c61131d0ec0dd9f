"""fastdup as a peer: cluster the images under --images, write path,cluster, print one JSON line.

Run with the fastdup venv (bench/peers/install.sh):

    bench/work/venvs/fastdup/bin/python bench/peers/run_fastdup.py --images DIR --threshold 0.9 --out OUT.csv

--threshold is fastdup's cosine similarity threshold, used both for its similarity graph (run(threshold=))
and for its connected components (run(cc_threshold=)); clusters are fastdup's connected components
(fd.connected_components()); valid images outside every component are singletons. The CSV lists every
image fastdup processed, sorted by path, paths absolute and resolved; files it skips (extensions it does
not know, such as .gif .ppm .pgm .pbm .svg, and images it cannot decode) are left out of the CSV and
named on stderr. fastdup's work dir is a temporary folder (kept with --work-dir). "seconds" is the wall
time of fastdup.create + run + connected_components (not the interpreter and import: "startup_seconds").
Telemetry is off (SENTRY_OPT_OUT=1); fastdup's own console output goes to stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

T_START = time.perf_counter()
os.environ.setdefault("SENTRY_OPT_OUT", "1")  # before `import fastdup`: no telemetry, no network


@contextlib.contextmanager
def stdout_to_stderr():
    """fastdup's C++ engine and Python code print banners/progress on fd 1; keep stdout for the JSON line."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def all_files(root: Path) -> list[Path]:
    """Every non-hidden file under root (recursive), as fastdup would walk it."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        out += [Path(dirpath) / f for f in filenames if not f.startswith(".")]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", required=True, type=Path, help="folder of images (searched recursively)")
    ap.add_argument("--threshold", required=True, type=float, help="cosine similarity, e.g. 0.9 (fastdup defaults: 0.9 graph, 0.96 components)")
    ap.add_argument("--out", required=True, type=Path, help="CSV to write (path,cluster)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="fastdup num_threads (default: all CPUs)")
    ap.add_argument("--k", type=int, default=2, help="nearest_neighbors_k: neighbours kept per image (fastdup default 2)")
    ap.add_argument("--work-dir", type=Path, default=None, help="keep fastdup's work dir here (default: a temporary folder, deleted)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    images = args.images.resolve()
    if not images.is_dir():
        ap.error(f"--images {images} is not a folder")

    with stdout_to_stderr():
        import fastdup
    startup = time.perf_counter() - T_START

    found = {str(p.resolve()) for p in all_files(images)}
    if not found:  # fastdup's run() raises "Fastdup execution failed" on an empty folder
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("path,cluster\n")
        print(json.dumps({"tool": "fastdup", "threshold": args.threshold, "seconds": 0.0, "images": 0, "skipped": 0,
                          "clusters": 0, "duplicate_clusters": 0, "startup_seconds": round(startup, 3)}), flush=True)
        return 0

    with contextlib.ExitStack() as stack:
        if args.work_dir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fastdup-work-")))
        else:
            work = args.work_dir.resolve()
            work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with stdout_to_stderr():
            fd = fastdup.create(work_dir=str(work), input_dir=str(images))
            rc = fd.run(
                threshold=args.threshold,
                cc_threshold=args.threshold,
                nearest_neighbors_k=args.k,
                num_threads=args.workers,
                overwrite=True,
                verbose=args.verbose,
            )
            if rc not in (0, None):
                print(f"fastdup run failed with code {rc}", file=sys.stderr)
                return 1
            cc = fd.connected_components()
            cc = cc[0] if isinstance(cc, tuple) else cc
        seconds = time.perf_counter() - t0
        annot = fd.annotations(valid_only=False)

    valid = annot[annot["is_valid"].astype(bool)]
    paths = sorted(str(Path(p).resolve()) for p in valid["filename"])
    # fastdup's component of each image in a non-singleton component; everyone else alone
    comp = {}
    if cc is not None and len(cc):
        for p, c in zip(cc["filename"], cc["component_id"]):
            if isinstance(p, str):
                comp[str(Path(p).resolve())] = ("cc", int(c))
    ids: dict = {}
    cluster = {p: ids.setdefault(comp.get(p, ("single", p)), len(ids)) for p in paths}

    invalid = annot[~annot["is_valid"].astype(bool)]
    reasons = {str(Path(p).resolve()): e for p, e in zip(invalid["filename"], invalid.get("error_code", ["invalid"] * len(invalid)))}
    skipped = sorted(found - set(paths))
    for s in skipped:
        print(f"fastdup skipped ({reasons.get(s, 'not read: extension not supported')}): {s}", file=sys.stderr)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "cluster"])
        w.writerows((p, cluster[p]) for p in paths)

    sizes = Counter(cluster.values())
    print(json.dumps({
        "tool": "fastdup",
        "threshold": args.threshold,
        "seconds": round(seconds, 3),
        "images": len(paths),
        "skipped": len(skipped),
        "clusters": len(sizes),
        "duplicate_clusters": sum(1 for n in sizes.values() if n > 1),
        "startup_seconds": round(startup, 3),
        "workers": args.workers,
        "k": args.k,
        "version": getattr(fastdup, "__version__", None),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
