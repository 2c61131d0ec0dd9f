"""The job: wires the stages (see :mod:`dedup.stages`) into one Ray Data run and writes the outputs.

    discover -> hashing -> plan -> decode -> embed -> [vectors/ parquet] -> store -> search -> graph
             -> canonical -> manifest

Intermediate results live in the output folder: ``files.parquet`` (hashes and vids), ``vectors/`` (one
Parquet dataset of embeddings and image metadata, so later stages and re-runs never embed again),
``edges.parquet`` (unique similarity edges), and ``state.json``, which records for each finished stage a
fingerprint of everything it depends on.

Resume: the same command on the same output folder reuses every stage whose fingerprint still matches
(``hash``, ``decode_embed``, ``store``, ``search``) and reruns the rest; a changed parameter only reruns
the stages it affects. A higher ``--threshold`` than the stored edges were searched at needs no search
at all (the stored edges are filtered); a lower one reruns search onward. ``--fresh`` recomputes all.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from dedup.config import DedupConfig
from dedup.milvus import (MilvusLiteServer, MilvusTarget, build_index_and_load, choose_index, create_collection,
                          drop_collection, run_collection_name)
from dedup.sources import discover
from dedup.stages import canonical, decode, embed, graph, hashing, manifest, plan, search, store, verify

STATE_FILE = "state.json"
EMBED_VERSION = 3  # bump when decode/embed output changes for the same parameters, so stored vectors are redone


class Timer:
    def __init__(self):
        self.stages: dict[str, dict] = {}

    @contextmanager
    def stage(self, name: str, items_label: str = "items"):
        t0 = time.perf_counter()
        record: dict = {}
        print(f"[dedup] {name} ...", file=sys.stderr, flush=True)
        yield record
        seconds = time.perf_counter() - t0
        items = record.get(items_label)
        entry = {"seconds": round(seconds, 3)}
        if items is not None and not record.get("reused"):
            entry[f"{items_label}_per_second"] = round(items / seconds, 2) if seconds > 0 else None
        entry.update(record)
        self.stages[name] = entry
        print(f"[dedup] {name}: {seconds:.1f}s {record}", file=sys.stderr, flush=True)


class RunState:
    """``state.json`` in the output folder: which stages finished, with the fingerprint of their inputs."""

    def __init__(self, out: Path, fresh: bool = False):
        self.path = out / STATE_FILE
        self.data: dict = {}
        self._lock = threading.Lock()
        if self.path.exists() and not fresh:
            try:
                self.data = json.loads(self.path.read_text())
            except ValueError:
                self.data = {}

    def reusable(self, stage: str, fingerprint: str, *artifacts: Path) -> bool:
        entry = self.data.get(stage) or {}
        return entry.get("fingerprint") == fingerprint and all(p.exists() for p in artifacts)

    def get(self, stage: str) -> dict:
        return self.data.get(stage) or {}

    def finish(self, stage: str, fingerprint: str, **extra) -> None:
        self.data[stage] = {"fingerprint": fingerprint, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
        self._write()

    def forget(self, *stages: str) -> None:
        for s in stages:
            self.data.pop(s, None)
        self._write()

    def _write(self) -> None:
        with self._lock:  # the store may finish in a background thread
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=2))
            tmp.replace(self.path)


def fingerprint(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _init_ray(cfg: DedupConfig) -> bool:
    """Start or join Ray. Returns True when this call started it (and should stop it)."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=cfg.ray_address, ignore_reinit_error=True, include_dashboard=False, logging_level="WARNING")
    ctx = ray.data.DataContext.get_current()
    # Progress bars (rows and rows/s per operator) on a terminal; in logs (CI, ray job logs) they are noise.
    ctx.enable_progress_bars = sys.stderr.isatty()
    ctx.print_on_execution_start = False
    return True


def _wants_gpu(cfg: DedupConfig) -> bool:
    """Whether the embedding actors take GPUs: asked for, or by default where the cluster has some."""
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    return (cfg.gpus_per_embed_actor or 0) > 0 or (cfg.gpus_per_embed_actor is None and gpus > 0)


def _resolve_weights(cfg: DedupConfig, timer: "Timer", params: dict):
    """The learned model's weights, found and checked before any image is read (``params["weights_info"]``
    records them): a :class:`dedup.weights.Weights` (ResNet-50), a :class:`dedup.weights.ModelFile`
    (SSCD), or None for the weight-free models."""
    if not cfg.uses_model:
        params["weights_info"] = {"weights": None, "meaningful": True, "model": cfg.model}
        return None
    from dedup import weights as wts

    with timer.stage("weights") as rec:
        if cfg.learned_model != "resnet50":
            gpu = _wants_gpu(cfg)
            spec = "torchscript" if cfg.weights == "auto" and cfg.cpu_backend == "torch" and not gpu else cfg.weights
            found = wts.resolve_sscd(cfg.learned_model, spec, cfg.weights_sha256, gpu=gpu)
            if found.format == "torchscript" and cfg.cpu_backend == "onnx" and not gpu:
                raise wts.WeightsError("--cpu-backend onnx needs the ONNX file: " + wts.install_hint(cfg.learned_model))
            rec["format"] = found.format
        else:
            found = wts.resolve(cfg.weights, cfg.weights_sha256, load=False)
            # The state dict is loaded and checked now, before any image is read, unless an ONNX export of
            # these exact weights is cached (they were checked when it was made) for the CPU backend to use:
            # then neither the driver nor the CPU actors import torch.
            if cfg.cpu_backend != "torch" and embed.onnx_available() and Path(embed.onnx_cache_path(found)).exists():
                rec["onnx_cached"] = True
            else:
                found.state_dict()
    params["weights_info"] = found.info
    return found


