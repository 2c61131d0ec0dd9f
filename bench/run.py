"""``python -m bench``: quality and speed on a labelled corpus, ours and the peers', in one run.

The corpus (:mod:`bench.corpus`) has three parts, scored together and apart (:func:`score_parts`):
standard copies, hard copies, and near-miss negatives (different content from one photo). Each of our
models runs once at the lowest threshold of its sweep; the sweep re-clusters the stored edges at every
threshold without embedding again, so the row at the default threshold and the best of the sweep come
from the same run. Writes ``RESULTS/bench.md`` and ``RESULTS/bench.json`` and prints the table.

``--preprocess`` (:func:`preprocess_bench`) compares SSCD's input sizes and resizes instead, each a job run
with the bare model timed at the same size in the same run: ``RESULTS/preprocess.md``.
"""
from __future__ import annotations

import dataclasses

import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench import corpus, peers, speed
from bench.score import sweep
from dedup.config import DEFAULT_THRESHOLDS, DedupConfig
from dedup.layout import OutputLayout

DEFAULT_SRC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-samples"
SSCD_SWEEP = [round(float(t), 2) for t in np.arange(0.30, 0.951, 0.05)]
BAND_LOS = (0.30, 0.35, 0.40, 0.45, 0.50)  # verify band sweep: every (lo, hi) with lo < hi
BAND_HIS = (0.70, 0.75, 0.80, 0.85, 0.90, 0.95)
PREPROCESS_VARIANTS = [("square", 288), ("square", 320), ("square", 224), ("short-side", 288), ("center-crop", 224)]


def first_run(cfg: DedupConfig) -> dict:
    """Run the job as a user's first run: never a resumed one, nor one that first drops the collection a
    previous bench run left in the output folder's Milvus Lite (0.4-0.6 s for 2,014 2048-d vectors)."""
    from dedup import run

    cfg = dataclasses.replace(cfg, fresh=True)
    shutil.rmtree(cfg.output, ignore_errors=True)
    return run(cfg)


_MEASURED: dict = {}  # the corpus's images measured for the quality policy, shared by every run's sweep


def _chooser(cfg: DedupConfig):
    """The sweep's canonical choice as the run's own: the quality policy's (measured once per image)."""
    from bench.score import QualityChooser

    return QualityChooser(cfg.output, _MEASURED) if cfg.canonical == "quality" else None


def _best(curve: pd.DataFrame) -> dict:
    return curve.sort_values(["pair_f1", "threshold"], ascending=[False, False]).iloc[0].to_dict()


def _ours(name: str, cfg: DedupConfig, truth: pd.DataFrame, thresholds) -> tuple[dict, pd.DataFrame, dict]:
    summary = first_run(cfg)
    curve = sweep(cfg.output, truth, thresholds, cfg.canonical_keys(), chooser=_chooser(cfg))
    row = {"tool": name, **_best(curve), "seconds": summary["total_seconds"], "images_per_second": summary["images_per_second"]}
    return row, curve, summary


def _hash_rows(images: Path, work: Path, truth: pd.DataFrame, report: dict, model: str = "multihash") -> list[dict]:
    """The weight-free hash mode: searched once at a wide Hamming distance, swept in bits from the edges."""
    from dedup.config import HASH_MODELS
    from dedup.ops.hashes import HASHES, search_cosine

    bits = HASHES[model].bits
    default = HASH_MODELS[model]
    dists = list(range(default - 24, default + 17, 2))
    cfg = DedupConfig(inputs=[str(images)], output=str(work / f"out-{model}"), model=model, max_bits=max(dists), fresh=True)
    best, curve, summary = _ours(f"ours: --model {model}", cfg, truth, [search_cosine(d, bits) for d in dists])
    curve.insert(0, "max_bits", dists[: len(curve)])
    report["curves"][model] = curve.to_dict(orient="records")
    de = summary["stages"]["decode_embed"]
    report["hash_speed"] = {"model": model, "decode_hash_images_per_second": de["images_per_second"],
                            "decode_hash_images_per_cpu_second": de["decode_images_per_cpu_second"],
                            "end_to_end_images_per_second": summary["images_per_second"], "stages": summary["stages"]}
    at_default = curve[curve["max_bits"] == default].iloc[0].to_dict()
    rows = []
    for label, r in ((f"ours: --model {model} (default --max-bits {default})", at_default), (f"ours: --model {model}, best of sweep", best)):
        d = int(round(r.get("max_bits", dists[int(np.argmin([abs(search_cosine(x, bits) - r["threshold"]) for x in dists]))])))
        rows.append({**{k: v for k, v in r.items() if k != "max_bits"}, "tool": label, "threshold": f"{d} bits",
                     "seconds": summary["total_seconds"], "images_per_second": summary["images_per_second"]})
    return rows


