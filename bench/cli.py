"""``python -m bench`` (from the repository root): its arguments and which benchmark they run (each mode in its
own module here). A developer tool beside the library, not part of the installed package: it reads the peers'
venvs and the photos under ``../shared``, and writes ``bench/work`` and ``bench/results``."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's arguments; with none, the bench corpus run (ours and the peers')."""
    b = argparse.ArgumentParser(prog="python -m bench",
                                description="quality and speed on a labelled near-duplicate corpus, ours and the peers'")
    b.add_argument("--src", help="folder of distinct photos (default ../shared/data/imagenet-samples)")
    b.add_argument("--work", default="bench/work", help="scratch folder (corpus, runs)")
    b.add_argument("--results", default="bench/results", help="where bench.md and bench.json go")
    b.add_argument("--limit", type=int, help="use only the first N photos")
    b.add_argument("--no-models", action="store_true", help="skip the learned models (sscd, sscd-mobile, sscd+multihash)")
    b.add_argument("--no-peers", action="store_true", help="skip the peers (imagededup, fastdup, immaculate)")
    b.add_argument("--verify-cost", type=int, metavar="N", help="only the verify cost mode: the content check on N edges (every pair within groups of 10 distinct JPEGs made from --src, and N/10 random pairs); results in RESULTS/verify-cost.md")
    b.add_argument("--reference-scale", type=int, metavar="N", help="only the reference mode: a new batch against a reference of N vectors (a real SSCD run on the embedded Milvus server, grown with random vectors), timed with both reference engines; results in RESULTS/reference-scale.md")
    b.add_argument("--canonical-study", action="store_true", help="only the canonical study: the quality policy's rule list, each rule left out, moved or with another margin, re-chosen on the SSCD run of an earlier `python -m bench` in --work, and the enlarged margin on --src photos; results in RESULTS/canonical-study.md")
    b.add_argument("--albu", nargs="*", type=int, metavar="SEED", help="only the albumentations corpora: the default job on corpora made with albumentations (copies under edits the AugLy corpora lack, hard negatives sharing a card, a frame or an inset; bench/hard/make_albu.py, its own venv), all of it held out, for each SEED (default 0), scored as --hard; results in RESULTS/albu.md")
    b.add_argument("--tv", nargs="*", type=int, metavar="SEED", help="only the torchvision corpora: the default job on corpora made with torchvision.transforms.v2 in the project's venv (augmentation policies and single edits, disjoint corner crops of one photo as negatives; bench/hard/make_tv.py), all of it held out, for each SEED (default 0), scored as --hard; results in RESULTS/tv.md")
    b.add_argument("--kept-model", nargs="*", type=int, metavar="SEED", help="only the kept-image model: AugLy edit-chain corpora (bench/hard/make_lineage.py, its own venv) for each SEED (default 0 1 2; seeds 2 and later hold out a second set of families), the default job on each, the model fitted on the first seed's tune part and the bench corpus of an earlier `python -m bench` in --work, written to dedup/ops/kept_model.json, and scored held out; results in RESULTS/kept-model.md")
    b.add_argument("--reflected-borders", nargs="?", type=int, const=120, metavar="N", help="only the kept image where a copy's corners are reflected: N photos of --src (default 120), turned, scaled or sheared in their frame by OpenCV with its reflected border, each against its photo, with and without the evidence of pads that repeat the picture; results in RESULTS/reflected-borders.md")
    b.add_argument("--vignettes", nargs="?", type=int, const=100, metavar="N", help="only the kept image against vignetted copies: N photos of --src (default 100), vignettes made otherwise than the edit-chain corpora's and global tone edits as controls, each against its photo, with and without the vignetted rule; results in RESULTS/vignettes.md")
    b.add_argument("--check-cost", nargs="?", type=int, const=5, metavar="N", help="only the check's cost on the bench corpus: the pairs the SSCD run of an earlier `python -m bench` in --work checked, checked again N times (default 5) on Ray tasks, as shipped and without its one-frame pass, alternated; results in RESULTS/check-cost.md")
    b.add_argument("--cluster-order", action="store_true", help="only the cluster order: the finished runs in --work (the bench corpus's, the edit chains', the hard corpora's) clustered again from their stored edges in the largest order and with the pictured images last, as the graph stage forms them, scored against their truth; results in RESULTS/cluster-order.md")
    b.add_argument("--verify-study", action="store_true", help="only the verify study: the content check's variants (detector, size, inliers, mirror, scale) on the SSCD run of an earlier `python -m bench` in --work; results in RESULTS/verify-study.md")
    b.add_argument("--hard", nargs="*", type=int, metavar="SEED", help="only the hard-case mode: the default job on AugLy-made corpora (templates, padded and warped copies, a held-out part; bench/hard/, its own venv) for each SEED (default 0), scored by part and edit; results in RESULTS/hard.md")
    b.add_argument("--seed", type=int, default=0, help="the bench corpus's seed (which photos get copies, which edits): 0 is the committed run; another seed is a held-out check of the defaults")
    b.add_argument("--preprocess", action="store_true", help="only the preprocessing mode: SSCD at each input size and resize (square 288/320/224, short-side 288, center-crop 224), quality and speed; results in RESULTS/preprocess.md")
    b.add_argument("--scale", nargs="*", type=int, metavar="N", help="only the scale mode: the vector stages (store, search, graph) on N synthetic vectors for each N (default 10000 100000 1000000); results in RESULTS/scale.md")
    b.add_argument("--scale-engines", nargs="+", type=int, metavar="N", help="only the engine comparison: each search engine as the job runs it (exact in memory, Milvus Lite by request size) on N SSCD-like 512-d vectors for each N, recall against brute force on a sample; the fastest per size is what --search-engine auto picks; results in RESULTS/scale.md")
    b.add_argument("--scale-only", metavar="LABEL", help="with --scale-engines: only the engines whose label starts with LABEL (e.g. 'exact', 'exact, int8')")
    b.add_argument("--exact-products", nargs="+", type=int, metavar="N", dest="exact_products_sizes", help="only the exact search's products, float32 against int8, on N SSCD-like 512-d vectors for each N, alone in one process (a sample of queries above 100,000); results in RESULTS/exact-products.md")
    b.add_argument("--scale-job", type=int, metavar="N", help="only the whole job at scale: --model multihash on N small JPEGs made from --src's photos (5 %% byte copies, 10 %% near copies; kept in --work), then dedup apply --link; wall time per stage, peak memory, every output's size; results in RESULTS/scale-job-N.md")
    b.add_argument("--scale-milvus", nargs="+", choices=["lite", "server"], default=["lite", "server"], help="scale mode: Milvus Lite and/or the embedded Milvus server of the PyPI package `milvus` (default both)")
    b.add_argument("--throughput", type=int, metavar="N", help="only the speed mode: per model (--throughput-models) the bare model, decode alone, decode + embed and the job end to end with its timeline, on this machine's hardware (GPU actors where there is a GPU), on N JPEGs made from --src; results in RESULTS/throughput-<device>.md")
    b.add_argument("--side-by-side", type=int, metavar="N", help="only the side-by-side mode: `dedup run --model multihash` and immaculate's pdq as whole processes, in turn, on N JPEGs made from --src as --throughput makes them; results in RESULTS/side-by-side-N.md")
    b.add_argument("--default-run", type=int, metavar="N", help="only the default job as a user runs it (`dedup run`, SSCD, the content check, the kept image) on N JPEGs made from --src as --throughput makes them: each stage's wall time, its share of the run, and the check's and the kept image's CPU per pair and per candidate; results in RESULTS/default-run-N.md")
    b.add_argument("--throughput-models", default="sscd,sscd-default,multihash", help="speed mode: the models, comma list (default sscd,sscd-default,multihash; resnet50 runs with random weights; MODEL-default: the job as a user runs it, with the content check, the kept image and the report, where the plain rows switch the check off at a threshold nothing reaches)")
    b.add_argument("--embed-batch", type=int, help="speed mode: the job's and the bare model's batch size (default: the job's default)")
    return b


