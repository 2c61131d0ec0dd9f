"""``python -m bench --scale-job N``: the whole job (``--model multihash``) on N image files, then ``dedup apply``.

The files are made here from the shared photos (kept out of the repository, reused while N, the seed and
the photos are the same): small JPEGs (a random crop of 40-100 % of each side, a long side of 48-96 px, JPEG
quality 70-95), so that a million of them fit a few GB of disk. Among them, planted duplicates: 5 % are a
byte copy of an earlier file, 10 % the same crop of an earlier file saved again at another JPEG quality and
size (a near copy the hash finds). What is measured: wall time per stage (the job's own ``summary.json``),
peak memory of the driver and of the driver with every process it started (Ray workers, the Milvus Lite
server), the size of every output, the report's size and how many clusters it shows, and ``dedup apply``
(the plan, then ``--execute --link``) with its time and peak memory.

Writes ``RESULTS/scale-job-<N>.json`` and ``.md`` and prints the Markdown.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.throughput import photo_files, reuse_or_reset

CORPUS_VERSION = 1
EXACT_COPY, NEAR_COPY = 0.05, 0.10


def _name(out: str, i: int) -> Path:
    return Path(out) / f"{i // 1000:04d}" / f"img{i:07d}.jpg"


def _kind(seed: int, i: int) -> tuple[str, int]:
    """What file ``i`` is: ``("new", i)``, or a byte copy / near copy of an earlier file (its index)."""
    import numpy as np

    rng = np.random.default_rng([seed, i, 1])
    r = rng.random()
    if i < 10 or r >= EXACT_COPY + NEAR_COPY:
        return "new", i
    return ("exact" if r < EXACT_COPY else "near"), int(rng.integers(0, i))


PHOTO_CACHE_BYTES = 1 << 30  # per worker process
_photos: dict[str, object] = {}


def _photo(path: str):
    """A photo upright in RGB, decoded once per worker where it fits :data:`PHOTO_CACHE_BYTES`: the files take
    the photos in turn, again and again, and a photo's decode was most of a file's cost. The first photos
    that fit stay (no eviction: an LRU cache misses every time on a cycle longer than itself)."""
    from PIL import Image, ImageOps

    img = _photos.get(path)
    if img is None:
        with Image.open(path) as im:
            img = ImageOps.exif_transpose(im).convert("RGB")
        if sum(x.width * x.height * 3 for x in _photos.values()) + img.width * img.height * 3 <= PHOTO_CACHE_BYTES:
            _photos[path] = img
    return img


def _image(photos: list[str], seed: int, i: int, variant: int = 0):
    """File ``i``'s picture: its photo's crop, scaled; ``variant`` > 0 rescales the same crop a little."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng([seed, i])
    img = _photo(photos[i % len(photos)])  # crop and resize make new images: the cached one is not changed
    fw, fh = rng.uniform(0.4, 1.0, size=2)
    w, h = max(16, round(img.width * fw)), max(16, round(img.height * fh))
    x, y = int(rng.integers(0, img.width - w + 1)), int(rng.integers(0, img.height - h + 1))
    img = img.crop((x, y, x + w, y + h))
    side = rng.uniform(48, 96) * (1.0 + 0.15 * variant)
    scale = side / max(img.size)
    img = img.resize((max(8, round(img.width * scale)), max(8, round(img.height * scale))), Image.Resampling.BILINEAR)
    return img, int(rng.integers(70, 96))


def _make(args: tuple[list[str], int, int, int, str]) -> dict:
    photos, start, stop, seed, out = args
    counts = {"new": 0, "exact": 0, "near": 0}
    for i in range(start, stop):
        kind, of = _kind(seed, i)
        path = _name(out, i)
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "exact":
            img, quality = _image(photos, seed, of)
        elif kind == "near":
            img, quality = _image(photos, seed, of, variant=1)
            quality = max(60, quality - 15)
        else:
            img, quality = _image(photos, seed, i)
        img.save(path, "JPEG", quality=quality)
        counts[kind] += 1
    return counts


def build_files(src: Path, out: Path, n: int, seed: int = 0, workers: int | None = None) -> tuple[Path, dict]:
    """N JPEGs under OUT/images (see the module's doc); reused when OUT/files.json says they were made from
    the same photos with the same N and seed."""
    photos = [str(p) for p in photo_files(src)]
    images = out / "images"
    key = {"version": CORPUS_VERSION, "n": n, "seed": seed, "photos": len(photos), "src": str(Path(src).resolve())}
    marker = out / "files.json"
    old = reuse_or_reset(images, marker, key)
    if old is not None:
        return images, old
    t0 = time.perf_counter()
    step = 1000
    jobs = [(photos, s, min(n, s + step), seed, str(images)) for s in range(0, n, step)]
    counts = {"new": 0, "exact": 0, "near": 0}
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        for c in pool.map(_make, jobs):
            counts = {k: counts[k] + c[k] for k in counts}
    info = {**key, "images": sum(counts.values()), "planted": counts, "megabytes": round(_size(images) / 1e6, 1),
            "build_seconds": round(time.perf_counter() - t0, 1)}
    marker.write_text(json.dumps(info, indent=2))
    return images, {**info, "reused": False}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def output_sizes(output: Path) -> dict[str, int]:
    """Bytes of every file and folder at the top of the output folder."""
    return {p.name + ("/" if p.is_dir() else ""): _size(p) for p in sorted(output.iterdir())}


