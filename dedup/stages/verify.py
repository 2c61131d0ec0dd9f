"""Stage `verify`: ambiguous edges are kept only where the two images share content.

In:  the edges of `search` (or `union`); the representatives from `discover` (where each vid's bytes are);
     the band ``[lo, hi)`` of similarities to check (``--verify band``; ``all``: every edge; ``off``: none).
Out: ``edges_checked.parquet``: the edges with ``verified`` (1 passed, 0 rejected, -1 not needed for edges
     at or above ``hi``), ``inliers`` and ``mirrored``; the value is a :class:`Checked` (the edges kept,
     rejected ones dropped, and the checked table). ``verify.parquet`` caches every pair checked, with the
     parameters' key, so a re-run (the same band or another) checks only pairs it has not seen.

The check itself is :mod:`dedup.ops.verify`. Here it runs on Ray tasks over the band's edges, grouped by
connected component (:func:`~dedup.ops.verify.plan_tasks`) so that an image is read and described once
and images the band does not touch are never decoded. A component larger than a task is cut into pieces;
its images may then be decoded by more than one task (``images_decoded`` counts every decode).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dedup.ops.templates import open_wedges
from dedup.ops.verify import (CHECKED_SCHEMA, NOT_NEEDED, REJECTED, VERIFIED, VerifyParams, apply, check_edges, plan_tasks,
                              templates)
from dedup.ops.matching import single_threaded
from dedup.stages.base import Stage, StageContext, StageResult


@dataclass
class Checked:
    edges: pa.Table  # (a, b, sim): what the graph gets
    checks: pa.Table | None  # the edges with verified/inliers/mirrored (None with --verify off)


class VerifyStage(Stage):
    name = "verify"
    items = "edges_checked"

    def __init__(self, edges_from: str, references: bool = False):
        self.edges_from = edges_from  # search, or union (a model with a hash, or --reference)
        self.after = ("discover", "reference", edges_from) if references else ("discover", edges_from)
        self.after += ("inner",)  # where the run has it: the pairs a picture inside an image found

    def run(self, ctx: StageContext) -> StageResult:
        edges, rng = ctx.value(self.edges_from), ctx.cfg.verify_range()
        if rng is None:
            return StageResult(Checked(edges, None), {"mode": "off"})
        lo, hi = rng
        vp = VerifyParams()
        ctx.params["verify_params"] = {**dataclasses.asdict(vp), "band": [lo, hi]}
        band, a, b = in_band(edges, lo, hi, inner_pictures(ctx))
        cached, todo, counts, seconds = self._check(ctx, a, b, vp)
        wa, wb = wedges(cached, a, b, vp)
        if len(wa):  # the third pairs of the templates' open triangles, checked as any pair
            cached, wtodo, wcounts, wseconds = self._check(ctx, wa, wb, vp, cached)
            counts, seconds, todo = _added(counts, wcounts), seconds + wseconds, np.concatenate([todo, wtodo])
        cached, template = without_templates(cached, a, b, wa, wb) if vp.templates else (cached, 0)
        checks = apply(edges, cached, lo, hi, band)
        pq.write_table(checks, ctx.layout.edges_checked)
        v = checks["verified"].to_numpy()
        metrics = {"mode": ctx.cfg.verify, "band": [lo, hi], "edges": int(len(v)), "edges_checked": int(band.sum()),
                   "checked_now": int(todo.sum()), "reused_checks": int((~todo).sum()), "verified": int((v == VERIFIED).sum()),
                   "rejected": int((v == REJECTED).sum()), "not_needed": int((v == NOT_NEEDED).sum()),
                   "images_in_band": int(len(np.unique(np.concatenate([a, b])))), "images_decoded": counts["images_decoded"],
                   "template_pairs": template, "template_checks": int(len(wa)), "tasks": counts["tasks"], "check_seconds": round(seconds, 3),
                   "task_seconds": counts["task_seconds"], "task_cpu_seconds": counts["task_cpu_seconds"],
                   "cpu_ms_per_pair": round(1000 * counts["task_cpu_seconds"] / max(1, int(todo.sum())), 2)}
        kept = checks.filter(pc.not_equal(checks["verified"], pa.scalar(REJECTED, pa.int8())))
        return StageResult(Checked(kept.select(["a", "b", "sim"]), checks), metrics)

    def needs_ray_now(self, ctx: StageContext) -> bool:
        """Only where a pair in the band has no check in ``verify.parquet`` yet (a re-run checks nothing)."""
        rng = ctx.cfg.verify_range()
        if rng is None:
            return False
        _, a, b = in_band(ctx.value(self.edges_from), *rng, inner_pictures(ctx))
        vp = VerifyParams()
        self._read = read_checks(ctx.layout.verify_cache, vp.key())  # run() takes it, not read twice
        if unchecked(a, b, self._read).any():
            return True
        wa, wb = wedges(self._read, a, b, vp)  # a run stopped between the band's checks and these
        return bool(len(wa) and unchecked(wa, wb, self._read).any())

    def _check(self, ctx: StageContext, a: np.ndarray, b: np.ndarray, vp: VerifyParams, cached: pd.DataFrame | None = None):
        """The pairs' checks: the cached ones (``cached``, else ``verify.parquet``'s), and the others run now
        (then added to the cache)."""
        cache = ctx.layout.verify_cache
        if cached is None:
            cached = self.__dict__.pop("_read", None)
        cached = read_checks(cache, vp.key()) if cached is None else cached
        todo = unchecked(a, b, cached)
        t0 = time.perf_counter()
        reps = ctx.value("discover").reps
        if "reference" in ctx.values and len(ctx.value("reference").reps):  # pairs with a reference image: its bytes are there
            reps = pd.concat([reps, ctx.value("reference").reps[reps.columns]], ignore_index=True)
        new, counts = run_checks(a[todo], b[todo], where(reps, a[todo], b[todo]), vp, ctx.cfg.image_column,
                                 pictures=inner_pictures(ctx))
        if new.num_rows:
            cached = pd.concat([cached, new.to_pandas()], ignore_index=True)
            tmp = cache.with_suffix(".tmp")
            pq.write_table(pa.Table.from_pandas(cached, preserve_index=False).replace_schema_metadata({"params": vp.key()}), tmp)
            tmp.replace(cache)
        return cached, todo, counts, time.perf_counter() - t0


def inner_pictures(ctx: StageContext) -> dict | None:
    """The pairs stage `inner` found (``a``, ``b``), which of them the search did not (``only``), and where
    each picture is (``boxes``); None in a run without it."""
    if "inner" not in ctx.values:
        return None
    found = ctx.value("inner")
    a, b = found.edges["a"].to_numpy(), found.edges["b"].to_numpy()
    only = np.ones(len(a), bool)
    searched = ctx.values.get("search")
    if searched is not None and len(a):
        sa, sb = searched["a"].to_numpy(), searched["b"].to_numpy()
        n = int(max(a.max(), b.max(), sa.max(initial=0), sb.max(initial=0))) + 1
        only = ~np.isin(a * n + b, sa * n + sb)
    return {"a": a, "b": b, "only": only, "boxes": found.boxes}


def in_band(edges: pa.Table, lo: float, hi: float | None, pictures: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(which edges are to be checked, their a, their b): those in the band [lo, hi) (``hi`` None: every
    edge), and every pair only a picture inside an image found (``pictures``' ``only``, :func:`inner_pictures`),
    whatever its similarity: the check is what says the picture is the other image (and its transform is
    what the kept image reads)."""
    sim, a, b = edges["sim"].to_numpy(), edges["a"].to_numpy(), edges["b"].to_numpy()
    band = (sim >= lo) & (sim < hi) if hi is not None else np.ones(len(sim), bool)
    if pictures is not None and pictures["only"].any() and not band.all():
        ia, ib = pictures["a"][pictures["only"]], pictures["b"][pictures["only"]]
        band |= _among(a, b, ia, ib)
    return band, a[band], b[band]


