"""The job: wires the stages (see :mod:`dedup.stages`) into one Ray Data run and writes the outputs.

    discover -> hashing -> plan -> decode -> embed -> [vectors/ parquet] -> store -> search -> graph
             -> canonical -> manifest

Intermediate results live in the output folder: ``files.parquet`` (hashes), ``vectors/`` (one Parquet
dataset of embeddings and image metadata, so later stages and re-runs never embed again), ``edges/``.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from dedup.config import DedupConfig
from dedup.milvus import MilvusLiteServer, MilvusTarget, build_index_and_load, create_collection
from dedup.sources import discover
from dedup.stages import canonical, decode, embed, graph, hashing, manifest, plan, search, store


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
        if items is not None:
            entry[f"{items_label}_per_second"] = round(items / seconds, 2) if seconds > 0 else None
        entry.update(record)
        self.stages[name] = entry
        print(f"[dedup] {name}: {seconds:.1f}s {record}", file=sys.stderr, flush=True)


def _init_ray(cfg: DedupConfig) -> bool:
    """Start or join Ray. Returns True when this call started it (and should stop it)."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=cfg.ray_address, ignore_reinit_error=True, include_dashboard=False, logging_level="WARNING")
    ctx = ray.data.DataContext.get_current()
    # Progress bars on a terminal; in logs (CI, ray job logs) Ray's periodic progress lines are noise.
    ctx.enable_progress_bars = sys.stderr.isatty()
    ctx.print_on_execution_start = False
    return True