def main(argv: list[str] | None = None) -> int:
    return run_bench(build_parser().parse_args(argv))


def run_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.run import DEFAULT_SRC, bench

    if args.exact_products_sizes:
        from bench.exact_products import products_bench

        products_bench(args.exact_products_sizes, Path(args.results))
        return 0
    if args.scale_engines:
        from bench.scale_engines import engines_bench

        engines_bench(args.scale_engines, Path(args.work), Path(args.results), only=args.scale_only)
        return 0
    if args.check_cost is not None:
        from bench.check_cost import check_cost_bench

        check_cost_bench(Path(args.work), Path(args.results), args.check_cost)
        return 0
    if args.cluster_order:
        from bench.cluster_order import cluster_order_bench

        cluster_order_bench(Path(args.work), Path(args.results))
        return 0
    if args.scale is not None:
        from bench.scale import scale_bench

        scale_bench(args.scale or [10_000, 100_000, 1_000_000], Path(args.work), Path(args.results), milvus=args.scale_milvus)
        return 0
    src = Path(args.src) if args.src else DEFAULT_SRC
    if not src.is_dir():
        print(f"python -m bench: error: no photo folder at {src}; pass --src DIR", file=sys.stderr)
        return 2
    if args.vignettes is not None:
        from bench.vignettes import vignettes_bench

        vignettes_bench(src, Path(args.results), args.vignettes)
        return 0
    if args.reflected_borders is not None:
        from bench.reflected import reflected_bench

        reflected_bench(src, Path(args.results), args.reflected_borders)
        return 0
    if args.scale_job is not None:
        from bench.scale_job import scale_job

        scale_job(args.scale_job, Path(args.work), src, Path(args.results))
        return 0
    if args.throughput is not None:
        from bench.throughput import throughput_bench

        throughput_bench(src, Path(args.work), Path(args.results), args.throughput, embed_batch=args.embed_batch,
                         models=[m.strip() for m in args.throughput_models.split(",") if m.strip()])
        return 0
    if args.default_run is not None:
        from bench.default_run import default_run_bench

        default_run_bench(src, Path(args.work), Path(args.results), args.default_run)
        return 0
    if args.side_by_side is not None:
        from bench.peers import side_by_side_bench

        side_by_side_bench(src, Path(args.work), Path(args.results), args.side_by_side)
        return 0
    if args.reference_scale is not None:
        from bench.reference_scale import reference_scale_bench

        reference_scale_bench(src, Path(args.work), Path(args.results), args.reference_scale)
        return 0
    if args.hard is not None or args.albu is not None or args.tv is not None:
        from bench.hard import hard_bench

        maker, seeds = next((m, s) for m, s in (("augly", args.hard), ("albu", args.albu), ("tv", args.tv)) if s is not None)
        hard_bench(src, Path(args.work), Path(args.results), seeds or [0], maker)
        return 0
    if args.kept_model is not None:
        from bench.kept_model import kept_model_main

        kept_model_main(src, Path(args.work), Path(args.results), args.kept_model or [0, 1, 2])
        return 0
    if args.canonical_study:
        from bench.canonical_study import canonical_study

        canonical_study(Path(args.work), Path(args.results), src)
        return 0
    if args.verify_study:
        from bench.verify_study import verify_study

        verify_study(Path(args.work), Path(args.results))
        return 0
    if args.verify_cost is not None:
        from bench.verify_cost import verify_cost_bench

        verify_cost_bench(src, Path(args.work), Path(args.results), args.verify_cost)
        return 0
    if args.preprocess:
        from bench.run import preprocess_bench

        preprocess_bench(src, Path(args.work), Path(args.results), args.limit)
        return 0
    bench(src, Path(args.work), Path(args.results), args.limit, not args.no_models, not args.no_peers, seed=args.seed)
    return 0