def _speed(summary: dict, before: dict, after: dict, mean: float) -> dict:
    """Decode + embed and end to end against the bare model timed just before and after the job."""
    de = summary["stages"]["decode_embed"]
    bare = {k: after[k] for k in ("model", "shape", "batch", "batches", "threads", "backend")}
    bare.update(images_per_second=mean, before_job=before["images_per_second"], after_job=after["images_per_second"])
    res = summary["parameters"]["embed_resources"]
    return {
        "end_to_end_images_per_second": summary["images_per_second"],
        "decode_embed_images_per_second": de["images_per_second"],
        "decode_images_per_cpu_second": de["decode_images_per_cpu_second"],
        "bare_model_images_per_second": mean,
        "decode_embed_over_bare_model": round(de["images_per_second"] / mean, 3),
        "end_to_end_over_bare_model": round(summary["images_per_second"] / mean, 3),
        "stages": summary["stages"], "bare_model": bare, "actors": res.get("actors"), "actor_threads": res.get("threads"),
    }


def _model_rows(model: str, images: Path, work: Path, truth: pd.DataFrame, report: dict, **cfg_kw) -> list[dict]:
    """One learned model (alone or with a hash) as a user runs it (its defaults, the content check on where
    it has a calibrated band), bracketed by two timings of the bare model at the job's input size (on a
    shared VM the speed drifts within minutes). The run searches down to the sweep's lowest threshold, so
    the stored edges give the plain-threshold sweep and, with every pair up to the highest band checked,
    the band sweep."""
    from bench.score import check_all, score_parts

    cfg = DedupConfig(inputs=[str(images)], output=str(work / f"out-{model}"), model=model, **cfg_kw)
    if cfg.validate().verify == "off":
        cfg.threshold = min(SSCD_SWEEP)
    cfg = cfg.validate()
    label = f"ours: --model {model}" + "".join(f" --{k.replace('_', '-')} {v}" for k, v in cfg_kw.items())
    key = model + "".join(f"-{v}" for v in cfg_kw.values())
    shape = (cfg.image_size, cfg.image_size)
    summary, before, after, mean = speed.bracketed(lambda: first_run(cfg), model=cfg.learned_model, shape=shape, batch=32,
                                                   threads=os.cpu_count())
    report["speed"][key] = _speed(summary, before, after, mean)
    timing = {"seconds": summary["total_seconds"], "images_per_second": summary["images_per_second"]}
    bands = []
    passed = None
    if cfg.verify != "off":
        bands = [(lo, hi) for lo in BAND_LOS for hi in BAND_HIS if lo < hi]
        passed = check_all(cfg.output, min(BAND_LOS), max(BAND_HIS))
    curve = sweep(cfg.output, truth, SSCD_SWEEP, cfg.canonical_keys(), bands=bands, passed=passed, chooser=_chooser(cfg))
    report["curves"][key] = curve.to_dict(orient="records")
    plain = curve[curve["verify_above"].isna()] if "verify_above" in curve else curve
    default = DEFAULT_THRESHOLDS[cfg.learned_model]
    at_default = plain.iloc[int(np.argmin(np.abs(plain["threshold"].to_numpy() - default)))].to_dict()
    rows = []
    if cfg.verify != "off":
        lo, hi = cfg.verify_range()
        own = score_parts(pd.read_csv(OutputLayout.of(cfg.output).manifest_csv), truth)
        same = curve[(curve["threshold"] == lo) & (curve["verify_above"] == hi)] if "verify_above" in curve else curve.iloc[:0]
        if len(same) and "kept_original_largest" in same:
            own["kept_original_largest"] = same.iloc[0]["kept_original_largest"]
        rows.append({"tool": f"{label} (default: verify band {lo:.2f}-{hi:.2f})", "threshold": f"{lo:.2f} + check to {hi:.2f}", **own, **timing})
        best_band = _best(curve[curve["verify_above"].notna()])
        rows.append({**best_band, "tool": f"{label}, best band of sweep",
                     "threshold": f"{best_band['threshold']:.2f} + check to {best_band['verify_above']:.2f}", **timing})
    rows.append({**at_default, "tool": f"{label} --verify off (default threshold {default})", **timing})
    rows.append({**_best(plain), "tool": f"{label} --verify off, best of sweep", **timing})
    return rows