def unchecked(a: np.ndarray, b: np.ndarray, cached: pd.DataFrame) -> np.ndarray:
    """Which pairs (a[i], b[i]) ``cached`` (:func:`read_checks`) holds no check of."""
    return ~_among(a, b, cached["a"].to_numpy(), cached["b"].to_numpy())


def _among(xa: np.ndarray, xb: np.ndarray, ya: np.ndarray, yb: np.ndarray) -> np.ndarray:
    """Which pairs (xa[i], xb[i]) are among the pairs (ya[j], yb[j]) (in that order), by one ``isin`` of the
    pairs as single integers."""
    xa, xb, ya, yb = (np.asarray(v, np.int64) for v in (xa, xb, ya, yb))
    n = int(max(v.max(initial=0) for v in (xa, xb, ya, yb))) + 1
    return np.isin(xa * n + xb, ya * n + yb)


def without_templates(checked: pd.DataFrame, a: np.ndarray, b: np.ndarray, wa: np.ndarray | None = None,
                      wb: np.ndarray | None = None) -> tuple[pd.DataFrame, int]:
    """The checks of the pairs (a[i], b[i]) with those that matched only a recurring frame
    (:func:`~dedup.ops.verify.templates`, over this run's pairs together, and the third pairs (wa[i], wb[i])
    checked to close its open triangles, :func:`wedges`) turned to failed; and their count (of the first)."""
    wa, wb = (np.zeros(0, np.int64) if w is None else np.asarray(w, np.int64) for w in (wa, wb))
    rows = checked[_among(checked["a"].to_numpy(), checked["b"].to_numpy(), np.concatenate([a, wa]), np.concatenate([b, wb]))].copy()
    found = templates(rows["a"].to_numpy(), rows["b"].to_numpy(), rows["ok"].to_numpy(), rows["grid"].to_numpy())
    rows["ok"] = rows["ok"].to_numpy() & ~found
    mine = _among(rows["a"].to_numpy(), rows["b"].to_numpy(), a, b)
    return rows[mine], int(found[mine].sum())


