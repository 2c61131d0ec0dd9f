"""The job: the stage list for a config, run by the runner, then the summary and the report.

    weights ─┐
    discover ┴─> decode_embed ─> store ─> search ──────────────> verify ─> graph ─> canonical ─> attach ─> manifest
                              └> store_hash ─> search_hash ─> union ┘   (a model with a hash)
           └> reference ─> (decode_embed) ─> search_reference ─> union   (--reference)

(With exact search, `store` runs in the background and `search` does not wait for it.)
"""
from __future__ import annotations

import sys
import time

from dedup import runs
from dedup import summary as summaries
from dedup.config import DedupConfig
from dedup.layout import OutputLayout
from dedup.errors import InputNotFound, JobError, NoImages, OutputNotWritable
from dedup.runner import Runner, RunState, StageFailed
from dedup.stages import (AttachStage, CanonicalStage, DecodeEmbedStage, DiscoverStage, GraphStage, ManifestStage, ReferenceStage, SearchReferenceStage,
                          InnerStage, SearchStage, StoreStage, UnionStage, VerifyStage, WeightsStage)
from dedup.stages.base import Signal, StageContext
from dedup.stages.decode_embed import inner_pictures


def signals(cfg: DedupConfig) -> list[Signal]:
    """The vectors searched on their own: the model's (or the hash model's), and a combo's hash beside it."""
    from dedup.ops.hashes import HASHES
    from dedup.ops.models import embedding_dim

    main = Signal("", "embedding", embedding_dim(cfg.model), float(cfg.threshold), cfg.resolved_nn_floor(),
                  binary=cfg.is_hash and cfg.binary_hashes)
    if not cfg.is_combo:
        return [main]
    t = cfg.hash_threshold()
    floor = max(-1.0, min(t, cfg.resolved_nn_floor() + (t - cfg.threshold)))  # as far below its own threshold
    return [main, Signal("_hash", "hash_embedding", HASHES[cfg.hash_name].bits, t, floor, binary=cfg.binary_hashes)]


def stages(cfg: DedupConfig) -> list:
    """The stage list, in order."""
    out = [WeightsStage(), DiscoverStage()] + ([ReferenceStage()] if cfg.references else []) + [DecodeEmbedStage()]
    searches = []
    for sig in signals(cfg):
        out.append(StoreStage(sig))
        if not cfg.reference_only:
            out.append(SearchStage(sig))
            searches.append(sig.search)
    if cfg.references:
        out.append(SearchReferenceStage(signals(cfg)[0]))
        searches.append("search_reference")
    if inner_pictures(cfg) and not cfg.reference_only:
        out.append(InnerStage())
        searches.append("inner")
    union = len(searches) > 1 or cfg.reference_only
    if union:
        out.append(UnionStage(tuple(searches)))
    return out + [VerifyStage("union" if union else "search", references=bool(cfg.references)), GraphStage(), CanonicalStage(), AttachStage(),
                 ManifestStage()]