def scale_job(n: int, work: Path, src: Path, results: Path | None = None, seed: int = 0, apply_files: bool = True,
              **overrides) -> dict:
    """Build the files, run the whole job on them (multihash, a first run), then ``dedup apply``.
    ``overrides``: other job options (config fields), as a user would add them."""
    from dedup import run
    from bench.scale import PeakMemory
    from dedup.config import DedupConfig

    work = Path(work).resolve()
    images, files = build_files(src, work / f"job-files-{n}", n, seed)
    output = work / f"job-out-{n}"
    shutil.rmtree(output, ignore_errors=True)
    cfg = DedupConfig(inputs=[str(images)], output=str(output), model="multihash", fresh=True, **overrides)
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        summary = run(cfg)
    job_s = time.perf_counter() - t0
    stages = {k: {"seconds": v.get("seconds"), **({"reused": True} if v.get("reused") else {})}
              for k, v in summary.get("stages", {}).items() if isinstance(v, dict)}
    search = summary.get("stages", {}).get("search", {})
    row = {"n": n, "files": files, "options": {"model": "multihash", **overrides}, "job_seconds": round(job_s, 1), "stages": stages,
           "peak_driver_mb": round(mem.driver / 2**20), "peak_all_processes_mb": round(mem.total / 2**20),
           "counts": {k: v for k, v in summary.get("counts", {}).items() if k in ("images", "errors", "clusters", "kept", "duplicates")},
           "search": {k: search.get(k) for k in ("mode", "why", "requests", "unique_edges", "saturated_brute_forced")},
           "outputs": output_sizes(output), "machine_cpus": os.cpu_count()}
    report = output / "report.html"
    if report.exists():
        html = report.read_text(errors="replace")
        row["report"] = {"bytes": report.stat().st_size, "clusters_shown": html.count('<section class="cluster"')}
    row["apply"] = measure_apply(output, work / f"job-apply-{n}", apply_files)
    if results is not None:
        results.mkdir(parents=True, exist_ok=True)
        (results / f"scale-job-{n}.json").write_text(json.dumps(row, indent=2, default=str))
        (results / f"scale-job-{n}.md").write_text(to_markdown(row))
    print(to_markdown(row))
    return row


def measure_apply(output: Path, dest: Path, execute_: bool = True) -> dict:
    """``dedup apply OUTPUT --to DEST --link``: the plan, then (``execute_``) the writing; time and memory."""
    from dedup.apply import execute, make_plan
    from bench.scale import PeakMemory

    shutil.rmtree(dest, ignore_errors=True)
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        plan = make_plan(output, str(dest), link=True)
        out = {"actions": len(plan.actions), "plan_seconds": round(time.perf_counter() - t0, 1)}
        if execute_:
            t0 = time.perf_counter()
            execute(plan)
            out.update(execute_seconds=round(time.perf_counter() - t0, 1), written=sum(1 for _ in dest.rglob("*.jpg")))
    out["peak_driver_mb"] = round(mem.driver / 2**20)
    return out


def to_markdown(r: dict) -> str:
    f = r["files"]
    opts = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in r["options"].items())
    lines = [f"## The whole job at {r['n']:,} images ({opts}; {r['machine_cpus']} CPUs)", "",
             f"Files: {f['images']:,} JPEGs, {f['megabytes']:,} MB, made from {f['photos']} photos in {f.get('build_seconds')} s "
             f"(planted: {f['planted']['exact']:,} byte copies, {f['planted']['near']:,} near copies). "
             f"Job: {r['job_seconds']} s; peak memory {r['peak_driver_mb']:,} MB in the driver, "
             f"{r['peak_all_processes_mb']:,} MB in all its processes. Counts: {r['counts']}. "
             f"Search: {r['search'].get('why')}.", "",
             "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v.get('seconds')}{' (reused)' if v.get('reused') else ''} |" for k, v in r["stages"].items()]
    lines += ["", "| output | MB |", "|---|---|"]
    lines += [f"| {k} | {v / 1e6:,.1f} |" for k, v in r["outputs"].items()]
    if "report" in r:
        lines += ["", f"report.html: {r['report']['bytes'] / 1e6:,.1f} MB, {r['report']['clusters_shown']:,} clusters shown (the manifest has them all)."]
    a = r["apply"]
    lines += ["", f"dedup apply --link: plan of {a['actions']:,} files in {a['plan_seconds']} s"
              + (f", executed in {a['execute_seconds']} s ({a['written']:,} files)" if "execute_seconds" in a else "")
              + f"; peak driver memory {a['peak_driver_mb']:,} MB."]
    return "\n".join(lines) + "\n"