def bench(src: Path, work: Path, results: Path, limit: int | None = None, with_models: bool = True, with_peers: bool = True,
          seed: int = 0) -> dict:
    import ray

    from dedup.ray_env import init_ray

    work.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    truth_path = corpus.build(src, work / "corpus", limit=limit, seed=seed)
    _MEASURED.clear()
    truth = pd.read_csv(truth_path)
    images = work / "corpus" / "images"
    parts = truth.groupby("part").size().to_dict()
    report: dict = {
        "corpus": {"source": str(src), "seed": seed, "images": len(truth), "groups": int(truth["group"].nunique()), "parts": parts,
                   "copies": int(len(truth) - truth["group"].nunique()), "build_seconds": round(time.perf_counter() - t0, 1)},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "rows": [], "curves": {}, "speed": {},
    }
    started = init_ray(logging_level="ERROR")  # the bench's own Ray, on loopback as a local run's
    try:
        row, curve, _ = _ours("ours: --model thumb", DedupConfig(inputs=[str(images)], output=str(work / "out-thumb"), model="thumb", threshold=0.6),
                              truth, np.round(np.arange(0.6, 1.0, 0.02), 2))
        report["rows"].append(row)
        report["curves"]["thumb"] = curve.to_dict(orient="records")
        report["rows"] += _hash_rows(images, work, truth, report)
        if with_models:
            for model in ("sscd", "sscd-mobile", "sscd+multihash"):
                report["rows"] += _model_rows(model, images, work, truth, report)
    finally:
        if started:
            ray.shutdown()
    report["rows"].append({"tool": "ours: resnet50, ImageNet weights", "note": "not measurable here: the weights cannot be downloaded on this machine"})
    if with_peers:
        for tool in peers.PEERS:
            report["rows"].append(peers.run_peer(tool, images, truth, work))
        report["side_by_side"] = peers.side_by_side(images, work)
    report["total_seconds"] = round(time.perf_counter() - t0, 1)
    (results / "bench.json").write_text(json.dumps(report, indent=2, default=str))
    md = to_markdown(report)
    (results / "bench.md").write_text(md)
    print(md)
    return report


def _cell(r: dict, key: str, fmt: str = "{:.3f}") -> str:
    v = r.get(key)
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)


