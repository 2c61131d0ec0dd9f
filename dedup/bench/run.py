"""``dedup bench``: quality and speed on a labelled corpus, ours and the peers', in one run.

Writes ``RESULTS/bench.md`` and ``RESULTS/bench.json`` and prints the table.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dedup.bench import corpus, peers, speed
from dedup.bench.score import sweep
from dedup.config import DedupConfig

DEFAULT_SRC = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "imagenet-samples"


def first_run(cfg: DedupConfig) -> dict:
    """Run the job as a user's first run: never a resumed one, nor one that first drops the collection a
    previous bench run left in the output folder's Milvus Lite (0.4-0.6 s for 2,014 2048-d vectors)."""
    from dedup.pipeline import run

    cfg.fresh = True
    shutil.rmtree(cfg.output, ignore_errors=True)
    return run(cfg)


def _ours(name: str, cfg: DedupConfig, truth: pd.DataFrame, thresholds) -> tuple[dict, pd.DataFrame, dict]:
    summary = first_run(cfg)
    curve = sweep(cfg.output, truth, thresholds, cfg.canonical_keys())
    best = curve.sort_values(["pair_f1", "threshold"], ascending=[False, False]).iloc[0].to_dict()
    row = {"tool": name, **best, "seconds": summary["total_seconds"], "images_per_second": summary["images_per_second"]}
    return row, curve, summary


def _hash_rows(images: Path, work: Path, truth: pd.DataFrame, report: dict, model: str = "multihash") -> list[dict]:
    """The weight-free hash mode: searched once at a wide Hamming distance, swept in bits from the edges."""
    from dedup.config import HASH_MODELS
    from dedup.stages.hashes import HASHES, search_cosine

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


def bench(src: Path, work: Path, results: Path, limit: int | None = None, with_resnet: bool = True, with_peers: bool = True) -> dict:
    import ray

    work.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    truth_path = corpus.build(src, work / "corpus", limit=limit)
    truth = pd.read_csv(truth_path)
    images = work / "corpus" / "images"
    report: dict = {
        "corpus": {"source": str(src), "images": len(truth), "groups": int(truth["group"].nunique()),
                   "copies": int(len(truth) - truth["group"].nunique()), "build_seconds": round(time.perf_counter() - t0, 1)},
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform()},
        "rows": [], "curves": {}, "speed": {},
    }
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, logging_level="ERROR")
    try:
        row, curve, _ = _ours("ours: --model thumb", DedupConfig(inputs=[str(images)], output=str(work / "out-thumb"), model="thumb", threshold=0.6),
                              truth, np.round(np.arange(0.6, 1.0, 0.02), 2))
        report["rows"].append(row)
        report["curves"]["thumb"] = curve.to_dict(orient="records")
        report["rows"] += _hash_rows(images, work, truth, report)
        if with_resnet:
            cfg = DedupConfig(inputs=[str(images)], output=str(work / "out-resnet-random"), weights="random", threshold=0.99)
            # The baseline is one session using every CPU of the machine (what a user would time by hand;
            # here it was as fast as or faster than one single-threaded session per CPU, as the job runs),
            # timed just before and just after the job and averaged (speed.bracketed).
            (row, curve, summary), before, after, mean = speed.bracketed(
                lambda: _ours("ours: resnet50, RANDOM weights (quality meaningless)", cfg, truth, [0.99, 0.995, 0.998, 0.999]),
                batch=cfg.resolved_embed_batch(), threads=os.cpu_count())
            report["rows"].append(row)
            de = summary["stages"]["decode_embed"]
            bare = {k: after[k] for k in ("batch", "batches", "threads", "backend")}
            bare.update(images_per_second=mean, before_job=before["images_per_second"], after_job=after["images_per_second"])
            report["speed"] = {
                "end_to_end_images_per_second": summary["images_per_second"],
                "decode_embed_images_per_second": de["images_per_second"],
                "decode_images_per_cpu_second": de["decode_images_per_cpu_second"],
                "bare_model_images_per_second": bare["images_per_second"],
                "decode_embed_over_bare_model": round(de["images_per_second"] / bare["images_per_second"], 3),
                "end_to_end_over_bare_model": round(summary["images_per_second"] / bare["images_per_second"], 3),
                "stages": summary["stages"],
                "bare_model": bare,
                "actors": summary["parameters"]["embed_resources"].get("actors"),
                "actor_threads": summary["parameters"]["embed_resources"].get("threads"),
            }
    finally:
        if started:
            ray.shutdown()
    report["rows"].append({"tool": "ours: resnet50, ImageNet weights", "note": "not measurable here: the weights cannot be downloaded on this machine"})
    if with_peers:
        for tool in peers.PEERS:
            report["rows"].append(peers.run_peer(tool, images, truth, work))
    report["total_seconds"] = round(time.perf_counter() - t0, 1)
    (results / "bench.json").write_text(json.dumps(report, indent=2, default=str))
    md = to_markdown(report)
    (results / "bench.md").write_text(md)
    print(md)
    return report


def to_markdown(report: dict) -> str:
    c = report["corpus"]
    lines = [
        "# Benchmark",
        "",
        f"Corpus: {c['images']} images from {c['groups']} photos ({c['copies']} edited copies), built from `{c['source']}`.",
        f"Machine: {report['machine']['cpus']} CPUs, {report['machine']['platform']}. Total {report['total_seconds']} s.",
        "",
        "| tool | threshold | precision | recall | F1 | wrongly removed | missed | images/s | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        if "note" in r or "error" in r:
            lines.append(f"| {r['tool']} | {r.get('note') or 'error: ' + r['error'].splitlines()[-1][:120]} | | | | | | | |")
            continue
        lines.append(
            f"| {r['tool']} | {r['threshold']} | {r['pair_precision']:.3f} | {r['pair_recall']:.3f} | {r['pair_f1']:.3f} | "
            f"{int(r['wrongly_removed'])} | {int(r['missed'])} | {r['images_per_second']} | {r['seconds']} |"
        )
    h = report.get("hash_speed")
    if h:
        lines += ["", f"Hash mode ({h['model']}): decode + hash {h['decode_hash_images_per_second']} images/s in the job "
                  f"({h['decode_hash_images_per_cpu_second']} per CPU-second), end to end {h['end_to_end_images_per_second']} images/s "
                  "(Milvus Lite's start-up included; Ray is started once for the whole bench and not counted, as the peers' "
                  "interpreter and import start-up is not)."]
    s = report.get("speed")
    if s:
        lines += [
            "",
            "## Speed (ResNet-50, CPU)",
            "",
            f"- model backend: {s['bare_model'].get('backend', 'torch')}; bare model: one session, {s['bare_model']['threads']} threads; "
            f"the job: {s.get('actors', '?')} actor(s) x {s.get('actor_threads', '?')} thread(s), decoding in the actors",
            f"- decode + embed in the job: {s['decode_embed_images_per_second']} images/s; bare model on preprocessed "
            f"batches, same run: {s['bare_model_images_per_second']} images/s (mean of {s['bare_model'].get('before_job', '?')} "
            f"just before the job and {s['bare_model'].get('after_job', '?')} just after); ratio {s['decode_embed_over_bare_model']}",
            f"- decode: {s['decode_images_per_cpu_second']} images per CPU-second; end to end {s['end_to_end_images_per_second']} images/s "
            f"({s.get('end_to_end_over_bare_model')} of the bare model; target 0.85)",
        ]
    return "\n".join(lines) + "\n"