def run(cfg: DedupConfig, whole_process: bool = False) -> dict:
    """Run the job on ``cfg`` and return its summary (also in ``OUTPUT/summary.json``).

    Start-up: Milvus Lite first (a process of its own, from this thread: it dies with the thread that
    started it, see vectordb.milvus), then Ray, started by the runner just before the first stage that
    needs it, with the weights check and the hashing of local inputs running beside it. ``summary.json``'s
    ``timeline`` has the start-up and shutdown lines beside the stages' (``whole_process``: this process
    was started for this run, `dedup run`, so its start-up before the job is a line too)."""
    from dedup.services import Services

    cfg = cfg.validate()
    layout = OutputLayout.of(cfg.output)
    check_inputs(cfg)
    check_output(layout)
    for w in cfg.warnings:
        print(f"dedup: warning: {w}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    timeline = {"process_start_to_run": _since_process_start()} if whole_process else {}
    services = Services(cfg, layout)
    services.start_milvus()
    ctx = StageContext(cfg, layout, cfg.to_dict(), services)
    ray_up = _RayStart(cfg, ctx)
    s = None
    try:
        runner = Runner(stages(cfg), ctx, RunState(layout.state, fresh=cfg.fresh), start_ray=ray_up)
        try:
            timings = runner.run()
        except StageFailed as e:
            if isinstance(e.__cause__, JobError):  # a person's to fix (no input, no image): that error alone
                raise e.__cause__ from None
            raise
        check_some_image(cfg, ctx)
        if cfg.drop_collection:
            _drop_collections(cfg, ctx)
        timeline.update(runner.startup, **services.timeline())
        s = _finish(cfg, ctx, timings, time.perf_counter() - t0, timeline, runs.run_key(runner.fps, cfg))
        return s
    finally:
        t1 = time.perf_counter()
        services.close()
        if ray_up.started:
            import ray

            ray.shutdown()
        if s is not None:  # the shutdown's own line, once it is over
            s["timeline"]["shutdown"] = {"seconds": round(time.perf_counter() - t1, 3)}
            summaries.write(ctx.layout.summary, s)
            runs.save_summary(ctx.layout, s.get("run_id"))


def check_some_image(cfg: DedupConfig, ctx: StageContext) -> None:
    """:class:`NoImages` (exit 5) when not one input could be read and decoded as an image: a run of only
    errors is no result. ``errors.csv`` is written by then, with every file's reason. (With --reference the
    new images may all be the reference's: no check.)"""
    man, errs = ctx.value("manifest")
    if len(man) or not len(errs) or cfg.references:
        return
    msg = errs["error"].fillna("unknown error").astype(str)
    reasons = msg.str.extract(r"^([^:(]*)", expand=False).str.strip()  # as the report groups them: details vary per file
    top = reasons.where(reasons.str.len() > 0, msg).value_counts()
    why = "; ".join(f"{reason}: {count:,}" for reason, count in top.head(3).items()) + ("; ..." if len(top) > 3 else "")
    err = NoImages(f"no images in {', '.join(map(str, cfg.inputs))}: none of its {len(errs):,} files could be read as an image "
                   f"({why}; e.g. {errs['path'].iloc[0]}); every file's reason is in {ctx.layout.errors_csv}")
    err.errors_written = True  # this run's manifest and errors are written (dedup.ray reads them back)
    raise err


def check_inputs(cfg: DedupConfig) -> None:
    """Every local ``--input`` exists (before anything starts; a remote one is listed by `discover`)."""
    import os

    for src in cfg.inputs:
        s = str(src)
        if "://" in s and not s.startswith("file://"):
            continue
        path = os.path.expanduser(s.removeprefix("file://"))
        if not os.path.lexists(path):
            raise InputNotFound(f"input not found: {s}")


def check_output(layout: OutputLayout) -> None:
    """``--output`` is a folder this process can create and write in (before anything starts)."""
    import tempfile

    root = layout.root
    if root.exists() and not root.is_dir():
        raise OutputNotWritable(f"output {root} exists and is not a folder: pass --output a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputNotWritable(f"output folder {root} cannot be created: {e.strerror or e}") from None
    try:
        with tempfile.NamedTemporaryFile(dir=root, prefix=".dedup-write-check-"):
            pass
    except OSError as e:
        raise OutputNotWritable(f"output folder {root} cannot be written: {e.strerror or e}") from None


class _RayStart:
    """The runner's ``start_ray``: start (or join) Ray and note where it listens."""

    def __init__(self, cfg: DedupConfig, ctx: StageContext):
        self.cfg, self.ctx, self.started = cfg, ctx, False

    def __call__(self) -> None:
        from dedup.ray_env import init_ray, ray_info

        self.started = init_ray(self.cfg.ray_address)
        self.ctx.params["ray"] = ray_info()


def _since_process_start() -> dict:
    """Seconds from this process's start to the job's (the interpreter and the imports)."""
    try:
        import psutil

        return {"seconds": round(time.time() - psutil.Process().create_time(), 3)}
    except Exception:  # noqa: BLE001 - a platform without it: the line is left out
        return {"seconds": None}


def _drop_collections(cfg: DedupConfig, ctx: StageContext) -> None:
    from dedup.stages.common import collection_name
    from dedup.vectordb.milvus import drop_collection

    for sig in signals(cfg):
        drop_collection(ctx.services.milvus(), collection_name(cfg, sig), owner=cfg.output_path)
        RunState(ctx.layout.state).forget(sig.store)


def _finish(cfg: DedupConfig, ctx: StageContext, timings: dict, seconds: float, timeline: dict, key: str) -> dict:
    """summary.json, then the report (it reads summary.json), then the summary names the report; then
    the run's files are kept under runs/<run id>/ too (:mod:`dedup.runs`), where the next run leaves them."""
    files, (man, errs) = ctx.value("discover"), ctx.value("manifest")
    counts = summaries.counts(files.table, man, errs, files.n, ctx.value("graph").split_off)
    if cfg.references:
        counts.update(reference_matches=int((man["match"] == "reference").sum()), exact_copies_of_reference=len(ctx.value("reference").exact))
    s = summaries.build(counts, ctx.params, timings, seconds, ctx.layout.outputs())
    s["timeline"] = timeline
    s["warnings"] = cfg.warnings
    s["run_id"] = runs.next_id(ctx.layout, key)
    s["outputs"]["run"] = str(ctx.layout.run_dir(s["run_id"]))
    summaries.write(ctx.layout.summary, s)
    if cfg.report:
        from dedup.report import write_report

        s["outputs"]["report"] = str(write_report(ctx.layout.root))
        summaries.write(ctx.layout.summary, s)
    s["outputs"]["summary"] = str(ctx.layout.summary)
    if not cfg.report:  # no report for this run: the top-level one is an earlier run's
        ctx.layout.report.unlink(missing_ok=True)
    runs.save(ctx.layout, s["run_id"])
    return s