def _table(rows: list[dict], first: str = "tool") -> list[str]:
    lines = [
        f"| {first} | threshold | precision | recall | F1 | wrongly removed | missed | F1 standard + near-miss | wrongly removed there "
        "| F1 hard copies | missed hard copies | kept original | kept original (largest) | images/s | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "note" in r or "error" in r:
            lines.append(f"| {r['tool']} | {r.get('note') or 'error: ' + r['error'].splitlines()[-1][:120]} |" + " |" * 13)
            continue
        lines.append(
            f"| {r['tool']} | {r['threshold']} | {r['pair_precision']:.3f} | {r['pair_recall']:.3f} | {r['pair_f1']:.3f} | "
            f"{int(r['wrongly_removed'])} | {int(r['missed'])} | {_cell(r, 'bench_f1')} | {_cell(r, 'bench_wrongly_removed', '{:.0f}')} | "
            f"{_cell(r, 'hard_f1')} | {_cell(r, 'hard_missed', '{:.0f}')} | {_cell(r, 'kept_original')} | {_cell(r, 'kept_original_largest')} | "
            f"{r.get('images_per_second', '')} | {r.get('seconds', '')} |"
        )
    return lines


def _sweep_table(curve: list[dict], banded: bool = False) -> list[str]:
    first = "search threshold | no check above" if banded else "threshold"
    lines = [f"| {first} | precision | recall | F1 | wrongly removed | missed | F1 standard + near-miss | wrongly removed there | "
             "F1 hard copies | missed hard copies |", "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if banded else "")]
    for r in curve:
        if banded != (r.get("verify_above") is not None and not (isinstance(r.get("verify_above"), float) and np.isnan(r["verify_above"]))):
            continue
        head = f"{r['threshold']:.2f} | {r['verify_above']:.2f}" if banded else f"{r['threshold']:.2f}"
        lines.append(f"| {head} | {r['pair_precision']:.3f} | {r['pair_recall']:.3f} | {r['pair_f1']:.3f} | "
                     f"{int(r['wrongly_removed'])} | {int(r['missed'])} | {_cell(r, 'bench_f1')} | {_cell(r, 'bench_wrongly_removed', '{:.0f}')} | "
                     f"{_cell(r, 'hard_f1')} | {_cell(r, 'hard_missed', '{:.0f}')} |")
    return lines


def to_markdown(report: dict) -> str:
    c = report["corpus"]
    parts = ", ".join(f"{k} {v}" for k, v in sorted(c.get("parts", {}).items()))
    lines = [
        "# Benchmark",
        "",
        f"Corpus (seed {c.get('seed', 0)}): {c['images']} images in {c['groups']} groups ({c['copies']} copies; parts: {parts}), built from `{c['source']}`.",
        f"Machine: {report['machine']['cpus']} CPUs, {report['machine']['platform']}. Total {report['total_seconds']} s.",
        "",
        "Wrongly removed: images removed although nothing of their group is kept (data lost). Missed: copies left in "
        "the keep set. The whole corpus first, then its parts: standard copies with the near-miss negatives (different "
        "content from one photo, each its own group), and the hard copies. Kept original: of the clusters that hold a "
        "photo's untouched original, the share that keep it (the default `--canonical quality`; beside it the old "
        "`largest` policy on the same clusters; not scored for the peers, whose runners report clusters, not the image kept).",
        "",
        *_table(report["rows"]),
    ]
    h = report.get("hash_speed")
    if h:
        lines += ["", f"Hash mode ({h['model']}): decode + hash {h['decode_hash_images_per_second']} images/s in the job "
                  f"({h['decode_hash_images_per_cpu_second']} per CPU-second), end to end {h['end_to_end_images_per_second']} images/s "
                  "(Milvus Lite's start-up included; Ray is started once for the whole bench and not counted; the peers are timed "
                  "as their runners report: imagededup and fastdup without the interpreter's start-up, immaculate as a whole process)."]
    sbs = report.get("side_by_side")
    if sbs and "error" not in sbs:
        from bench.peers import side_by_side_markdown

        lines += ["", *side_by_side_markdown(sbs, f"The corpus's {c['images']} images")]
    for key, curve in report.get("curves", {}).items():
        if key.startswith("sscd"):
            lines += ["", f"## Threshold sweep: --model {key} --verify off", "", *_sweep_table(curve)]
            if any(r.get("verify_above") is not None and r["verify_above"] == r["verify_above"] for r in curve):
                lines += ["", f"## Verify band sweep: --model {key} (pairs from the search threshold up to 'no check above' "
                          "kept only where their content check passed)", "", *_sweep_table(curve, banded=True)]
    for key, s in report.get("speed", {}).items():
        b = s["bare_model"]
        lines += [
            "", f"## Speed: --model {key} (CPU)", "",
            f"- bare model: {b.get('backend')} at {'x'.join(map(str, b.get('shape', [])))}, batch {b['batch']}, one session with "
            f"{b['threads']} threads: {s['bare_model_images_per_second']} images/s (mean of {b.get('before_job')} just before the job "
            f"and {b.get('after_job')} just after); the job: {s.get('actors')} actor(s) x {s.get('actor_threads')} thread(s), decoding in the actors",
            f"- decode + embed in the job: {s['decode_embed_images_per_second']} images/s, {s['decode_embed_over_bare_model']} of the bare model",
            f"- decode: {s['decode_images_per_cpu_second']} images per CPU-second; end to end {s['end_to_end_images_per_second']} images/s "
            f"({s['end_to_end_over_bare_model']} of the bare model)",
        ]
    return "\n".join(lines) + "\n"


def preprocess_bench(src: Path, work: Path, results: Path, limit: int | None = None) -> dict:
    """SSCD with each input size and resize of :data:`PREPROCESS_VARIANTS`: quality (default threshold and
    best of sweep) and speed (decode + embed against the bare model at the same size, same run)."""
    import ray

    from dedup.ray_env import init_ray

    work.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    truth = pd.read_csv(corpus.build(src, work / "corpus", limit=limit))
    images = work / "corpus" / "images"
    report: dict = {"corpus": {"source": str(src), "images": len(truth)}, "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                    "rows": [], "curves": {}, "speed": {}}
    started = init_ray(logging_level="ERROR")  # the bench's own Ray, on loopback as a local run's
    try:
        for kind, size in PREPROCESS_VARIANTS:
            rows = _model_rows("sscd", images, work, truth, report, preprocess=kind, image_size=size)
            report["rows"] += rows
    finally:
        if started:
            ray.shutdown()
    (results / "preprocess.json").write_text(json.dumps(report, indent=2, default=str))
    lines = ["# SSCD preprocessing", "", f"Corpus: {len(truth)} images from `{src}` (the bench corpus). Machine: {os.cpu_count()} CPUs.",
             "Each variant is one job run (`--preprocess KIND --image-size N`); the bare model (ONNX Runtime, int8) is timed at the "
             "same size just before and after it. `short-side` batches mix shapes (the longer side rounded to 32 px): the bare "
             "model is timed at the square size there, so its ratio is a lower bound of the cost of mixed shapes.", "",
             *_table(report["rows"]), "", "| variant | bare model images/s | decode + embed images/s | ratio | end to end images/s |",
             "|---|---|---|---|---|"]
    for key, s in report["speed"].items():
        lines.append(f"| {key} | {s['bare_model_images_per_second']} | {s['decode_embed_images_per_second']} | "
                     f"{s['decode_embed_over_bare_model']} | {s['end_to_end_images_per_second']} |")
    md = "\n".join(lines) + "\n"
    (results / "preprocess.md").write_text(md)
    print(md)
    return report
