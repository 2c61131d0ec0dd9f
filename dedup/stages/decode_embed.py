"""Stage `decode_embed`: every distinct image decoded and turned into its vector, on Ray.

In:  the representatives from `discover` (one per vid), the model from `weights`.
Out: ``vectors/`` (Parquet: ``vid``, ``width``, ``height``, ``mode``, ``format``, ``error``, ``decode_s``,
     ``embed_s``, ``embedding``, and ``hash_embedding`` for a model with a hash); its value is a
     :class:`Vectors` (the folder, the metadata without the vectors, how many have no error).

Three topologies, by model and hardware:

* weight-free models (hashes, thumb): decode tasks compute the vector themselves (one fused map);
* CPU-only clusters: one actor per CPU (:class:`DecodeEmbedder`) that decodes its batch, runs the model and
  writes the vectors itself: one actor's decoding fills the time another's model leaves, and no separate
  task waits for a CPU the actors hold (bare model, 2 cores: 2 x 1 thread 37.9 images/s, 1 x 2 threads 38.5);
* GPUs: decode tasks on the CPUs feed one :class:`Embedder` actor per GPU.

Written to ``vectors.partial/`` and renamed when complete, so a killed run never leaves vectors that look
finished; each actor batch's file is written under a temporary name first, and only the files of batches
that reported back are kept (a retried batch may have left another attempt's file).
"""
from __future__ import annotations

import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from dedup.ops.hashes import HASHES
from dedup.ops.models import MODEL_DIMS, ResNet50Features, run_by_shape, sscd_features, thumb_embed
from dedup.stages.base import Stage, StageContext, StageResult
from dedup.stages.common import EMBED_VERSION

META_COLUMNS = ["vid", "width", "height", "mode", "format", "error", "decode_s", "embed_s"]


