"""imagededup PHash as a peer: cluster the images under --images, write path,cluster, print one JSON line.

Run with the imagededup venv (bench/peers/install.sh):

    bench/work/venvs/imagededup/bin/python bench/peers/run_imagededup.py --images DIR --threshold 10 --out OUT.csv

--threshold is PHash's max_distance_threshold: the largest Hamming distance (0..64) between two 64-bit
perceptual hashes for them to count as duplicates. Clusters are the connected components of imagededup's
duplicate map. The CSV lists every image imagededup hashed (singletons included), sorted by path, paths
absolute and resolved; files it cannot read or does not accept (see README) are left out of the CSV and
named on stderr. "seconds" is the wall time of encode_images + find_duplicates (not the interpreter and
torch import, reported separately as "startup_seconds").
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

T_START = time.perf_counter()


def components(nodes: list[str], duplicates: dict[str, list]) -> dict[str, int]:
    """Union-find over the duplicate map; cluster ids numbered by each component's first path (sorted)."""
    parent = {n: n for n in nodes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, dups in duplicates.items():
        for b in dups:
            b = b[0] if isinstance(b, (tuple, list)) else b
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    ids: dict[str, int] = {}
    out = {}
    for n in sorted(nodes):
        out[n] = ids.setdefault(find(n), len(ids))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", required=True, type=Path, help="folder of images (searched recursively)")
    ap.add_argument("--threshold", required=True, type=int, help="max Hamming distance, 0..64 (imagededup default 10)")
    ap.add_argument("--out", required=True, type=Path, help="CSV to write (path,cluster)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="processes for encoding and search (imagededup's default: all CPUs)")
    ap.add_argument("--no-recursive", action="store_true", help="only the top folder")
    ap.add_argument("--verbose", action="store_true", help="imagededup's progress bars and log lines")
    args = ap.parse_args(argv)

    if not args.verbose:
        logging.disable(logging.WARNING - 1)  # keep imagededup's per-file warnings, drop its INFO lines
    warnings.filterwarnings("ignore", message="Parameter num_enc_workers has no effect")
    from imagededup.methods import PHash
    from imagededup.utils.general_utils import generate_files

    images = args.images.absolute()
    if not images.is_dir():
        ap.error(f"--images {images} is not a folder")
    recursive = not args.no_recursive
    startup = time.perf_counter() - T_START

    phasher = PHash(verbose=args.verbose)
    t0 = time.perf_counter()
    encodings = phasher.encode_images(image_dir=str(images), recursive=recursive, num_enc_workers=args.workers)
    # imagededup raises on an empty encoding map (no readable image): that is an empty result here
    duplicates = phasher.find_duplicates(
        encoding_map=encodings, max_distance_threshold=args.threshold, scores=False, num_dist_workers=args.workers
    ) if encodings else {}
    seconds = time.perf_counter() - t0

    # keys are paths relative to --images; report absolute, resolved paths
    names = sorted(encodings)
    cluster = components(names, duplicates)
    seen = {str(f.relative_to(images)) for f in generate_files(images, recursive)}
    skipped = sorted(seen - set(names))
    for s in skipped:
        print(f"imagededup skipped (unreadable or unsupported format): {images / s}", file=sys.stderr)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted((str((images / n).resolve()), cluster[n]) for n in names)
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "cluster"])
        w.writerows(rows)

    sizes = Counter(cluster.values())
    print(json.dumps({
        "tool": "imagededup-phash",
        "threshold": args.threshold,
        "seconds": round(seconds, 3),
        "images": len(names),
        "skipped": len(skipped),
        "clusters": len(sizes),
        "duplicate_clusters": sum(1 for n in sizes.values() if n > 1),
        "startup_seconds": round(startup, 3),
        "workers": args.workers,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