def _resources(cfg: DedupConfig) -> dict:
    """Embedding actor resources: one GPU each where the cluster has GPUs, else CPU actors."""
    import ray

    total = ray.cluster_resources()
    gpus = int(total.get("GPU", 0))
    cpus = int(total.get("CPU", 1))
    use_gpu = (cfg.gpus_per_embed_actor or 0) > 0 or (cfg.gpus_per_embed_actor is None and gpus > 0)
    if use_gpu:
        per_gpu = cfg.gpus_per_embed_actor or 1.0
        actors = cfg.embed_actors or max(1, int(gpus / per_gpu))
        return {"actors": actors, "num_gpus": per_gpu, "num_cpus": cfg.cpus_per_embed_actor or 1, "device": "gpu"}
    actors = cfg.embed_actors or 1
    # Reserve all but one CPU per actor, so decode tasks can still be scheduled beside it; torch in the
    # actor runs as many threads as the actor's share of the node's CPUs.
    reserve = cfg.cpus_per_embed_actor or max(1, cpus // actors - 1)
    threads = int(cfg.cpus_per_embed_actor or max(1, cpus // actors))
    return {"actors": actors, "num_gpus": 0, "num_cpus": reserve, "device": "cpu", "threads": threads}


def collection_name(cfg: DedupConfig) -> str:
    if cfg.collection:
        return cfg.collection
    return "dedup_" + hashlib.sha1(str(cfg.output_path).encode()).hexdigest()[:12]


def _read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    return pads.dataset(str(path), format="parquet").to_table(columns=columns)


def run(cfg: DedupConfig) -> dict:
    import ray

    cfg.validate()
    out = cfg.output_path
    out.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    t_start = time.perf_counter()
    params = cfg.to_dict()
    state_ref = None

    # Weights first: a missing weights file must fail before any image is read.
    if cfg.model == "resnet50":
        from dedup.weights import load_state_dict

        with timer.stage("weights"):
            state_dict, weights_info = load_state_dict(cfg.weights, cfg.weights_sha256)
        params["weights_info"] = weights_info
    else:
        state_dict = None
        params["weights_info"] = {"weights": None, "meaningful": True, "model": cfg.model}

    started_ray = _init_ray(cfg)
    try:
        if state_dict is not None:
            state_ref = ray.put(state_dict)
            del state_dict

        # 1. discover + hash bytes (exact copies)
        with timer.stage("hash", "files") as rec:
            units = discover(cfg.inputs, cfg.input_format, exclude=[str(out)])
            items = [{"kind": u.kind, "unit": u.path, "source": u.source} for u in units]
            if items:
                ds = ray.data.from_items(items).map_batches(
                    hashing.hash_units, batch_size=16, batch_format="numpy",
                    fn_kwargs={"image_column": cfg.image_column},
                )
                files_tbl = pa.concat_tables([t.cast(hashing.FILES_SCHEMA) for t in ray.get(ds.to_arrow_refs())])
            else:
                files_tbl = hashing.FILES_SCHEMA.empty_table()
            rec["files"] = files_tbl.num_rows
            rec["megabytes"] = round((pc.sum(files_tbl["bytes"]).as_py() or 0) / 1e6, 2)

        # 2. plan: one representative per content
        files_tbl, reps = plan.assign_vids(files_tbl)
        files_tbl = files_tbl.sort_by("path")
        pq.write_table(files_tbl, out / "files.parquet")
        n = len(reps)

        # 3+4. decode (CPU tasks) -> embed (actor pool) -> vectors/ parquet
        vectors_dir = out / "vectors"
        shutil.rmtree(vectors_dir, ignore_errors=True)
        res = _resources(cfg) if cfg.model == "resnet50" else {"actors": cfg.embed_actors or 1, "num_gpus": 0, "num_cpus": 1, "device": "cpu"}
        params["embed_resources"] = res
        with timer.stage("decode_embed", "images") as rec:
            if n:
                units_work = plan.decode_units(reps)
                ds = ray.data.from_items(units_work).map_batches(
                    decode.decode_units, batch_size=cfg.decode_batch, batch_format="numpy",
                    fn_kwargs={"size": cfg.image_size, "max_pixels": cfg.max_pixels, "image_column": cfg.image_column},
                )
                ds = ds.map_batches(
                    embed.Embedder,
                    fn_constructor_kwargs={"model": cfg.model, "state_dict_ref": [state_ref], "threads": res.get("threads")},
                    batch_size=cfg.embed_batch, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=res["actors"]),
                    num_gpus=res["num_gpus"], num_cpus=res["num_cpus"],
                )
                ds.write_parquet(str(vectors_dir))
                meta = _read_table(vectors_dir, ["vid", "width", "height", "mode", "format", "error", "decode_s", "embed_s"]).to_pandas()
            else:
                meta = pd.DataFrame({c: pd.Series(dtype=t) for c, t in [("vid", "int64"), ("width", "int64"), ("height", "int64"), ("mode", object), ("format", object), ("error", object), ("decode_s", "float64"), ("embed_s", "float64")]})
            rec["images"] = int(len(meta))
            rec["decode_errors"] = int(meta["error"].notna().sum())
            dsum = float(meta["decode_s"].sum())
            esum = float(meta["embed_s"].sum())
            rec["decode_cpu_seconds"] = round(dsum, 3)
            rec["decode_images_per_cpu_second"] = round(len(meta) / dsum, 1) if dsum > 0 else None
            rec["model_seconds"] = round(esum, 3)
            rec["model_images_per_second"] = round(len(meta) / esum, 2) if esum > 0 else None

        ok_vids = meta.loc[meta["error"].isna(), "vid"].to_numpy(np.int64)
        edges_a = np.zeros(0, np.int64)
        edges_b = np.zeros(0, np.int64)
        edges_s = np.zeros(0, np.float32)
        search_stats = {}
        with ExitStack() as stack:
            if len(ok_vids):
                if cfg.milvus_uri:
                    target = MilvusTarget(cfg.milvus_uri, cfg.milvus_token, cfg.milvus_db)
                else:
                    server = stack.enter_context(MilvusLiteServer(str(out / "milvus"), str(out / "milvus-lite.log")))
                    target = MilvusTarget(server.uri)
                name = collection_name(cfg)
                params["collection"] = name
                dim = embed.embedding_dim(cfg.model)
                # Enough blocks that every writer and search actor gets a share of the ids.
                blocks = max(4 * max(cfg.writers, cfg.search_actors), len(ok_vids) // 5000)
                vectors = (
                    ray.data.read_parquet(str(vectors_dir), columns=["vid", "embedding", "error"])
                    .map_batches(_drop_errors, batch_format="pyarrow")
                    .repartition(blocks)
                )

                # 5. store
                with timer.stage("store", "vectors") as rec:
                    create_collection(target, name, dim)
                    inserted = vectors.map_batches(
                        store.MilvusWriter, fn_constructor_kwargs={"target": target, "collection": name},
                        batch_size=cfg.insert_batch, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=cfg.writers), num_cpus=0.5,
                    ).sum("inserted") or 0
                    build_index_and_load(target, name, cfg.index)
                    rec["vectors"] = int(inserted)
                    if inserted != len(ok_vids):
                        raise RuntimeError(f"Milvus took {inserted} vectors, expected {len(ok_vids)}")

                # 6. search
                with timer.stage("search", "queries") as rec:
                    edges_dir = out / "search_edges"
                    shutil.rmtree(edges_dir, ignore_errors=True)
                    found = vectors.map_batches(
                        search.Searcher,
                        fn_constructor_kwargs={
                            "target": target, "collection": name, "threshold": cfg.threshold,
                            "limit": cfg.resolved_search_limit(), "batch": cfg.search_batch, "index": cfg.index,
                            "max_limit": cfg.resolved_search_max_limit(), "range_search": bool(cfg.milvus_uri),
                        },
                        batch_size=256, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=cfg.search_actors), num_cpus=0.5,
                    )
                    found.write_parquet(str(edges_dir))
                    e = _read_table(edges_dir) if edges_dir.exists() else search.EDGE_SCHEMA.empty_table()
                    a, b, s = (e.column(c).to_numpy() for c in ("a", "b", "sim"))
                    saturated = np.unique(a[b == -1])
                    retried = int(np.sum(b == -2))
                    real = b >= 0
                    edges_a, edges_b, edges_s = a[real], b[real], s[real]
                    if len(saturated):
                        q = _vectors_of(vectors_dir, saturated)
                        extra = vectors.map_batches(
                            search.brute_force_edges, batch_format="pyarrow",
                            fn_kwargs={"query_vids": saturated, "queries": q, "threshold": cfg.threshold},
                        )
                        t = pa.concat_tables(ray.get(extra.to_arrow_refs())) if extra.count() else None
                        if t is not None and t.num_rows:
                            edges_a = np.concatenate([edges_a, t["a"].to_numpy()])
                            edges_b = np.concatenate([edges_b, t["b"].to_numpy()])
                            edges_s = np.concatenate([edges_s, t["sim"].to_numpy()])
                    rec["queries"] = int(len(ok_vids))
                    rec["limit"] = cfg.resolved_search_limit()
                    rec["max_limit"] = cfg.resolved_search_max_limit()
                    rec["edges_found"] = int(len(edges_a))
                    rec["requeried_at_max_limit"] = retried
                    rec["saturated_brute_forced"] = int(len(saturated))
                    search_stats = rec

        # 7+8. graph, canonical, manifest
        files_df = files_tbl.to_pandas()
        with timer.stage("graph", "vectors") as rec:
            ua, ub, us = graph.dedupe_edges(edges_a, edges_b, edges_s, n)
            pq.write_table(pa.table({"a": ua, "b": ub, "sim": us}, schema=search.EDGE_SCHEMA), out / "edges.parquet")
            clusters = cluster_vids(files_df, meta, n, ua, ub, us, cfg.canonical_keys())
            rec["vectors"] = n
            rec["edges"] = int(len(ua))
            rec["guard_rounds"] = clusters.rounds
            rec["split_off_by_chaining_guard"] = clusters.split_off
        with timer.stage("manifest", "rows") as rec:
            man, errs = manifest.build(files_df, meta, clusters, representative_paths(files_df))
            outputs = manifest.write(out, man, errs)
            rec["rows"] = int(len(man))

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
            "search": search_stats,
            "total_seconds": round(total, 3),
            "images_per_second": round(len(man) / total, 2) if total > 0 else None,
            "outputs": outputs,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        summary["outputs"]["summary"] = str(out / "summary.json")
        return summary
    finally:
        if started_ray:
            ray.shutdown()


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


def _drop_errors(t: pa.Table) -> pa.Table:
    return t.filter(pc.is_null(t["error"])).select(["vid", "embedding"])


def _vectors_of(vectors_dir: Path, vids: np.ndarray) -> np.ndarray:
    t = pads.dataset(str(vectors_dir), format="parquet").to_table(
        columns=["vid", "embedding"], filter=pads.field("vid").isin(pa.array(vids, pa.int64()))
    )
    order = np.argsort(t["vid"].to_numpy())
    pos = order[np.searchsorted(t["vid"].to_numpy()[order], vids)]
    return embed.embeddings_to_numpy(t["embedding"])[pos]


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
        f"  {summary['total_seconds']:.1f}s total, {summary['images_per_second']} images/s end to end",
    ]
    for name, st in summary["stages"].items():
        rate = next((f"{v} {k.replace('_per_second', '')}/s" for k, v in st.items() if k.endswith("_per_second")), "")
        lines.append(f"    {name:<13} {st['seconds']:>8.1f}s  {rate}")
    if not w.get("meaningful", True):
        lines.append("  RANDOM WEIGHTS: the clusters above mean nothing; do not act on remove.txt.")
    lines.append(f"  manifest: {summary['outputs']['manifest_csv']}")
    lines.append(f"  errors:   {summary['outputs']['errors_csv']}")
    lines.append(f"  summary:  {summary['outputs']['summary']}")
    print("\n".join(lines), file=stream, flush=True)


__all__ = ["run", "print_summary", "collection_name"]
