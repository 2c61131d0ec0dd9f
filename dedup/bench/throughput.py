"""``dedup bench --throughput N``: ResNet-50 end to end against the bare model, on this machine's hardware.

On a machine with a GPU the job runs as it would for a user there (decode tasks on the CPUs feeding one
embedding actor per GPU, bf16 weights, CUDA graphs); without one, the CPU path (decode + embed actors, ONNX Runtime). The
bare model is the same :class:`dedup.ops.models.ResNet50Features` on preprocessed batches of the job's batch
size, timed just before and just after the job (the mean is the baseline). Random weights (a speed run:
the clusters mean nothing), exact search at a high threshold (random weights make most pairs look alike).

The corpus is N distinct JPEGs made from a folder of photos (:func:`build_corpus`), so it can be as large as
a fast machine needs without shipping N files: a random crop of 50-100 % of each side, a random mirror,
a long side of 320-640 px (the ImageNet photos' range) and JPEG quality 75-95, each seeded by its index.

Writes ``RESULTS/throughput-<device>.json`` and ``.md`` and prints the Markdown.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

CORPUS_VERSION = 1


def _photos(src: Path) -> list[Path]:
    from dedup.sources import WDS_IMAGE_EXT

    photos = sorted(p for p in Path(src).rglob("*") if p.is_file() and p.suffix.lower() in WDS_IMAGE_EXT)
    if not photos:
        raise ValueError(f"no photos under {src}")
    return photos


def _make(args: tuple[list[str], int, int, int, str]) -> int:
    import numpy as np
    from PIL import Image, ImageOps

    photos, start, stop, seed, out = args
    for i in range(start, stop):
        rng = np.random.default_rng([seed, i])
        with Image.open(photos[i % len(photos)]) as im:
            img = ImageOps.exif_transpose(im).convert("RGB")
        fw, fh = rng.uniform(0.5, 1.0, size=2)
        w, h = max(16, round(img.width * fw)), max(16, round(img.height * fh))
        x, y = int(rng.integers(0, img.width - w + 1)), int(rng.integers(0, img.height - h + 1))
        img = img.crop((x, y, x + w, y + h))
        if rng.random() < 0.5:
            img = ImageOps.mirror(img)
        scale = rng.uniform(320, 640) / max(img.size)
        img = img.resize((max(16, round(img.width * scale)), max(16, round(img.height * scale))), Image.Resampling.BILINEAR)
        path = Path(out) / f"{i // 1000:04d}" / f"img{i:07d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, "JPEG", quality=int(rng.integers(75, 96)))
    return stop - start


def build_corpus(src: Path, out: Path, n: int, seed: int = 0, workers: int | None = None) -> tuple[Path, dict]:
    """N distinct JPEGs under OUT/images, made from the photos under SRC (see the module's doc); reused when
    OUT/corpus.json says it was made from the same photos with the same N and seed."""
    photos = [str(p) for p in _photos(src)]
    images = out / "images"
    key = {"version": CORPUS_VERSION, "n": n, "seed": seed, "photos": len(photos), "src": str(Path(src).resolve())}
    marker = out / "corpus.json"
    if marker.exists() and images.is_dir():
        old = json.loads(marker.read_text())
        if {k: old.get(k) for k in key} == key:
            return images, {**old, "reused": True}
    shutil.rmtree(images, ignore_errors=True)
    marker.unlink(missing_ok=True)
    images.mkdir(parents=True)
    t0 = time.perf_counter()
    step = 250
    jobs = [(photos, s, min(n, s + step), seed, str(images)) for s in range(0, n, step)]
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        made = sum(pool.map(_make, jobs))
    info = {**key, "images": made, "megabytes": round(sum(f.stat().st_size for f in images.rglob("*.jpg")) / 1e6, 1),
            "build_seconds": round(time.perf_counter() - t0, 1)}
    marker.write_text(json.dumps(info, indent=2))
    return images, {**info, "reused": False}


def device_info() -> dict:
    """What the run ran on: the GPU's name where there is one, the CPU model and count."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"cpu": cpu, "cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__}
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(), cuda=torch.version.cuda,
                    dtype="bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    return info


def device_tag(info: dict) -> str:
    name = info.get("gpu") or "cpu"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def throughput_bench(src: Path, work: Path, results: Path, n: int, embed_batch: int | None = None,
                     threshold: float = 0.9999, bare_seconds: float = 10.0) -> dict:
    import ray

    from dedup.bench import speed
    from dedup.bench.run import first_run
    from dedup.config import DedupConfig

    work.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    images, corpus_info = build_corpus(src, work / f"throughput-corpus-{n}", n)
    dev = device_info()
    device = "cuda" if "gpu" in dev else "cpu"
    cfg = DedupConfig(inputs=[str(images)], output=str(work / "out-throughput"), weights="random", threshold=threshold,
                      search_engine="exact")
    if embed_batch:
        cfg.embed_batch = int(embed_batch)
    started = not ray.is_initialized()
    if started:
        from dedup.ray_env import loopback_only

        loopback_only()  # the bench's own Ray on loopback, as a local run's
        ray.init(include_dashboard=False, logging_level="ERROR")
    try:
        bare_kw = {"batch": cfg.resolved_embed_batch(device == "cuda"), "device": device, "min_seconds": bare_seconds, "warmup": 3 if device == "cuda" else 1}
        summary, before, after, bare = speed.bracketed(lambda: first_run(cfg), **bare_kw)
    finally:
        if started:
            ray.shutdown()
    de = summary["stages"]["decode_embed"]
    report = {
        "device": dev, "corpus": corpus_info,
        "job": {"embed_batch": bare_kw["batch"], "threshold": threshold, "search": "exact",
                "embed_resources": summary["parameters"]["embed_resources"]},
        "end_to_end_images_per_second": summary["images_per_second"], "total_seconds": summary["total_seconds"],
        "decode_embed_images_per_second": de["images_per_second"],
        "bare_model_images_per_second": bare, "bare_model": {"before_job": before, "after_job": after},
        "decode_embed_over_bare_model": round(de["images_per_second"] / bare, 3),
        "end_to_end_over_bare_model": round(summary["images_per_second"] / bare, 3),
        "stages": summary["stages"],
    }
    tag = device_tag(dev)
    (results / f"throughput-{tag}.json").write_text(json.dumps(report, indent=2, default=str))
    md = to_markdown(report)
    (results / f"throughput-{tag}.md").write_text(md)
    print(md)
    return report


def to_markdown(r: dict) -> str:
    d, c, j = r["device"], r["corpus"], r["job"]
    hw = f"{d['gpu']} ({d['dtype']} weights, CUDA {d['cuda']}) + {d['cpus']} CPUs ({d['cpu']})" if "gpu" in d else f"{d['cpus']} CPUs ({d['cpu']}), no GPU"
    res = j["embed_resources"]
    lines = [
        f"# ResNet-50 throughput: {d.get('gpu') or 'CPU'}",
        "",
        f"Machine: {hw}; torch {d['torch']}; {d['platform']}.",
        f"Corpus: {c['images']} distinct JPEGs ({c['megabytes']} MB) made from {c['photos']} photos (`dedup bench --throughput {c['n']}`).",
        f"Job: `--weights random --search-engine exact --threshold {j['threshold']} --embed-batch {j['embed_batch']}`; "
        f"{res.get('actors')} embedding actor(s) on {res.get('device')}, backend {res.get('backend')}.",
        "",
        "| what | images/s | ratio to the bare model |",
        "|---|---|---|",
        f"| bare model (mean of {r['bare_model']['before_job']['images_per_second']} before and "
        f"{r['bare_model']['after_job']['images_per_second']} after the job; batch {j['embed_batch']}) | {r['bare_model_images_per_second']} | 1 |",
        f"| decode + embed stage | {r['decode_embed_images_per_second']} | {r['decode_embed_over_bare_model']} |",
        f"| end to end ({r['total_seconds']} s) | {r['end_to_end_images_per_second']} | {r['end_to_end_over_bare_model']} |",
        "",
        "| stage | seconds | note |",
        "|---|---|---|",
    ]
    for name, st in r["stages"].items():
        note = {k: v for k, v in st.items() if k in ("images_per_second", "decode_images_per_cpu_second", "model_images_per_second",
                                                     "background", "step_seconds", "unique_edges", "files_per_second")}
        lines.append(f"| {name} | {st.get('seconds')} | {json.dumps(note) if note else ''} |")
    return "\n".join(lines) + "\n"
