"""``python -m bench --throughput N``: ResNet-50 end to end against the bare model, on this machine's hardware.

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


def photo_files(src: Path) -> list[Path]:
    """The image files under ``src`` (by extension), sorted: what the made corpora are drawn from."""
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


def reuse_or_reset(images: Path, marker: Path, key: dict) -> dict | None:
    """A built corpus's info (``marker``'s JSON, ``reused`` set) when it was made with ``key``; else None,
    with ``images`` emptied and ``marker`` removed, for a fresh build."""
    if marker.exists() and images.is_dir():
        old = json.loads(marker.read_text())
        if {k: old.get(k) for k in key} == key:
            return {**old, "reused": True}
    shutil.rmtree(images, ignore_errors=True)
    marker.unlink(missing_ok=True)
    images.mkdir(parents=True)
    return None


def build_corpus(src: Path, out: Path, n: int, seed: int = 0, workers: int | None = None) -> tuple[Path, dict]:
    """N distinct JPEGs under OUT/images, made from the photos under SRC (see the module's doc); reused when
    OUT/corpus.json says it was made from the same photos with the same N and seed."""
    photos = [str(p) for p in photo_files(src)]
    images = out / "images"
    key = {"version": CORPUS_VERSION, "n": n, "seed": seed, "photos": len(photos), "src": str(Path(src).resolve())}
    marker = out / "corpus.json"
    old = reuse_or_reset(images, marker, key)
    if old is not None:
        return images, old
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


def decode_alone(images: Path, cfg, workers: int | None = None, limit: int | None = None) -> dict:
    """The job's per-image CPU work without the job: every file read and put through the decode kernel the
    job's decoders run (:func:`dedup.ops.decode.decode_image`: the model's input, or for a hash model the
    hash itself), in a process per CPU. The baseline a hash model's end to end is compared to."""
    files = sorted(str(p) for p in Path(images).rglob("*.jpg"))[:limit]
    workers = workers or os.cpu_count() or 1
    chunks = [files[i::workers] for i in range(workers)]
    args = (cfg.image_size, cfg.max_pixels, cfg.hash_name if cfg.is_hash else None, cfg.preprocess)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        done = sum(pool.map(_decode_chunk, chunks, [args] * len(chunks)))
    seconds = time.perf_counter() - t0
    return {"images": done, "workers": workers, "seconds": round(seconds, 3), "images_per_second": round(done / seconds, 2)}


def _decode_chunk(files: list[str], args) -> int:
    from dedup.ops.decode import decode_image

    size, max_pixels, hash_name, resize = args
    for f in files:
        with open(f, "rb") as fh:
            decode_image(fh.read(), size, max_pixels, hash_name, resize)
    return len(files)


MODELS = ("sscd", "sscd-default", "multihash")
DEFAULT_JOB = "-default"  # MODEL-default: the job exactly as a user runs it (content check, kept image, report)


def throughput_bench(src: Path, work: Path, results: Path, n: int, embed_batch: int | None = None,
                     threshold: float = 0.9999, bare_seconds: float = 10.0, models=MODELS) -> dict:
    """For each of ``models`` on one corpus of N JPEGs: the bare model (learned models; timed just before and
    after the job), decode alone (:func:`decode_alone`), the job's decode + embed stage and the job end to
    end with its timeline (start-up, stages, shutdown). A learned model runs with its real weights where
    they are here (SSCD's ONNX), else random, at a threshold nothing reaches (a speed run: the corpus's
    crops of one photo would otherwise be clustered and checked); a hash model with its defaults, as a
    user runs it. Ray is started by each job itself, as a user's run starts it."""
    from bench import speed
    from bench.run import first_run
    from dedup.config import DedupConfig

    work.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    images, corpus_info = build_corpus(src, work / f"throughput-corpus-{n}", n)
    dev = device_info()
    device = "cuda" if "gpu" in dev else "cpu"
    report = {"device": dev, "corpus": corpus_info, "models": {}}
    for model in models:
        as_user = model.endswith(DEFAULT_JOB)
        cfg = DedupConfig(inputs=[str(images)], output=str(work / f"out-throughput-{model}"), model=model.removesuffix(DEFAULT_JOB),
                          report=as_user)
        if not cfg.is_hash and not as_user:
            cfg.threshold, cfg.verify, cfg.search_engine = threshold, "off", "exact"
            if model == "resnet50":
                cfg.weights = "random"
        if embed_batch:
            cfg.embed_batch = int(embed_batch)
        cfg = cfg.validate()
        alone = decode_alone(images, cfg)
        r = {"decode_alone": alone, "config": {k: getattr(cfg, k) for k in ("model", "threshold", "verify", "search_engine", "image_size", "preprocess")}}
        if cfg.is_hash:
            summary = first_run(cfg)
        else:
            bare_kw = {"batch": cfg.resolved_embed_batch(device == "cuda"), "device": device, "min_seconds": bare_seconds,
                       "warmup": 3 if device == "cuda" else 1, "model": cfg.learned_model, "shape": (cfg.image_size, cfg.image_size)}
            summary, before, after, bare = speed.bracketed(lambda: first_run(cfg), **bare_kw)
            r.update(bare_model_images_per_second=bare, bare_model={"before_job": before, "after_job": after})
        de = summary["stages"]["decode_embed"]
        r.update(end_to_end_images_per_second=summary["images_per_second"], total_seconds=summary["total_seconds"],
                 decode_embed_images_per_second=de["images_per_second"], stages=summary["stages"], timeline=summary.get("timeline", {}),
                 embed_resources=summary["parameters"].get("embed_resources"), counts=summary["counts"])
        base = r.get("bare_model_images_per_second") or alone["images_per_second"]
        r["baseline"] = "bare model" if "bare_model_images_per_second" in r else "decode alone"
        r["decode_embed_over_baseline"] = round(de["images_per_second"] / base, 3)
        r["end_to_end_over_baseline"] = round(summary["images_per_second"] / base, 3)
        report["models"][model] = r
    tag = device_tag(dev)
    (results / f"throughput-{tag}.json").write_text(json.dumps(report, indent=2, default=str))
    md = to_markdown(report)
    (results / f"throughput-{tag}.md").write_text(md)
    print(md)
    return report