@dataclass
class Vectors:
    path: Path  # the vectors/ Parquet dataset
    meta: pd.DataFrame  # META_COLUMNS, one row per vid
    n: int  # distinct contents (vids 0..n-1)
    _tables: dict = field(default_factory=dict, repr=False)
    _reading: threading.Lock = field(default_factory=threading.Lock, repr=False)  # the store's thread and search share one read

    @property
    def ok_count(self) -> int:
        """Vectors without an error: what is stored and searched."""
        return int(self.meta["error"].isna().sum())

    def table(self, column: str = "embedding") -> pa.Table:
        """(vid, embedding) of every vector without an error, in vid order (the Parquet files come back in
        another order each run, and exact search's float sums would follow it); ``column`` is renamed
        ``embedding``. Read once and kept (store and search of a small run share it)."""
        with self._reading:
            if column not in self._tables:
                self._tables[column] = read_in_vid_order(self.path, column)
            return self._tables[column]

    def dataset(self, column: str, blocks: int):
        """The same rows as a Ray Dataset of ``blocks`` blocks (for writer and search actors)."""
        import ray

        return (ray.data.read_parquet(str(self.path), columns=["vid", column, "error"])
                .map_batches(drop_errors, batch_format="pyarrow", fn_kwargs={"column": column}).repartition(blocks))

    def inner(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vids, vectors, boxes: left, top, right, bottom in unit coordinates) of the pictures found inside
        images (``inner_embedding``, ``inner_box``; none where the run did not look for them), in vid order."""
        from dedup.ops.models import embeddings_to_numpy

        ds = pads.dataset(str(self.path), format="parquet")
        if "inner_embedding" not in ds.schema.names:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32), np.zeros((0, 4), np.float32)
        t = ds.to_table(columns=["vid", "inner_embedding", "inner_box"],
                        filter=pads.field("error").is_null() & pads.field("inner_embedding").is_valid())
        order = np.argsort(t["vid"].to_numpy())
        return (t["vid"].to_numpy()[order], embeddings_to_numpy(t["inner_embedding"])[order],
                embeddings_to_numpy(t["inner_box"]).reshape(-1, 4)[order])

    def of(self, vids: np.ndarray, column: str = "embedding") -> np.ndarray:
        """The ``column`` vectors of ``vids``, in that order."""
        from dedup.ops.models import embeddings_to_numpy

        t = pads.dataset(str(self.path), format="parquet").to_table(
            columns=["vid", column], filter=pads.field("vid").isin(pa.array(vids, pa.int64())))
        have = t["vid"].to_numpy()
        order = np.argsort(have)
        return embeddings_to_numpy(t[column])[order[np.searchsorted(have[order], vids)]]


def read_in_vid_order(path: Path, column: str) -> pa.Table:
    """(vid, embedding) of the rows without an error, in vid order, read a file at a time into one array:
    the vectors are held once (the dataset read whole, filtered, combined and sorted held them four times
    over: 8 GB for a million SSCD vectors)."""
    import pyarrow.compute as pc

    ds = pads.dataset(str(path), format="parquet")
    ok = pc.is_null(pc.field("error"))
    order = np.sort(ds.to_table(columns=["vid"], filter=ok)["vid"].to_numpy())
    kind = ds.schema.field(column).type  # fixed_size_list<value>[dim]
    out = np.empty((len(order), kind.list_size), kind.value_type.to_pandas_dtype())
    for fragment in ds.get_fragments():
        t = fragment.to_table(columns=["vid", column], filter=ok)
        values = t[column].combine_chunks().flatten().to_numpy(zero_copy_only=False)
        out[np.searchsorted(order, t["vid"].to_numpy())] = values.reshape(-1, kind.list_size)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(out.reshape(-1)), kind.list_size)  # no copy of out
    return pa.table({"vid": pa.array(order, pa.int64()), "embedding": vectors})


def drop_errors(t: pa.Table, column: str = "embedding") -> pa.Table:
    """Rows without an error, as (vid, embedding): ``column`` is the vector column to use."""
    import pyarrow.compute as pc

    t = t.filter(pc.is_null(t["error"]))
    return pa.table({"vid": t["vid"], "embedding": t[column]})


class DecodeEmbedStage(Stage):
    name = "decode_embed"
    items = "images"
    after = ("discover", "weights", "reference")

    def fingerprint(self, ctx: StageContext):
        cfg = ctx.cfg
        skipped = sorted(_skipped(ctx))  # byte-identical to a reference image: that image's vector serves
        return [cfg.model, ctx.params["weights_info"], cfg.image_size, cfg.preprocess, cfg.max_pixels, EMBED_VERSION,
                cfg.cpu_backend if cfg.uses_model else None, skipped, inner_pictures(cfg)]

    def artifacts(self, ctx: StageContext):
        return (ctx.layout.vectors,) if ctx.value("discover").n > len(_skipped(ctx)) else ()

    def load(self, ctx: StageContext, stored: dict) -> StageResult:
        # what the run that made the vectors had (asking Ray again would start it for nothing; Ray is not up
        # on a re-run that reuses this stage, and an output written before this was recorded has none)
        ctx.params["embed_resources"] = stored.get("embed_resources") or {"recorded": False}
        return self._result(ctx)

    def run(self, ctx: StageContext) -> StageResult:
        files, layout = ctx.value("discover"), ctx.layout
        res = ctx.params["embed_resources"] = self._resources(ctx)
        shutil.rmtree(layout.vectors, ignore_errors=True)
        metrics = {}
        reps = files.reps[~files.reps["vid"].isin(_skipped(ctx))]
        if len(reps):
            refs = _model_refs(ctx.value("weights"), res, metrics)
            _decode_embed(ctx.cfg, reps, layout, res, refs)
        out = self._result(ctx)
        out.metrics.update(metrics)
        out.state["embed_resources"] = res
        return out

    @staticmethod
    def _resources(ctx: StageContext) -> dict:
        from dedup.ray_env import embed_resources

        if not ctx.cfg.uses_model:  # weight-free: computed in the decode tasks, no actor
            return {"actors": 0, "num_gpus": 0, "device": "cpu", "computed_in": "decode tasks"}
        return embed_resources(ctx.cfg, getattr(ctx.value("weights"), "format", None))

    @staticmethod
    def _result(ctx: StageContext) -> StageResult:
        n = ctx.value("discover").n
        embedded = n - len(_skipped(ctx))
        meta = pads.dataset(str(ctx.layout.vectors), format="parquet").to_table(columns=META_COLUMNS).to_pandas() if embedded else _empty_meta()
        meta = meta.sort_values("vid", kind="stable").reset_index(drop=True)
        dsum, esum = float(meta["decode_s"].sum()), float(meta["embed_s"].sum())
        metrics = {"images": int(len(meta)), "decode_errors": int(meta["error"].notna().sum()), "decode_cpu_seconds": round(dsum, 3),
                   "decode_images_per_cpu_second": round(len(meta) / dsum, 1) if dsum > 0 else None,
                   "model_seconds": round(esum, 3), "model_images_per_second": round(len(meta) / esum, 2) if esum > 0 else None}
        return StageResult(Vectors(ctx.layout.vectors, meta, n), metrics)


def _skipped(ctx: StageContext) -> set[int]:
    """New vids not embedded: byte-identical to a reference image (`reference`)."""
    refs = ctx.values.get("reference")
    return set(refs.exact) if refs is not None else set()


def _empty_meta() -> pd.DataFrame:
    types = {"vid": "int64", "width": "int64", "height": "int64", "mode": object, "format": object, "error": object,
             "decode_s": "float64", "embed_s": "float64"}
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in types.items()})


def _model_refs(weights, res: dict, metrics: dict) -> dict:
    """The embedding actors' model in the object store, as Embedder's keyword arguments (put once, shared)."""
    import ray

    from dedup.ops import models

    if weights is None:
        return {}
    if hasattr(weights, "format"):  # an SSCD model file: its format and bytes
        return {"sscd_ref": [ray.put((weights.format, weights.data))]}
    if res["device"] == "cpu" and res["backend"] == "onnx":  # ResNet-50: exported once, shared by the actors
        t0 = time.perf_counter()
        onnx_bytes, info = models.onnx_model_bytes(weights)
        metrics.update(onnx_export_seconds=round(time.perf_counter() - t0, 2), onnx_cache=info["onnx_cache"])
        return {"onnx_ref": [ray.put(onnx_bytes)]}
    return {"state_dict_ref": [ray.put(weights.state_dict())]}


def _decode_embed(cfg, reps: pd.DataFrame, layout, res: dict, model_refs: dict) -> None:
    """decode -> embed -> vectors/ in one of the three topologies (module docstring)."""
    import ray

    from dedup.ops import plan
    from dedup.ray_env import blocks

    units = plan.decode_units(reps)
    gpu = res.get("device") == "gpu"
    # Blocks of about decode_batch images (a shard is never split), each one batch of a task or an actor;
    # for GPU actors about one model batch each, not rounded to the CPU count.
    workers = res["actors"] if res.get("decode_in_actor") else 1 if gpu else None
    ds = ray.data.from_items(units, override_num_blocks=blocks(len(units), cfg.resolved_decode_batch(gpu), items=len(reps), workers=workers))
    tmp = layout.vectors_partial
    shutil.rmtree(tmp, ignore_errors=True)
    if res.get("decode_in_actor"):
        _in_actors(cfg, ds, res, model_refs, tmp, len(reps))
    else:
        _in_tasks(cfg, ds, res, model_refs, tmp)
    tmp.rename(layout.vectors)


def _decode_kwargs(cfg) -> dict:
    return {"size": cfg.image_size, "max_pixels": cfg.max_pixels, "image_column": cfg.image_column,
            "hash_name": cfg.hash_name, "with_pixels": not cfg.is_hash, "resize": cfg.preprocess, "inner": inner_pictures(cfg)}


def inner_pictures(cfg) -> bool:
    """Whether the decode workers look for a picture inside each image and embed it (``inner_embedding``)."""
    return bool(cfg.uses_model and cfg.inner_pictures)


def _embed_kwargs(cfg, res: dict, model_refs: dict) -> dict:
    return {"model": cfg.model, "threads": res.get("threads"), "backend": res.get("backend", "torch"), **model_refs}


def _in_actors(cfg, ds, res: dict, model_refs: dict, tmp: Path, expected: int) -> None:
    """CPU: the actors decode, embed and write (:class:`DecodeEmbedder`)."""
    import ray

    tmp.mkdir(parents=True)
    written = ds.map_batches(
        DecodeEmbedder,
        fn_constructor_kwargs={**_embed_kwargs(cfg, res, model_refs), "decode_kwargs": _decode_kwargs(cfg), "out_dir": str(tmp),
                               "embed_batch": cfg.resolved_embed_batch(False)},
        batch_size=None, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=res["actors"]), num_cpus=res["num_cpus"],
    ).take_all()
    keep = {Path(r["file"]).name for r in written}  # only batches that reported back (see the module docstring)
    for f in tmp.iterdir():
        if f.name not in keep:
            f.unlink()
    rows = sum(int(r["rows"]) for r in written)
    if rows != expected:
        raise RuntimeError(f"decode+embed wrote {rows} rows for {expected} images")


def _in_tasks(cfg, ds, res: dict, model_refs: dict, tmp: Path) -> None:
    """Weight-free models: decode tasks alone; GPUs: decode tasks feeding the GPU actors."""
    import ray

    from dedup.ops.decode import decode_units
    from dedup.ray_env import one_operator

    ds = ds.map_batches(decode_units, batch_size=None, batch_format="numpy", num_cpus=cfg.cpus_per_decode, fn_kwargs=_decode_kwargs(cfg))
    if not cfg.uses_model:  # hashes, thumb: microseconds an image, done in the decode tasks (one fused map)
        ds = one_operator(ds.map_batches(embed_light, batch_size=None, batch_format="numpy", num_cpus=cfg.cpus_per_decode,
                                         fn_kwargs={"model": cfg.model}))
    else:  # Ray Data needs a batch size with GPUs; blocks are about one batch each. A shorter batch runs padded.
        batch = cfg.resolved_embed_batch(True)
        ds = ds.map_batches(Embedder, fn_constructor_kwargs={**_embed_kwargs(cfg, res, model_refs), "batch": batch},
                            batch_size=batch, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=res["actors"]),
                            num_gpus=res["num_gpus"], num_cpus=res["num_cpus"])
    ds.write_parquet(str(tmp))


# ---- the actors and the weight-free batch function -------------------------------------------------------

def _actor_device(threads: int | None) -> tuple[str, int | None]:
    """(device, model threads) of this actor: cuda where Ray gave it a GPU torch can see, else cpu with as
    many threads as the CPUs it holds (unless given)."""
    import ray

    resources = ray.get_runtime_context().get_assigned_resources()
    if resources.get("GPU", 0) > 0:
        import torch

        if torch.cuda.is_available():
            return "cuda", None
    return "cpu", threads or max(1, int(resources.get("CPU", 1)))


class Embedder:
    """Ray Data callable class: one model per actor, loaded once."""

    def __init__(self, model: str, state_dict_ref=None, threads: int | None = None, backend: str = "auto",
                 onnx_ref=None, batch: int | None = None, sscd_ref=None):
        self.model_name = model
        # MODEL+HASH: the learned model on the pixels, and the decode workers' hash passed on as a second vector
        self.hash_dim = HASHES[model.split("+", 1)[1]].bits if "+" in model else None
        model = model.split("+", 1)[0]
        self.dim = MODEL_DIMS[model]
        if model in ("resnet50", "sscd", "sscd-mobile"):
            self.features = self._load(model, state_dict_ref, threads, backend, onnx_ref, batch, sscd_ref)
        elif model in HASHES:  # computed by the decode workers: +1/-1 -> unit length, cosine = 1 - 2h/bits
            self.features = lambda signs: (np.asarray(signs, np.float32) / np.sqrt(self.dim)).astype(np.float32)
        else:
            self.features = thumb_embed

    @staticmethod
    def _load(model, state_dict_ref, threads, backend, onnx_ref, batch, sscd_ref):
        """The learned model, from what the driver resolved and put in the object store."""
        import ray

        t0 = time.perf_counter()
        device, threads = _actor_device(threads)
        if model != "resnet50":  # sscd, sscd-mobile: (format, bytes) of the resolved file
            fmt, data = ray.get(sscd_ref[0])
            t1 = time.perf_counter()
            features = sscd_features(fmt, data, device, threads, batch)
        else:
            onnx_bytes = ray.get(onnx_ref[0]) if onnx_ref and onnx_ref[0] is not None and device == "cpu" else None
            # The ONNX session needs no state dict (nor torch): 100 MB less to fetch, seconds less to start.
            state_dict = ray.get(state_dict_ref[0]) if onnx_bytes is None else None
            t1 = time.perf_counter()
            features = ResNet50Features(state_dict, device, threads, backend, onnx_bytes, batch=batch)
        if device == "cuda":  # where a GPU actor's start-up goes (it is on the run's critical path)
            import torch

            print(f"[dedup] {model} actor on {torch.cuda.get_device_name()}: imports and weights fetched in {t1 - t0:.1f} s, "
                  f"model on the GPU in {time.perf_counter() - t1:.1f} s", file=sys.stderr, flush=True)
        return features

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        n = len(batch["vid"])
        errors = [_text(e) for e in batch["error"]]
        ok = np.array([e is None for e in errors], dtype=bool)
        emb = np.zeros((n, self.dim), np.float32)
        t0 = time.perf_counter()
        if ok.all():  # no copy of the pixels for the usual batch without errors
            emb[:] = run_by_shape(self.features, batch["pixels"])
        elif ok.any():
            emb[ok] = run_by_shape(self.features, batch["pixels"][ok])
        extra = {}
        if "inner" in batch:  # the pictures inside the images: more of the model's time, counted with it
            extra["inner_embedding"], extra["inner_box"] = self._inner(batch["inner"], batch["inner_box"], ok)
        seconds = time.perf_counter() - t0
        flat = pa.array(emb.reshape(-1), pa.float32())
        if self.hash_dim:
            signs = np.zeros((n, self.hash_dim), np.float32)
            signs[ok] = np.asarray(batch["hash"], np.float32)[ok] / np.sqrt(self.hash_dim)
            extra["hash_embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(signs.reshape(-1), pa.float32()), self.hash_dim)
        return pa.table(
            {
                "vid": pa.array(batch["vid"], pa.int64()),
                "width": pa.array(batch["width"], pa.int64()),
                "height": pa.array(batch["height"], pa.int64()),
                "mode": pa.array([_text(v) for v in batch["mode"]], pa.string()),
                "format": pa.array([_text(v) for v in batch["format"]], pa.string()),
                "error": pa.array(errors, pa.string()),
                "decode_s": pa.array(batch["decode_s"], pa.float64()),
                "embed_s": pa.array(np.full(n, seconds / max(n, 1)), pa.float64()),
                "embedding": pa.FixedSizeListArray.from_arrays(flat, self.dim),
                **extra,
            }
        )

    def _inner(self, pictures: np.ndarray, boxes: np.ndarray, ok: np.ndarray) -> tuple[pa.Array, pa.Array]:
        """The vectors of the pictures inside the batch's images (the decode workers' ``inner`` column: the
        model input as bytes, b"" for none) and their boxes (unit coordinates); null where an image has none."""
        has = np.array([bool(ok[i]) and isinstance(p, bytes) and len(p) > 0 for i, p in enumerate(pictures)], bool)
        vecs = np.zeros((len(pictures), self.dim), np.float32)
        if has.any():
            side = int(round((len(pictures[np.flatnonzero(has)[0]]) // 3) ** 0.5))
            pixels = np.stack([np.frombuffer(pictures[i], np.uint8).reshape(side, side, 3) for i in np.flatnonzero(has)])
            vecs[has] = self.features(pixels)
        boxes = np.nan_to_num(np.asarray(boxes, np.float32).reshape(-1, 4))
        return (pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1), pa.float32()), self.dim, mask=pa.array(~has)),
                pa.FixedSizeListArray.from_arrays(pa.array(boxes.reshape(-1), pa.float32()), 4, mask=pa.array(~has)))


class DecodeEmbedder(Embedder):
    """Ray Data callable class for CPU-only runs: decode work units, embed them and write them, in one actor.

    One single-threaded actor per CPU (the default on CPU): each decodes its batch, then runs the model
    on it, so one actor's decoding fills the time another's model would leave idle, and no decode task
    competes with a multi-threaded model for the same cores (a stalled thread holds up every operator of
    a multi-threaded one). Bare model, 2 cores: 2 x 1 thread 37.9 images/s, 1 x 2 threads 38.5.
    Each batch's rows are written by the actor itself to ``out_dir`` (Parquet, written under a temporary
    name and renamed): separate write tasks would need a CPU that the actors hold, so they either waited
    for the end (every vector held in the object store meanwhile) or, with no CPU reserved, started
    extra worker processes that slowed the model by 15 %.
    In: decode work units (see :func:`dedup.ops.decode.decode_units`).
    Out: one row per batch: ``file`` (the Parquet file written, rows as :class:`Embedder`), ``rows``.
    """

    def __init__(self, model: str, decode_kwargs: dict, out_dir: str, embed_batch: int = 64, **kwargs):
        super().__init__(model, **kwargs)
        self.decode_kwargs = decode_kwargs
        self.out_dir = out_dir
        self.embed_batch = max(1, int(embed_batch))

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        import os
        import uuid

        import pyarrow.parquet as pq

        from dedup.ops.decode import decode_units

        decoded = decode_units(batch, **self.decode_kwargs)
        n = len(decoded["vid"])
        parts = [super(DecodeEmbedder, self).__call__({k: v[i : i + self.embed_batch] for k, v in decoded.items()})
                 for i in range(0, n, self.embed_batch)]
        table = pa.concat_tables(parts) if parts else super().__call__(decoded)
        path = os.path.join(self.out_dir, f"part-{uuid.uuid4().hex}.parquet")
        pq.write_table(table, path + ".tmp")
        os.replace(path + ".tmp", path)  # a retried batch never leaves half a file behind
        return pa.table({"file": [path], "rows": [table.num_rows]})


def embed_light(batch: dict[str, np.ndarray], model: str) -> pa.Table:
    """Ray Data batch function for the models that need no actor (hashes, thumb): they cost microseconds
    an image, so they run in the decode tasks, in parallel, with no actor process to start."""
    return _light(model)(batch)


_LIGHT: dict[str, Embedder] = {}


def _light(model: str) -> Embedder:
    if model not in _LIGHT:
        _LIGHT[model] = Embedder(model)
    return _LIGHT[model]


def _text(value) -> str | None:
    """A string cell as it comes out of a Ray batch: an all-null column arrives as NaN, not None."""
    return value if isinstance(value, str) and value else None