def wedges(checked: pd.DataFrame, a: np.ndarray, b: np.ndarray, vp: VerifyParams) -> tuple[np.ndarray, np.ndarray]:
    """The pairs that close the open triangles of the band's same-frame matches
    (:func:`~dedup.ops.templates.open_wedges` over ``checked``'s rows of the pairs (a[i], b[i])); none where
    ``vp`` checks no templates or no such pairs."""
    if not vp.templates or not vp.template_wedges or not len(a):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows = checked[_among(checked["a"].to_numpy(), checked["b"].to_numpy(), a, b)]
    return open_wedges(rows["a"].to_numpy(), rows["b"].to_numpy(), rows["grid"].to_numpy(), vp.template_wedges)


def _added(counts: dict, more: dict) -> dict:
    """Two runs' counts (:func:`run_checks`) summed."""
    return {k: counts.get(k, 0) + more.get(k, 0) for k in counts.keys() | more.keys()}


def where(reps: pd.DataFrame, a: np.ndarray, b: np.ndarray) -> dict[int, tuple[str, str, str]]:
    """vid -> (kind, unit, path) of its representative, for the vids of the pairs (a[i], b[i])."""
    need = np.unique(np.concatenate([a, b]))
    r = reps.set_index("vid").loc[need]
    return dict(zip(need.tolist(), zip(r["kind"].astype(str), r["unit"].astype(str), r["path"].astype(str))))


def read_checks(path, key: str) -> pd.DataFrame:
    """The pairs ``verify.parquet`` holds for these parameters (empty for others, or none)."""
    empty = CHECKED_SCHEMA.empty_table().to_pandas()
    if not path.exists():
        return empty
    t = pq.read_table(path)
    if (t.schema.metadata or {}).get(b"params", b"").decode() != key:
        return empty
    return t.to_pandas()


def run_checks(a: np.ndarray, b: np.ndarray, where: dict[int, tuple[str, str, str]], params: VerifyParams,
               image_column: str | None = None, edges_per_task: int | None = None, num_cpus: float = 1.0,
               pictures: dict | None = None) -> tuple[pa.Table, dict]:
    """Check every pair on Ray tasks (:func:`plan_tasks`). Returns (a CHECKED_SCHEMA table, counts).
    ``pictures``: the pairs stage `inner` found and the pictures' boxes (:func:`inner_pictures`).

    ``edges_per_task`` (default): about four tasks per CPU, between 64 and 2,000 edges each (a task
    of 2,000 edges is ~10-20 s of one CPU)."""
    if len(a) == 0:  # every pair cached (a re-run): Ray is not asked anything
        return CHECKED_SCHEMA.empty_table(), {"tasks": 0, "images_decoded": 0, "task_seconds": 0.0, "task_cpu_seconds": 0.0}
    import ray

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    per_task = edges_per_task or int(min(2000, max(64, -(-len(a) // (4 * cpus)))))
    tasks = plan_tasks(a, b, per_task)
    remote = ray.remote(num_cpus=num_cpus)(_task)
    refs = []
    for idx in tasks:
        sub = {int(v): where[int(v)] for v in np.unique(np.concatenate([a[idx], b[idx]]))}
        refs.append(remote.remote(a[idx], b[idx], sub, params, image_column, _for_task(pictures, a[idx], b[idx])))
    parts = ray.get(refs)
    table = pa.concat_tables([pa.table({k: p[k] for k in CHECKED_SCHEMA.names}, schema=CHECKED_SCHEMA) for p in parts])
    return table, {"tasks": len(tasks), "images_decoded": int(sum(p["images_decoded"] for p in parts)),
                   "task_seconds": round(float(sum(p["seconds"] for p in parts)), 3),
                   "task_cpu_seconds": round(float(sum(p["cpu_seconds"] for p in parts)), 3)}


def _for_task(pictures: dict | None, a: np.ndarray, b: np.ndarray) -> dict | None:
    """What :func:`~dedup.ops.verify.check_edges` needs of ``pictures`` for the pairs (a[i], b[i]): which of
    them stage `inner` found (``pairs``) and those pictures' boxes."""
    if pictures is None or not len(pictures["a"]):
        return None
    n = int(max(a.max(initial=0), b.max(initial=0), pictures["a"].max(), pictures["b"].max())) + 1
    mine = np.isin(a * n + b, pictures["a"] * n + pictures["b"])
    pairs = set(zip(a[mine].tolist(), b[mine].tolist()))
    vids = {v for p in pairs for v in p}
    return {"pairs": pairs, "boxes": {v: box for v, box in pictures["boxes"].items() if v in vids}}


def _task(a, b, where, params, image_column, pictures=None):
    single_threaded()
    return check_edges(np.asarray(a), np.asarray(b), where, params, image_column, pictures=pictures)