def to_markdown(r: dict) -> str:
    from dedup.summary import timeline_note

    d, c = r["device"], r["corpus"]
    hw = f"{d['gpu']} ({d['dtype']} weights, CUDA {d['cuda']}) + {d['cpus']} CPUs ({d['cpu']})" if "gpu" in d else f"{d['cpus']} CPUs ({d['cpu']}), no GPU"
    lines = [
        f"# Throughput: {d.get('gpu') or 'CPU'}",
        "",
        f"Machine: {hw}; torch {d['torch']}; {d['platform']}.",
        f"Corpus: {c['images']} JPEGs ({c['megabytes']} MB) made from {c['photos']} photos (`python -m bench --throughput {c['n']}`: "
        "a random 50-100 % crop of a photo, mirror, long side 320-640 px, quality 75-95; different bytes, but crops of one photo are near copies).",
    ]
    for model, m in r["models"].items():
        cfg, res = m["config"], m.get("embed_resources") or {}
        lines += ["", f"## --model {model}", "",
                  f"Job: `--model {model}`" + ("" if model in ("multihash",) or cfg.get("verify") is None else
                                              f" `--threshold {cfg['threshold']} --verify {cfg['verify']} --search-engine {cfg['search_engine']}`")
                  + f"; {res.get('actors')} embedding actor(s) on {res.get('device')}, backend {res.get('backend')}; "
                  f"{m['counts']['clusters']} clusters, {m['counts']['duplicates']} duplicates.", "",
                  "| what | images/s | ratio to the " + m["baseline"] + " |", "|---|---|---|"]
        a = m["decode_alone"]
        if "bare_model_images_per_second" in m:
            b = m["bare_model"]
            lines.append(f"| bare model (mean of {b['before_job']['images_per_second']} before and {b['after_job']['images_per_second']} "
                         f"after the job; batch {b['before_job']['batch']}) | {m['bare_model_images_per_second']} | 1 |")
            lines.append(f"| decode alone ({a['workers']} processes, {a['seconds']} s) | {a['images_per_second']} | "
                         f"{round(a['images_per_second'] / m['bare_model_images_per_second'], 3)} |")
        else:
            lines.append(f"| decode + hash alone ({a['workers']} processes, {a['seconds']} s) | {a['images_per_second']} | 1 |")
        lines.append(f"| decode + embed stage | {m['decode_embed_images_per_second']} | {m['decode_embed_over_baseline']} |")
        lines.append(f"| end to end ({m['total_seconds']} s) | {m['end_to_end_images_per_second']} | {m['end_to_end_over_baseline']} |")
        lines += ["", "| line | seconds | note |", "|---|---|---|"]
        for name, st in m.get("timeline", {}).items():
            if name != "shutdown":
                lines.append(f"| {name} | {st.get('seconds')} | {timeline_note(st)} |")
        for name, st in m["stages"].items():
            note = {k: v for k, v in st.items() if k in ("images_per_second", "decode_images_per_cpu_second", "model_images_per_second",
                                                         "background", "unique_edges", "files_per_second", "candidates", "why", "mode",
                                                         "edges_checked", "cpu_ms_per_pair", "template_pairs", "cpu_ms_per_candidate")}
            lines.append(f"| {name} | {st.get('seconds')} | {json.dumps(note) if note else ''} |")
        if "shutdown" in m.get("timeline", {}):
            lines.append(f"| shutdown (after the summary) | {m['timeline']['shutdown']['seconds']} | |")
    return "\n".join(lines) + "\n"