def _model_refs(weights, res: dict, rec: dict) -> dict:
    """The embedding actors' model in the object store, as Embedder's keyword arguments (put once, shared)."""
    import ray

    if weights is None:
        return {}
    if hasattr(weights, "format"):  # an SSCD model file: its format and bytes
        return {"sscd_ref": [ray.put((weights.format, weights.data))]}
    if res["device"] == "cpu" and res["backend"] == "onnx":  # ResNet-50: exported once, shared by the actors
        t0 = time.perf_counter()
        onnx_bytes, info = embed.onnx_model_bytes(weights)
        rec["onnx_export_seconds"] = round(time.perf_counter() - t0, 2)
        rec["onnx_cache"] = info["onnx_cache"]
        return {"onnx_ref": [ray.put(onnx_bytes)]}
    return {"state_dict_ref": [ray.put(weights.state_dict())]}


def _resources(cfg: DedupConfig, model_format: str | None = None) -> dict:
    """Embedding actor resources: one GPU each where the cluster has GPUs, else CPU actors (one per node).
    ``model_format``: the SSCD file's (onnx runs on ONNX Runtime, torchscript and random on torch)."""
    import ray

    total = ray.cluster_resources()
    gpus = int(total.get("GPU", 0))
    node_cpus = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) > 0]
    use_gpu = _wants_gpu(cfg)
    if use_gpu and model_format == "onnx" and not _onnx_cuda():
        print("[dedup] the cluster has GPUs but the model is the ONNX file and onnxruntime has no CUDA provider "
              "(pip install onnxruntime-gpu, or provide the TorchScript file): embedding on CPU actors", file=sys.stderr, flush=True)
        use_gpu = False
    if use_gpu:
        per_gpu = cfg.gpus_per_embed_actor or 1.0
        actors = cfg.embed_actors or max(1, int(gpus / per_gpu))
        return {"actors": actors, "num_gpus": per_gpu, "num_cpus": cfg.cpus_per_embed_actor or 1, "device": "gpu", "backend": "torch"}
    # CPU-only: actors that decode and embed (embed.DecodeEmbedder), each with as many model threads as the
    # CPUs it holds (default 1), as many as fit on each node (a CPU actor must fit on one node).
    per_actor = max(1, int(cfg.cpus_per_embed_actor or 1))
    fits = sum(max(1, c // per_actor) for c in (node_cpus or [1]))
    actors = cfg.embed_actors or fits
    backend = embed.resolve_cpu_backend(cfg.cpu_backend) if model_format is None else "onnx" if model_format == "onnx" else "torch"
    return {"actors": actors, "num_gpus": 0, "num_cpus": per_actor, "device": "cpu", "threads": per_actor,
            "backend": backend, "decode_in_actor": True}


def _onnx_cuda() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def collection_name(cfg: DedupConfig) -> str:
    return run_collection_name(cfg.output_path, cfg.collection)


def _bulk_staging(cfg: DedupConfig, out: Path):
    """Where bulk-import shards are written (None: batched inserts only, e.g. Milvus Lite)."""
    import os

    from dedup.bulk import BulkStaging

    if not cfg.milvus_uri or cfg.store_method == "insert":
        return None  # Milvus Lite has no bulk import
    if cfg.bulk_bucket:
        return BulkStaging(bucket=cfg.bulk_bucket, endpoint=cfg.bulk_endpoint, secure=cfg.bulk_secure,
                           access_key=cfg.bulk_access_key or os.environ.get("AWS_ACCESS_KEY_ID"),
                           secret_key=cfg.bulk_secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY"))
    return BulkStaging(local_dir=cfg.bulk_dir or str(out / "milvus-bulk"), server_dir=cfg.bulk_server_dir)


def _read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    return pads.dataset(str(path), format="parquet").to_table(columns=columns)


META_COLUMNS = ["vid", "width", "height", "mode", "format", "error", "decode_s", "embed_s"]


def run(cfg: DedupConfig) -> dict:
    import ray

    cfg.validate()
    out = cfg.output_path
    out.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    t_start = time.perf_counter()
    params = cfg.to_dict()
    state = RunState(out, fresh=cfg.fresh)

    started_ray = _init_ray(cfg)
    try:  # the model first: a missing or wrong model file must fail before any image is read
        weights = _resolve_weights(cfg, timer, params)
    except BaseException:
        if started_ray:
            ray.shutdown()
        raise
    fp_hash = fingerprint("hash", sorted(cfg.inputs), cfg.input_format, cfg.image_column)
    fp_embed = fingerprint("embed", fp_hash, cfg.model, params["weights_info"], cfg.image_size, cfg.preprocess, cfg.max_pixels,
                           EMBED_VERSION, cfg.cpu_backend if cfg.uses_model else None)
    lite = None  # the Milvus Lite server, started early when vectors will be stored (it is up by then)
    pool = ThreadPoolExecutor(1, thread_name_prefix="dedup-store")
    pending: list = []
    try:
        # 1. discover + hash bytes (exact copies), 2. plan: one representative per content
        files_path = out / "files.parquet"
        with timer.stage("hash", "files") as rec:
            if state.reusable("hash", fp_hash, files_path):
                files_tbl = pq.read_table(files_path)
                rec["reused"] = True
            else:
                state.forget("hash", "decode_embed", "store", "search")
                files_tbl = _hash_inputs(cfg, out)
                files_tbl, _ = plan.assign_vids(files_tbl)
                files_tbl = files_tbl.sort_by("path")
                pq.write_table(files_tbl, files_path)
                state.finish("hash", fp_hash)
            rec["files"] = files_tbl.num_rows
            rec["megabytes"] = round((pc.sum(files_tbl["bytes"]).as_py() or 0) / 1e6, 2)
        files_df = files_tbl.to_pandas()
        reps = plan.representatives(files_df)
        n = len(reps)

        # 3+4. decode (CPU tasks) -> embed (actor pool) -> vectors/ parquet
        vectors_dir = out / "vectors"
        if cfg.uses_model:
            res = _resources(cfg, getattr(weights, "format", None))
        else:
            res = {"actors": 0, "num_gpus": 0, "device": "cpu", "computed_in": "decode tasks"}  # weight-free: no actor
        params["embed_resources"] = res
        with timer.stage("decode_embed", "images") as rec:
            if state.reusable("decode_embed", fp_embed, vectors_dir) or (n == 0 and state.reusable("decode_embed", fp_embed)):
                rec["reused"] = True
            else:
                state.forget("decode_embed", "store", "search")
                shutil.rmtree(vectors_dir, ignore_errors=True)
                if n and not cfg.milvus_uri:
                    lite = lite_server(out).start()
                if n:
                    _decode_embed(cfg, reps, vectors_dir, res, _model_refs(weights, res, rec))
                state.finish("decode_embed", fp_embed)
            weights = None
            meta = _read_table(vectors_dir, META_COLUMNS).to_pandas() if n else _empty_meta()
            rec["images"] = int(len(meta))
            rec["decode_errors"] = int(meta["error"].notna().sum())
            dsum = float(meta["decode_s"].sum())
            esum = float(meta["embed_s"].sum())
            rec["decode_cpu_seconds"] = round(dsum, 3)
            rec["decode_images_per_cpu_second"] = round(len(meta) / dsum, 1) if dsum > 0 else None
            rec["model_seconds"] = round(esum, 3)
            rec["model_images_per_second"] = round(len(meta) / esum, 2) if esum > 0 else None

        # 5+6. store + search -> edges.parquet
        ok_count = int(meta["error"].isna().sum())
        if lite is None and not cfg.milvus_uri:
            lite = lite_server(out)  # started if a stage needs it
        bg = {"background": pending, "background_pool": pool}
        edges_tbl, search_stats = vector_stages(cfg, out, vectors_dir, ok_count, fp_embed, state, timer, params, lite=lite,
                                                binary=cfg.is_hash and cfg.binary_hashes, **bg)
        if cfg.is_combo:  # the hash signal: its own collection and threshold; edges from either, one graph
            from dedup.stages.hashes import HASHES

            hash_edges, hash_stats = vector_stages(cfg, out, vectors_dir, ok_count, fp_embed, state, timer, params,
                                                   dim=HASHES[cfg.hash_name].bits, column="hash_embedding",
                                                   threshold=cfg.hash_threshold(), suffix="_hash", lite=lite,
                                                   binary=cfg.binary_hashes, **bg)
            edges_tbl, union = combine_edges(edges_tbl, hash_edges, vectors_dir)
            search_stats = {**search_stats, "hash": hash_stats, "union": union}

        # 6b. verify: edges in the band kept only where the two images share content
        checks = verify_stage(cfg, out, edges_tbl, files_df, timer, params)
        if checks is not None:
            edges_tbl = checks.filter(pc.not_equal(checks["verified"], pa.scalar(verify.REJECTED, pa.int8())))

        # 7+8. graph, canonical, manifest
        with timer.stage("graph", "vectors") as rec:
            ua, ub, us = (edges_tbl.column(c).to_numpy() for c in ("a", "b", "sim"))
            clusters = cluster_vids(files_df, meta, n, ua, ub, us, cfg.canonical_keys())
            rec["vectors"] = n
            rec["edges"] = int(len(ua))
            rec["most_clusters_in_one_component"] = clusters.rounds
            rec["split_off_by_chaining_guard"] = clusters.split_off
        with timer.stage("manifest", "rows") as rec:
            man, errs = manifest.build(files_df, meta, clusters, representative_paths(files_df), checks)
            outputs = manifest.write(out, man, errs)
            rec["rows"] = int(len(man))

        for f in pending:  # a store still running in the background
            f.result()
        total = time.perf_counter() - t_start
        exact = int((man["match"] == "exact").sum())
        near = int((man["match"] == "near").sum())
        summary = {
            "counts": {
                "inputs": int(len(files_df)),
                "images": int(len(man)),
                "errors": int(len(errs)),
                "distinct_contents": int(n),
                "clusters": int(man["cluster_id"].nunique()) if len(man) else 0,
                "duplicate_clusters": int((man.groupby("cluster_id").size() > 1).sum()) if len(man) else 0,
                "duplicates": exact + near,
                "exact_duplicates": exact,
                "near_duplicates": near,
                "kept": int(man["is_canonical"].sum()),
                "split_off_by_chaining_guard": clusters.split_off,
            },
            "parameters": params,
            "stages": timer.stages,
            "reused_stages": [k for k, v in timer.stages.items() if v.get("reused")],
            "search": search_stats,
            "total_seconds": round(total, 3),
            "images_per_second": round(len(man) / total, 2) if total > 0 else None,
            "outputs": outputs,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        if cfg.report:  # the report reads summary.json, then the summary names the report
            from dedup.report import write_report

            summary["outputs"]["report"] = str(write_report(out))
            (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        summary["outputs"]["summary"] = str(out / "summary.json")
        return summary
    finally:
        pool.shutdown(wait=True)  # never stop the server under a store
        if lite is not None:
            lite.stop()
        if started_ray:
            ray.shutdown()


def one_operator(ds):
    """Ray Data setting for a dataset that runs as one fused map (hashing; decode + a weight-free model +
    write); returns ``ds``.

    Ray Data reserves resources per operator by default, and with a single operator that reservation held
    it to one task until the first task had finished: on 2 CPUs the second CPU sat idle for the first
    0.7-1.1 s of a 3 s stage (measured, 2,014 images: decode + multihash 4.1-4.2 s with it, 3.0-3.1 s
    without). With one operator there is nothing to reserve for, so these datasets run without it (set on
    the dataset's own context, not Ray's global one); the pipelines with several operators (decode tasks
    feeding GPU actors, store, search) keep the default.
    """
    ds.context.op_resource_reservation_enabled = False
    return ds


def _hash_inputs(cfg: DedupConfig, out: Path) -> pa.Table:
    import ray

    units = discover(cfg.inputs, cfg.input_format, exclude=[str(out)])
    items = [{"kind": u.kind, "unit": u.path, "source": u.source} for u in units]
    if not items:
        return hashing.FILES_SCHEMA.empty_table()
    ds = one_operator(ray.data.from_items(items, override_num_blocks=_blocks(len(items), 256)).map_batches(
        hashing.hash_units, batch_size=None, batch_format="numpy", fn_kwargs={"image_column": cfg.image_column},
    ))
    return pa.concat_tables([t.cast(hashing.FILES_SCHEMA) for t in ray.get(ds.to_arrow_refs())])


def _decode_embed(cfg: DedupConfig, reps: pd.DataFrame, vectors_dir: Path, res: dict, model_refs: dict) -> None:
    """decode -> embed -> vectors/: for the weight-free models, the decode tasks alone (no actor); on CPU,
    actors that decode, embed and write; with GPUs, decode tasks feeding GPU actors.

    Written to a temporary folder and renamed when complete, so a killed run never leaves a partial
    vectors/ that looks finished."""
    import ray

    units = plan.decode_units(reps)
    decode_kwargs = {"size": cfg.image_size, "max_pixels": cfg.max_pixels, "image_column": cfg.image_column,
                     "hash_name": cfg.hash_name, "with_pixels": not cfg.is_hash, "resize": cfg.preprocess}
    # Blocks of about decode_batch images (a shard is never split), each one batch of a task or an actor.
    gpu = res.get("device") == "gpu"
    embed_batch = cfg.resolved_embed_batch(gpu)
    # Blocks for GPU actors: about one model batch each, not rounded to the CPU count.
    workers = res["actors"] if res.get("decode_in_actor") else 1 if gpu else None
    ds = ray.data.from_items(units, override_num_blocks=_blocks(len(units), cfg.resolved_decode_batch(gpu), items=len(reps),
                                                                workers=workers))
    embed_kwargs = {"model": cfg.model, "threads": res.get("threads"), "backend": res.get("backend", "torch"), **model_refs}
    tmp = vectors_dir.with_name(vectors_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    if res.get("decode_in_actor"):  # CPU: the actors decode, embed and write (see embed.DecodeEmbedder)
        tmp.mkdir(parents=True)
        written = ds.map_batches(
            embed.DecodeEmbedder,
            fn_constructor_kwargs={**embed_kwargs, "decode_kwargs": decode_kwargs, "out_dir": str(tmp), "embed_batch": embed_batch},
            batch_size=None, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=res["actors"]),
            num_cpus=res["num_cpus"],
        ).take_all()
        # Only the files of batches that reported back: a retried batch may have left the file of an
        # attempt that did not, which would duplicate rows.
        keep = {Path(r["file"]).name for r in written}
        for f in tmp.iterdir():
            if f.name not in keep:
                f.unlink()
        rows = sum(int(r["rows"]) for r in written)
        if rows != len(reps):
            raise RuntimeError(f"decode+embed wrote {rows} rows for {len(reps)} images")
        tmp.rename(vectors_dir)
        return
    ds = ds.map_batches(decode.decode_units, batch_size=None, batch_format="numpy",
                        num_cpus=cfg.cpus_per_decode, fn_kwargs=decode_kwargs)
    if not cfg.uses_model:  # hashes, thumb: microseconds an image, done in the decode tasks (one fused map)
        ds = one_operator(ds.map_batches(embed.embed_light, batch_size=None, batch_format="numpy", num_cpus=cfg.cpus_per_decode,
                                         fn_kwargs={"model": cfg.model}))
    else:  # GPUs: decode tasks feed the GPU actors
        ds = ds.map_batches(
            # Ray Data needs a batch size with GPUs; decoded blocks are about one batch each (see above). The
            # model runs a batch as CUDA graphs of embed_batch images (a shorter one padded).
            embed.Embedder, fn_constructor_kwargs={**embed_kwargs, "batch": embed_batch},
            batch_size=embed_batch, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=res["actors"]),
            num_gpus=res["num_gpus"], num_cpus=res["num_cpus"],
        )
    ds.write_parquet(str(tmp))
    tmp.rename(vectors_dir)


def _blocks(units: int, per_block: int, items: int | None = None, workers: int | None = None) -> int:
    """Input blocks for a list of work units holding ``items`` items (default: one each): about
    ``per_block`` items a block, at least two blocks per CPU (parallelism), a multiple of ``workers`` (the
    actors or CPUs that take them; default the CPUs) so that the last round keeps every worker busy, never
    more blocks than units. Ray Data's default (200 blocks) made a 2,000-file run spend 3 of its 4 s of
    hashing on task overhead; 63 blocks on 2 CPU actors left one idle for a block's time (~2 s) at the end."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    workers = max(1, int(workers or cpus))
    items = units if items is None else items
    blocks = max(2 * cpus, -(-items // max(1, per_block)))
    return max(1, min(units, -(-blocks // workers) * workers))


def _empty_meta() -> pd.DataFrame:
    types = {"vid": "int64", "width": "int64", "height": "int64", "mode": object, "format": object, "error": object,
             "decode_s": "float64", "embed_s": "float64"}
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in types.items()})


def vector_stages(cfg: DedupConfig, out: Path, vectors_dir: Path, ok_count: int, fp_vectors: str,
                  state: RunState, timer: Timer, params: dict, dim: int | None = None,
                  query_every: int = 1, column: str = "embedding", threshold: float | None = None,
                  suffix: str = "", lite: MilvusLiteServer | None = None, background: list | None = None,
                  background_pool=None, binary: bool = False) -> tuple[pa.Table, dict]:
    """Stages `store` and `search` over ``vectors_dir``: returns the unique edges (also in edges.parquet).

    Used by the job and, on synthetic embeddings, by the benchmark's scale mode (which may pass its own
    ``dim``, and ``query_every`` > 1 to search from every k-th vid only, to time search on a sample).
    ``column``/``threshold``/``suffix``: a second signal (resnet50+HASH: the hash vectors at their own
    threshold, in their own collection, stages and edges file named with ``suffix``).
    ``lite``: a Milvus Lite server the job owns (else one is started here when needed). ``background``
    (a list) and ``background_pool`` (an executor): with exact search, the store is submitted there and its
    future appended to the list, for the caller to join. ``binary``: the vectors are hash bits, stored as
    BINARY_VECTOR and searched by Hamming distance (``--hash-vectors``; a server only).
    Search is exact, in memory, below ``--exact-below`` vectors (``cfg.exact_search``), else Milvus's.
    """
    threshold = cfg.threshold if threshold is None else float(threshold)
    import ray

    edges_path = out / f"edges{suffix}.parquet"
    nearest_path = out / f"nearest{suffix}.parquet"
    floor = max(-1.0, min(threshold, cfg.resolved_nn_floor() + (threshold - cfg.threshold)))  # as far below this signal's threshold
    name = collection_name(cfg) + suffix
    params["collection" + suffix] = name
    store_key, search_key_name = "store" + suffix, "search" + suffix
    fp_store = fingerprint("store", fp_vectors, cfg.milvus_uri, cfg.milvus_db, name, cfg.index, cfg.model, binary)
    exact = cfg.exact_search(ok_count)
    search_key = {"engine": "exact"} if exact else {"limit": cfg.resolved_search_limit(), "max_limit": cfg.resolved_search_max_limit()}
    fp_search = fingerprint("search", fp_store, search_key)
    stored = state.get(search_key_name)

    # Re-thresholding upwards needs no search: every pair at or above the new threshold is already stored.
    if (ok_count and stored.get("fingerprint") == fp_search and edges_path.exists() and nearest_path.exists()
            and stored.get("threshold", 2.0) <= threshold and stored.get("floor", 2.0) <= floor):
        with timer.stage(search_key_name, "queries") as rec:
            t = pq.read_table(edges_path)
            t = t.filter(pc.greater_equal(t["sim"], pa.scalar(threshold, pa.float32())))
            rec.update({"reused": True, "filtered_from_threshold": stored["threshold"], "edges": t.num_rows})
        return t, {"reused": True, "searched_at_threshold": stored["threshold"]}

    if ok_count == 0:
        t = search.EDGE_SCHEMA.empty_table()
        pq.write_table(t, edges_path)
        pq.write_table(search.NEAREST_SCHEMA.empty_table(), nearest_path)
        return t, {}

    state.forget(search_key_name)
    owned_lite = False
    with ExitStack() as stack:
        if cfg.milvus_uri:
            target = MilvusTarget(cfg.milvus_uri, cfg.milvus_token, cfg.milvus_db)
        else:
            owned_lite = lite is not None
            if lite is None:
                lite = stack.enter_context(lite_server(out))
            target = MilvusTarget(lite.wait_ready().uri)
        dim = dim or embed.embedding_dim(cfg.model)
        # Small runs: one Milvus client in this process. Starting pools of writer and search actors (a Python
        # process each, importing pymilvus) costs seconds that only pay off on many vectors.
        local = _read_table(vectors_dir, ["vid", column, "error"]) if ok_count < cfg.local_below or exact else None
        if local is not None:
            local = _drop_errors(local, column).combine_chunks().sort_by("vid")  # file order varies from run to run
        # Enough blocks that every writer and search actor gets a share of the ids.
        blocks = max(4 * max(cfg.writers, cfg.search_actors), ok_count // 5000)
        vectors = (
            ray.data.read_parquet(str(vectors_dir), columns=["vid", column, "error"])
            .map_batches(_drop_errors, batch_format="pyarrow", fn_kwargs={"column": column})
            .repartition(blocks)
        )

        # 5. store. With exact search nothing waits for it, so when the job owns the server (or uses a
        # remote one) it runs in the background, beside search, graph and manifest (run() joins it).
        limit = cfg.resolved_search_limit()

        def do_store(in_background: bool = False):
            with timer.stage(store_key, "vectors") as rec:
                if in_background:
                    rec["background"] = "beside search, graph and manifest"
                if state.reusable(store_key, fp_store) and _loaded_count(target, name) == ok_count:
                    rec["reused"] = True
                    rec["vectors"] = ok_count
                    choice = choose_index(ok_count, cfg.index, limit, binary=binary)
                else:
                    state.forget(store_key)
                    steps = rec["step_seconds"] = {}  # where the store's time goes
                    t0 = time.perf_counter()
                    create_collection(target, name, dim, replace=cfg.replace_collection, owner=out, binary=binary)
                    steps["create"] = round(time.perf_counter() - t0, 3)
                    t0 = time.perf_counter()
                    if local is not None:
                        writer = store.MilvusWriter(target, name, binary=binary)
                        inserted = sum(int(writer(local.slice(i, cfg.insert_batch))["inserted"][0]) for i in range(0, local.num_rows, cfg.insert_batch))
                        rec["method"] = "insert (driver)"
                    else:
                        method = cfg.store_method if cfg.milvus_uri else "insert"  # Milvus Lite has no bulk import
                        res = store.store_vectors(vectors, target, name, dim, method=method, staging=_bulk_staging(cfg, out),
                                                  insert_batch=cfg.insert_batch, writers=cfg.writers, shard_rows=cfg.bulk_shard_rows,
                                                  owner=out, timeout=cfg.bulk_timeout, binary=binary)
                        inserted = res.rows
                        rec["method"] = res.method
                        if res.fallback_reason:
                            rec["bulk_fallback_reason"] = res.fallback_reason
                    steps["insert"] = round(time.perf_counter() - t0, 3)
                    t0 = time.perf_counter()
                    choice = build_index_and_load(target, name, cfg.index, limit=limit, binary=binary)
                    steps["flush_index_load"] = round(time.perf_counter() - t0, 3)
                    rec["vectors"] = int(inserted)
                    if inserted != ok_count:
                        raise RuntimeError(f"Milvus took {inserted} vectors, expected {ok_count}")
                    searchable = _loaded_count(target, name)
                    if searchable != ok_count:  # a vector that cannot be found would be a missed duplicate
                        raise RuntimeError(f"Milvus can search {searchable} of the {ok_count} vectors stored in {name}")
                    state.finish(store_key, fp_store)
                rec["index"] = {"type": choice.index_type, "build": choice.build_params, "search": choice.search_params, "why": choice.reason}
                rec["vector_type"] = "BINARY_VECTOR (HAMMING)" if binary else "FLOAT_VECTOR (COSINE)"
            if exact and cfg.drop_collection:
                drop_collection(target, name, owner=out)
                state.forget(store_key)
            return choice

        if exact and background is not None and (owned_lite or cfg.milvus_uri):
            background.append(background_pool.submit(do_store, True))
        else:
            choice = do_store()

        # 6. search
        if exact:
            with timer.stage(search_key_name, "queries") as rec:
                vids = local["vid"].to_numpy()
                vecs = embed.embeddings_to_numpy(local["embedding"])
                nearest = search.NEAREST_SCHEMA.empty_table()
                if query_every == 1:
                    e = search.exact_edges(vids, vecs, threshold)
                    ua, ub, us = e["a"], e["b"], e["sim"]
                    near = e["nearest"] >= floor
                    nearest = pa.table({"vid": vids[near], "sim": np.minimum(e["nearest"][near], 1.0)}, schema=search.NEAREST_SCHEMA)
                else:  # a sample of queries (the scale benchmark) against every vector
                    q = vids % int(query_every) == 0
                    e = search.brute_force_edges(local, (vids[q], vecs[q]), threshold)
                    ua, ub, us = graph.dedupe_edges(e["a"], e["b"], e["sim"], int(vids.max()) + 1)
                del e, vecs
                edges = pa.table({"a": ua, "b": ub, "sim": us}, schema=search.EDGE_SCHEMA)
                pq.write_table(edges, edges_path)
                pq.write_table(nearest, nearest_path)
                rec["mode"] = "exact (driver, every pair)"
                rec["queries"] = int(ok_count if query_every == 1 else (ok_count + query_every - 1) // query_every)
                rec["unique_edges"] = int(edges.num_rows)
                state.finish(search_key_name, fp_search, threshold=threshold, floor=floor)
                stats = dict(rec)
            return edges, stats
        with timer.stage(search_key_name, "queries") as rec:
            searcher_args = {
                "target": target, "collection": name, "threshold": threshold,
                "limit": limit, "batch": cfg.search_batch, "index": choice.index_type, "index_params": choice.search_params,
                "max_limit": cfg.resolved_search_max_limit(), "range_search": bool(cfg.milvus_uri), "binary": binary,
                "floor": floor,
            }
            if local is not None:
                q = local if query_every == 1 else _every_kth(local, int(query_every))
                searcher = search.Searcher(**searcher_args)
                e = pa.concat_tables([pa.table(searcher(q.slice(i, 256)), schema=search.EDGE_SCHEMA) for i in range(0, q.num_rows, 256)]
                                     or [search.EDGE_SCHEMA.empty_table()])
            else:
                edges_dir = out / "search_edges"
                shutil.rmtree(edges_dir, ignore_errors=True)
                queries = vectors if query_every == 1 else vectors.map_batches(_every_kth, batch_format="pyarrow", fn_kwargs={"k": int(query_every)})
                found = queries.map_batches(
                    search.Searcher, fn_constructor_kwargs=searcher_args,
                    batch_size=256, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=cfg.search_actors), num_cpus=0.5,
                )
                found.write_parquet(str(edges_dir))
                e = _read_table(edges_dir) if edges_dir.exists() else search.EDGE_SCHEMA.empty_table()
                shutil.rmtree(edges_dir, ignore_errors=True)
            a, b, s = (e.column(c).to_numpy() for c in ("a", "b", "sim"))
            del e
            saturated = np.unique(a[b == search.SATURATED])
            retried = int(np.sum(b == search.REASKED))
            near = b == search.NEAREST
            pq.write_table(pa.table({"vid": a[near], "sim": s[near]}, schema=search.NEAREST_SCHEMA), nearest_path)
            real = b >= 0
            parts = [(a[real], b[real], s[real])]
            del a, b, s
            if len(saturated):
                # the saturated queries' own vectors: from memory on small runs, else from the Parquet vectors
                qvec = _lookup(local, saturated, "embedding") if local is not None else _vectors_of(vectors_dir, saturated, column)
                pair = (saturated, qvec)
                if local is not None:
                    t = search.brute_force_edges(local, pair, threshold)
                    parts.append((t["a"], t["b"], t["sim"]))
                else:
                    extra = vectors.map_batches(
                        search.brute_force_edges, batch_format="pyarrow", fn_kwargs={"queries_ref": ray.put(pair), "threshold": threshold},
                    )
                    for t in ray.get(extra.to_arrow_refs()):
                        if t.num_rows:
                            parts.append((t["a"].to_numpy(), t["b"].to_numpy(), t["sim"].to_numpy()))
            ea = np.concatenate([p[0] for p in parts])
            eb = np.concatenate([p[1] for p in parts])
            es = np.concatenate([p[2] for p in parts])
            found_count = len(ea)
            ua, ub, us = graph.dedupe_edges(ea, eb, es, max(int(ea.max()) + 1, int(eb.max()) + 1) if len(ea) else 1)
            del ea, eb, es, parts
            edges = pa.table({"a": ua, "b": ub, "sim": us}, schema=search.EDGE_SCHEMA)
            pq.write_table(edges, edges_path)
            rec["mode"] = "driver" if local is not None else f"{cfg.search_actors} search actors"
            rec["queries"] = int(ok_count if query_every == 1 else (ok_count + query_every - 1) // query_every)
            rec["limit"] = cfg.resolved_search_limit()
            rec["max_limit"] = cfg.resolved_search_max_limit()
            rec["edges_found"] = int(found_count)
            rec["unique_edges"] = int(edges.num_rows)
            rec["requeried_at_max_limit"] = retried
            rec["saturated_brute_forced"] = int(len(saturated))
            state.finish(search_key_name, fp_search, threshold=threshold, floor=floor)
            stats = dict(rec)
        if cfg.drop_collection:
            drop_collection(target, name, owner=out)
            state.forget(store_key)
    return edges, stats


def verify_stage(cfg: DedupConfig, out: Path, edges: pa.Table, files_df: pd.DataFrame, timer: Timer, params: dict) -> pa.Table | None:
    """Stage `verify` (:mod:`dedup.stages.verify`): the edges with their check (``verify.parquet`` caches
    every pair checked, per parameter set, so a re-run checks only pairs it has not seen), or None with
    ``--verify off``."""
    rng = cfg.verify_range()
    if rng is None:
        return None
    lo, hi = rng
    vp = verify.VerifyParams()
    params["verify_params"] = {**dataclasses.asdict(vp), "band": [lo, hi]}
    with timer.stage("verify", "edges_checked") as rec:
        sim = edges["sim"].to_numpy()
        band = (sim >= lo) & (sim < hi) if hi is not None else np.ones(len(sim), bool)
        a, b = edges["a"].to_numpy()[band], edges["b"].to_numpy()[band]
        cache_path = out / "verify.parquet"
        cached = _read_checks(cache_path, vp.key())
        n = int(max(a.max(initial=0), b.max(initial=0), cached["b"].to_numpy().max(initial=0))) + 1
        todo = ~np.isin(a * n + b, cached["a"].to_numpy(np.int64) * n + cached["b"].to_numpy(np.int64))
        need = np.unique(np.concatenate([a[todo], b[todo]]))
        reps = plan.representatives(files_df).set_index("vid").loc[need]
        where = dict(zip(need.tolist(), zip(reps["kind"].astype(str), reps["unit"].astype(str), reps["path"].astype(str))))
        t0 = time.perf_counter()
        new, counts = verify.run_checks(a[todo], b[todo], where, vp, cfg.image_column)
        if new.num_rows:
            cached = pd.concat([cached, new.to_pandas()], ignore_index=True)
            tmp = cache_path.with_suffix(".tmp")
            pq.write_table(pa.Table.from_pandas(cached, preserve_index=False).replace_schema_metadata({"params": vp.key()}), tmp)
            tmp.replace(cache_path)
        checks = verify.apply(edges, cached, lo, hi)
        v = checks["verified"].to_numpy()
        rec.update(mode=cfg.verify, band=[lo, hi], edges=int(len(v)), edges_checked=int(band.sum()),
                   checked_now=int(todo.sum()), reused_checks=int((~todo).sum()), verified=int((v == verify.VERIFIED).sum()),
                   rejected=int((v == verify.REJECTED).sum()), not_needed=int((v == verify.NOT_NEEDED).sum()),
                   images_in_band=int(len(np.unique(np.concatenate([a, b])))), images_decoded=counts["images_decoded"],
                   tasks=counts["tasks"], check_seconds=round(time.perf_counter() - t0, 3), task_cpu_seconds=counts["task_seconds"])
    pq.write_table(checks, out / "edges_checked.parquet")
    return checks


def _read_checks(path: Path, key: str) -> pd.DataFrame:
    """The pairs ``verify.parquet`` holds for these parameters (empty for others, or none)."""
    empty = verify.CHECKED_SCHEMA.empty_table().to_pandas()
    if not path.exists():
        return empty
    t = pq.read_table(path)
    if (t.schema.metadata or {}).get(b"params", b"").decode() != key:
        return empty
    return t.to_pandas()


def lite_server(out: Path) -> MilvusLiteServer:
    """The Milvus Lite server of an output folder (not started)."""
    return MilvusLiteServer(str(out / "milvus"), str(out / "milvus-lite.log"))


def _loaded_count(target: MilvusTarget, name: str) -> int:
    """Rows in an existing collection (loading it for search), or -1 when it is not there or unusable."""
    try:
        client = target.client()
        try:
            if not client.has_collection(name):
                return -1
            client.load_collection(name)
            res = client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")
            return int(res[0]["count(*)"])
        finally:
            client.close()
    except Exception as e:  # noqa: BLE001 - any failure means: store again
        print(f"[dedup] stored collection {name} not reusable ({e}); storing again", file=sys.stderr)
        return -1


def cluster_vids(files_df: pd.DataFrame, meta: pd.DataFrame, n: int, a, b, sim, canonical_keys: list[str]) -> graph.Clusters:
    """Graph + canonical stages over stored results: also used to re-threshold without embedding again."""
    per_vid = _per_vid(files_df, meta, n)
    rank = canonical.policy_rank(canonical_keys, per_vid["pixels"], per_vid["bytes"], np.arange(n))
    return graph.assign_clusters(n, a, b, sim, rank)


def representative_paths(files_df: pd.DataFrame) -> pd.Series:
    """vid -> the first path (in sort order) of that content: the representative chosen by `plan`."""
    ok = files_df[files_df["vid"].notna()]
    return ok.groupby(ok["vid"].astype(np.int64))["path"].min()


def load_stored(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, int, pa.Table]:
    """(files, vector metadata, number of vids, unique edges) of a finished run, from its output folder."""
    files_df = pq.read_table(out / "files.parquet").to_pandas()
    meta = _read_table(out / "vectors", ["vid", "width", "height", "mode", "format", "error"]).to_pandas()
    n = int(files_df["vid"].max() + 1) if files_df["vid"].notna().any() else 0
    return files_df, meta, n, pq.read_table(out / "edges.parquet")


def _every_kth(t: pa.Table, k: int) -> pa.Table:
    """Rows whose vid is a multiple of k (the scale benchmark's query sample)."""
    return t.filter(pa.array(t["vid"].to_numpy() % k == 0))


def _drop_errors(t: pa.Table, column: str = "embedding") -> pa.Table:
    """Rows without an error, as (vid, embedding): ``column`` is the vector column to use."""
    t = t.filter(pc.is_null(t["error"]))
    return pa.table({"vid": t["vid"], "embedding": t[column]})


def _vectors_of(vectors_dir: Path, vids: np.ndarray, column: str = "embedding") -> np.ndarray:
    t = pads.dataset(str(vectors_dir), format="parquet").to_table(
        columns=["vid", column], filter=pads.field("vid").isin(pa.array(vids, pa.int64()))
    )
    return _lookup(t, vids, column)


def _lookup(t: pa.Table, vids: np.ndarray, column: str) -> np.ndarray:
    """The ``column`` vectors of ``vids`` (in that order) from a table holding at least those vids."""
    have = t["vid"].to_numpy()
    order = np.argsort(have)
    pos = order[np.searchsorted(have[order], vids)]
    return embed.embeddings_to_numpy(t[column])[pos]


def combine_edges(model_edges: pa.Table, hash_edges: pa.Table, vectors_dir: Path) -> tuple[pa.Table, dict]:
    """resnet50+HASH: the union of the two edge sets, one graph. ``sim`` stays the ResNet-50 cosine (also
    for pairs only the hash found, computed here), so the manifest's similarities mean one thing."""
    ma, mb = model_edges["a"].to_numpy(), model_edges["b"].to_numpy()
    ha, hb = hash_edges["a"].to_numpy(), hash_edges["b"].to_numpy()
    n = int(max(ma.max(initial=0), mb.max(initial=0), ha.max(initial=0), hb.max(initial=0))) + 1
    only = ~np.isin(ha * n + hb, ma * n + mb)
    oa, ob = ha[only], hb[only]
    sims = np.zeros(len(oa), np.float32)
    if len(oa):
        vids = np.unique(np.concatenate([oa, ob]))
        vecs = _vectors_of(vectors_dir, vids)
        ia, ib = np.searchsorted(vids, oa), np.searchsorted(vids, ob)
        sims = np.minimum(np.einsum("ij,ij->i", vecs[ia], vecs[ib]), 1.0).astype(np.float32)
    edges = pa.table({"a": np.concatenate([ma, oa]), "b": np.concatenate([mb, ob]),
                      "sim": np.concatenate([model_edges["sim"].to_numpy(), sims])}, schema=search.EDGE_SCHEMA)
    both = int(len(ha) - len(oa))
    return edges, {"model_edges": int(len(ma)), "hash_edges": int(len(ha)), "found_by_both": both, "hash_only": int(len(oa))}


def _per_vid(files_df: pd.DataFrame, meta: pd.DataFrame, n: int) -> dict[str, np.ndarray]:
    pixels = np.zeros(n, np.int64)
    nbytes = np.zeros(n, np.int64)
    if n:
        m = meta.set_index("vid")
        idx = m.index.to_numpy(np.int64)
        pixels[idx] = (m["width"].to_numpy(np.int64) * m["height"].to_numpy(np.int64))
        ok = files_df[files_df["vid"].notna()]
        nbytes[ok["vid"].to_numpy(np.int64)] = ok["bytes"].to_numpy(np.int64)
    return {"pixels": pixels, "bytes": nbytes}


def print_summary(summary: dict, stream=sys.stdout) -> None:
    c = summary["counts"]
    w = summary["parameters"].get("weights_info", {})
    lines = [
        "",
        "dedup finished",
        f"  inputs {c['inputs']}  images {c['images']}  errors {c['errors']}",
        f"  clusters {c['clusters']} ({c['duplicate_clusters']} with duplicates)  kept {c['kept']}  "
        f"duplicates {c['duplicates']} (exact {c['exact_duplicates']}, near {c['near_duplicates']})",
        f"  split off by the chaining guard: {c['split_off_by_chaining_guard']}",
        f"  model {summary['parameters'].get('model')}" + (f" ({w.get('format') or w.get('weights')}: {w.get('source') or w.get('weights')})" if w.get("weights") else " (weight-free)")
        + f", threshold {summary['parameters'].get('threshold')}",
        f"  {summary['total_seconds']:.1f}s total, {summary['images_per_second']} images/s end to end",
    ]
    for name, st in summary["stages"].items():
        rate = next((f"{v} {k.replace('_per_second', '')}/s" for k, v in st.items() if k.endswith("_per_second")), "")
        if st.get("background"):
            rate += f" (in the background, {st['background']})"
        if st.get("reused"):
            rate = "reused from an earlier run" + (f" (edges filtered from threshold {st['filtered_from_threshold']})" if "filtered_from_threshold" in st else "")
        lines.append(f"    {name:<13} {st['seconds']:>8.1f}s  {rate}")
    if not w.get("meaningful", True):
        lines.append("  RANDOM WEIGHTS: the clusters above mean nothing; do not act on remove.txt.")
    lines.append(f"  manifest: {summary['outputs']['manifest_csv']}")
    lines.append(f"  errors:   {summary['outputs']['errors_csv']}")
    lines.append(f"  summary:  {summary['outputs']['summary']}")
    if "report" in summary["outputs"]:
        lines.append(f"  report:   {summary['outputs']['report']}")
    print("\n".join(lines), file=stream, flush=True)


__all__ = ["run", "print_summary", "collection_name"]
