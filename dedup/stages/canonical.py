"""Stage `canonical`: which image of each cluster is kept, by the quality of the versions.

In:  the clusters of `graph` (formed in the ``largest`` order, pictured images last), the edges `verify` kept, the
     representatives from `discover` (where each vid's bytes are), ``--canonical``.
Out: the clusters with each one's kept image chosen by :func:`dedup.ops.canonical.choose` among its
     candidates (the members that are near copies of every other member, so the cluster itself does not
     change), and ``canonical.parquet``: per candidate its evidence (:data:`dedup.ops.quality.FIELDS`),
     whether it was kept and why. With a key-list policy (``largest``, ``pixels,bytes,path``...) the
     graph's choice stands and nothing is read.

Only images with a copy are read again (once each, on Ray tasks of whole clusters); clusters that hold a
reference image keep it (a reference image is never removed). A JPEG's lattice (a second decode, of its luma alone)
is taken only where another candidate of its cluster has its pixel count (:func:`lattice_needed`), and
what the pairwise rules derive from a version is derived once (:class:`dedup.ops.canonical.Version`'s
memo). The metrics give the tasks' CPU (``time.process_time`` inside them, summed): ``measure_cpu_seconds``,
``choose_cpu_seconds``, ``task_cpu_seconds`` and ``cpu_ms_per_candidate``.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pyarrow as pa

from dedup.ops.canonical import per_vid
from dedup.stages.base import Stage, StageContext, StageResult

MAX_CANDIDATES = 16  # the most versions of one cluster compared (the first in the largest order)
IMAGES_PER_TASK = 256  # at most; fewer when that leaves CPUs idle (about eight tasks per CPU: the last round's tail)


@dataclasses.dataclass
class Choice:
    clusters: object  # dedup.ops.graph.Clusters, canonical replaced
    why: dict[int, str]  # canonical vid -> why it was kept (clusters the policy looked at)


class CanonicalStage(Stage):
    name = "canonical"
    items = "candidates"
    after = ("discover", "decode_embed", "reference", "inner", "verify", "graph")

    def fingerprint(self, ctx: StageContext):
        """The policy; with ``quality``, also what the choice is made from (the clusters, the edges and the
        check's transforms: the stages before it that are not fingerprinted) and by (the code and the model)."""
        if ctx.cfg.canonical != "quality":
            return [ctx.cfg.canonical]
        return ["quality", ctx.cfg.image_column, MAX_CANDIDATES, _code_digest(), _inputs_digest(ctx)]

    def artifacts(self, ctx: StageContext):
        return (ctx.layout.canonical,) if ctx.cfg.canonical == "quality" else ()

    def needs_ray_now(self, ctx: StageContext) -> bool:
        return ctx.cfg.canonical == "quality" and bool(self._groups(ctx))

    def load(self, ctx: StageContext, stored: dict) -> StageResult:
        clusters = ctx.value("graph")
        if ctx.cfg.canonical != "quality":
            return StageResult(Choice(clusters, {}), {"policy": ctx.cfg.canonical})
        t = pd.read_parquet(ctx.layout.canonical, columns=["cluster_vid", "vid", "kept", "why"])
        kept = t[t["kept"].astype(bool)]
        chosen = {int(c): (int(v), str(w)) for c, v, w in zip(kept["cluster_vid"], kept["vid"], kept["why"])}
        out = rechoose(clusters, chosen, ctx.value("verify").edges)
        return StageResult(Choice(out, {v: why for v, why in chosen.values()}), dict(stored.get("metrics", {})))

    def _groups(self, ctx: StageContext, is_ref: np.ndarray | None = None) -> dict[int, list[int]]:
        """The candidates per cluster (:func:`candidates`); ``is_ref``: graph_inputs' reference flags, where known."""
        from dedup.stages.common import graph_inputs

        edges = ctx.value("verify").edges
        is_ref = graph_inputs(ctx)[3] if is_ref is None else is_ref
        return candidates(ctx.value("graph").canonical, edges["a"].to_numpy(), edges["b"].to_numpy(), is_ref)

    def run(self, ctx: StageContext) -> StageResult:
        from dedup.stages.common import graph_inputs

        clusters = ctx.value("graph")
        if ctx.cfg.canonical != "quality":
            return StageResult(Choice(clusters, {}), {"policy": ctx.cfg.canonical})
        edges = ctx.value("verify").edges
        table, meta, n, is_ref = graph_inputs(ctx)
        groups = self._groups(ctx, is_ref)
        where = ctx.value("discover").reps.set_index("vid")[["kind", "unit", "path"]]
        sims = cluster_sims(groups, edges["a"].to_numpy(), edges["b"].to_numpy(), edges["sim"].to_numpy())
        links = pair_transforms(groups, ctx.value("verify").checks)
        boxes = ctx.value("inner").boxes if "inner" in ctx.values else {}
        cpu: dict = {}
        rows, chosen = run_choices(groups, where, per_vid(table, meta, n), ctx.cfg.image_column, sims, cpu, links, boxes) \
            if groups else ([], {})
        out = rechoose(clusters, chosen, edges)
        frame = pd.DataFrame(rows) if rows else pd.DataFrame({k: [] for k in ("cluster_vid", "vid", "path", "kept", "why", "error")})
        frame.to_parquet(ctx.layout.canonical, index=False)  # also empty: a re-run reuses it
        changed = sum(1 for c, (v, _) in chosen.items() if v != c)
        count = int(sum(len(g) for g in groups.values()))
        metrics = {"policy": "quality", "clusters": len(groups), "candidates": count, "changed_from_largest": changed,
                   "unreadable": int(sum(1 for r in rows if r.get("error"))), **cpu_metrics(cpu, count)}
        return StageResult(Choice(out, {v: why for v, why in chosen.values()}), metrics, {"metrics": metrics})


def _code_digest() -> str:
    """The choice's code and model: a change to either chooses again."""
    import hashlib
    from pathlib import Path

    from dedup.ops import (agreement, canonical, evidence, features, lattices, lineage, matching, quality, regions, tones, verify,
                           versions)

    h = hashlib.sha1()
    modules = (agreement, canonical, evidence, features, lattices, lineage, matching, quality, regions, tones, verify, versions)
    for path in [*(m.__file__ for m in modules), evidence.MODEL_FILE]:
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]


def _inputs_digest(ctx: StageContext) -> str:
    """The clusters, the edges kept and the check's record of them (its transforms), hashed."""
    import hashlib

    h = hashlib.sha1(np.ascontiguousarray(ctx.value("graph").canonical).tobytes())
    checked = ctx.value("verify")
    for table in (checked.edges, checked.checks):
        if table is not None:
            table = table.combine_chunks()  # the same rows hash alike however they were chunked
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as w:
                w.write_table(table)
            h.update(sink.getvalue())
    return h.hexdigest()[:16]


def cpu_metrics(cpu: dict, candidates: int) -> dict:
    """The stage's CPU seconds on its tasks (``time.process_time`` inside them, summed), measuring and
    choosing apart, and per candidate in ms."""
    measure, choose = round(cpu.get("measure", 0.0), 3), round(cpu.get("choose", 0.0), 3)
    return {"task_cpu_seconds": round(measure + choose, 3), "measure_cpu_seconds": measure, "choose_cpu_seconds": choose,
            "cpu_ms_per_candidate": round(1000 * (measure + choose) / max(1, candidates), 2)}


def candidates(canonical: np.ndarray, a: np.ndarray, b: np.ndarray, is_ref: np.ndarray) -> dict[int, list[int]]:
    """Per cluster (its graph canonical) with two or more members and no reference image: the members
    with an edge to every other member, in the largest order (the canonical first), at most
    :data:`MAX_CANDIDATES`."""
    n = len(canonical)
    size = np.bincount(canonical, minlength=n)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    inside = (lo != hi) & (canonical[lo] == canonical[hi])
    pairs = np.unique(lo[inside] * np.int64(n) + hi[inside])
    degree = np.bincount(np.concatenate([pairs // n, pairs % n]), minlength=n)
    refs = set(canonical[is_ref].tolist()) if is_ref.any() else set()
    out: dict[int, list[int]] = {}
    for v in np.flatnonzero((size[canonical] >= 2) & (degree == size[canonical] - 1)):
        c = int(canonical[v])
        if c not in refs:
            out.setdefault(c, []).append(int(v))
    for c, vs in out.items():  # the canonical first, then path order (vids are in path order)
        out[c] = sorted(vs, key=lambda v: (v != c, v))[:MAX_CANDIDATES]
    return {c: vs for c, vs in out.items() if len(vs) >= 2}


def cluster_sims(groups: dict[int, list[int]], a: np.ndarray, b: np.ndarray, s: np.ndarray) -> dict[int, np.ndarray]:
    """Per cluster, its candidates' similarities from the edges (n x n in the candidates' order, 1 on the
    diagonal; every two candidates have an edge, see :func:`candidates`)."""
    out = {c: np.eye(len(vs), dtype=np.float32) for c, vs in groups.items()}
    if not groups:
        return out
    cluster, pos = cluster_index(groups)
    n = len(cluster)
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    inside = (a < n) & (b < n)
    a, b, s = a[inside], b[inside], np.asarray(s)[inside]
    both = (cluster[a] >= 0) & (cluster[a] == cluster[b]) & (a != b)
    for c, i, j, sim in zip(cluster[a[both]].tolist(), pos[a[both]].tolist(), pos[b[both]].tolist(), s[both].tolist()):
        out[c][i, j] = out[c][j, i] = sim
    return out


def cluster_index(groups: dict[int, list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per vid up to the largest candidate: its cluster and its place among the cluster's candidates (-1
    for a vid that is no candidate)."""
    n = int(max(max(vs) for vs in groups.values()) + 1)
    cluster, pos = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    for c, vs in groups.items():
        cluster[vs], pos[vs] = c, np.arange(len(vs))
    return cluster, pos


def run_choices(groups: dict[int, list[int]], where: pd.DataFrame, size: dict[str, np.ndarray], image_column: str | None,
                sims: dict[int, np.ndarray] | None = None, cpu: dict | None = None,
                links: dict | None = None, boxes: dict | None = None) -> tuple[list[dict], dict[int, tuple[int, str]]]:
    """Measure and choose on Ray tasks of whole clusters. Returns (one row per candidate, {cluster: (kept
    vid, why)}). ``size``: pixels and bytes per vid (:func:`dedup.ops.canonical.per_vid`); ``sims``: per
    cluster, its candidates' similarities (:func:`cluster_sims`); ``cpu``, where given, gets the tasks'
    CPU seconds measuring and choosing (``measure``, ``choose``), summed; ``links``: per cluster, the
    content check's transforms (:func:`pair_transforms`); ``boxes``: vid -> the picture found inside it
    (stage `inner`)."""
    import ray

    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    total = sum(len(vs) for vs in groups.values())
    tasks = batches(list(groups.items()), int(min(IMAGES_PER_TASK, max(16, -(-total // (8 * cpus))))))
    info_of = vid_info(where, size, [v for vs in groups.values() for v in vs])
    remote = ray.remote(num_cpus=1)(_task)
    sims, links, boxes = sims or {}, links or {}, boxes or {}
    refs = [remote.remote(task, {v: info_of[v] for _, vs in task for v in vs}, image_column, {c: sims.get(c) for c, _ in task},
                          {c: links[c] for c, _ in task if c in links}, {v: boxes[v] for _, vs in task for v in vs if v in boxes})
            for task in tasks]
    rows, chosen = [], {}
    for part_rows, part_chosen, part_cpu in ray.get(refs):
        rows += part_rows
        chosen.update(part_chosen)
        for k, sec in part_cpu.items():
            if cpu is not None:
                cpu[k] = cpu.get(k, 0.0) + sec
    return rows, chosen


def vid_info(where: pd.DataFrame, size: dict[str, np.ndarray], vids: list[int]) -> dict[int, tuple]:
    """vid -> (kind, unit, path, pixels, bytes) for ``vids``."""
    sub = where.loc[vids]
    return dict(zip(vids, zip(sub["kind"].astype(str), sub["unit"].astype(str), sub["path"].astype(str),
                              size["pixels"][vids].tolist(), size["bytes"][vids].tolist())))


def pair_transforms(groups: dict[int, list[int]], checks) -> dict[int, dict[tuple[int, int], np.ndarray]]:
    """Per cluster, the content check's transform of each two of its candidates that it passed
    (``checks``: the verify stage's table, ``transform`` a -> b in unit coordinates, or None with ``--verify
    off``), as {(a, b): 3 x 3}: the kept-image stage registers those pairs with it instead of matching
    keypoints again (pairs above the band were not checked, and are)."""
    if checks is None or "transform" not in checks.column_names or not groups:
        return {}
    cluster = cluster_index(groups)[0]
    n = len(cluster)
    a, b = (np.asarray(checks.column(k).to_numpy(), np.int64) for k in ("a", "b"))
    inside = (a < n) & (b < n)
    ca, cb = cluster[np.where(inside, a, 0)], cluster[np.where(inside, b, 0)]
    keep = inside & (ca >= 0) & (ca == cb) & (checks.column("verified").to_numpy() == 1) & \
        checks.column("transform").is_valid().to_numpy(zero_copy_only=False)
    mats = checks.filter(pa.array(keep)).column("transform").combine_chunks().flatten().to_numpy()
    out: dict[int, dict] = {}
    for c, x, y, m in zip(ca[keep].tolist(), a[keep].tolist(), b[keep].tolist(), mats.reshape(-1, 3, 3).astype(np.float64)):
        out.setdefault(c, {})[(x, y)] = m
    return out


def batches(groups: list, per_task: int) -> list[list]:
    """Whole clusters into tasks of about ``per_task`` images."""
    tasks, cur, count = [], [], 0
    for c, vs in groups:
        cur.append((c, vs))
        count += len(vs)
        if count >= per_task:
            tasks.append(cur)
            cur, count = [], 0
    return [*tasks, cur] if cur else tasks


def _task(task, info, image_column, sims, links=None, boxes=None):
    import time

    from dedup.ops.matching import single_threaded

    single_threaded()
    t0 = time.process_time()
    measured = measure_vids({v: i[:3] for v, i in info.items()}, image_column, lattice_needed(task, info))
    t1 = time.process_time()
    rows, chosen = choose_groups(task, measured, info, sims, links, boxes=boxes)
    return rows, chosen, {"measure": t1 - t0, "choose": time.process_time() - t1}


def lattice_needed(groups, info: dict) -> set[int]:
    """The candidates whose JPEG lattice or JPEG-square luma a pairwise rule can read: those with another
    candidate of their cluster of the same pixel count (every rule that reads them compares two files of
    one size, or one turned a quarter), or an unknown one (0). ``info``: vid -> (kind, unit, path, pixels,
    bytes)."""
    from collections import Counter

    out = set()
    for _, vs in groups:
        count = Counter(info[v][3] for v in vs)
        out.update(v for v in vs if count[info[v][3]] > 1 or not info[v][3])
    return out


def measure_vids(where: dict[int, tuple[str, str, str]], image_column: str | None = None,
                 lattice: set[int] | None = None) -> dict[int, tuple | str]:
    """vid -> what :func:`dedup.ops.quality.measure` returns (its evidence, views, tone, lattice), or why it
    could not be measured; ``where``: vid -> (kind, unit, path) of its representative; ``lattice``: the
    vids whose lattice (or JPEG-square luma) is taken (:func:`lattice_needed`; None: all)."""
    from dedup.ops.quality import measure
    from dedup.sources import read_vids

    measured: dict[int, tuple | str] = {}
    for v, data, error in read_vids(where, image_column):
        try:
            if error is not None:
                raise ValueError(error)
            measured[v] = measure(data, lattice is None or v in lattice)
        except Exception as e:  # noqa: BLE001 - a version that cannot be measured is not a candidate
            measured[v] = f"{type(e).__name__}: {e}"
    return measured


def choose_groups(groups, measured: dict, info: dict, sims: dict | None = None, links: dict | None = None,
                  boxes: dict | None = None, **policy) -> tuple[list[dict], dict[int, tuple[int, str]]]:
    """For each (cluster, candidates) of ``groups``: the version kept (:func:`dedup.ops.canonical.choose`,
    with ``policy``'s ``rules`` and ``spread`` where given) and why, and one row per candidate (its
    evidence, and its ``spread`` where there is one). ``info``: vid -> (kind, unit, path, pixels, bytes);
    ``sims``: per cluster, its candidates' similarities; ``links``: per cluster, the content check's
    transforms of its pairs ({(a, b): a -> b}, :func:`pair_transforms`); ``boxes``: vid -> the picture found
    inside it (stage `inner`)."""
    from dedup.ops.canonical import choose

    rows, chosen = [], {}
    for c, vs in groups:
        keep, versions = make_versions(vs, measured, info, (links or {}).get(c), boxes)
        ok = [vs[i] for i in keep]
        sim = (sims or {}).get(c)
        sim = None if sim is None else sim[np.ix_(keep, keep)]
        best, why = choose(versions, sim, **policy) if len(ok) >= 2 else (None, "largest (versions unreadable)")
        kept = c if best is None else ok[best]
        chosen[c] = (kept, why)
        evidence = {v: ver.f for v, ver in zip(ok, versions)}
        for v in vs:
            m = measured.get(v, "not read")
            row = {"cluster_vid": c, "vid": v, "path": info[v][2], "kept": v == kept, "why": why if v == kept else None,
                   "error": m if isinstance(m, str) else None}
            row.update({k: val for k, val in evidence.get(v, {}).items() if k not in ("pixels", "bytes")})
            rows.append(row)
    return rows, chosen


def make_versions(vs: list[int], measured: dict, info: dict, links: dict | None = None,
                  boxes: dict | None = None) -> tuple[list[int], list]:
    """(the positions in ``vs`` of the candidates that were measured, their
    :class:`~dedup.ops.canonical.Version`, in that order: the rank is the largest order among them) with
    their vids, the content check's transforms between them (``links``: {(a, b): a -> b}) and the pictures
    found inside them (``boxes``: vid -> box)."""
    from dedup.ops.canonical import Version

    keep = [i for i, v in enumerate(vs) if not isinstance(measured.get(v, "not read"), str)]
    versions = [Version({**measured[v][0], "pixels": info[v][3], "bytes": info[v][4]}, rank, *measured[v][1:], vid=v,
                        box=(boxes or {}).get(v)) for rank, v in enumerate(vs[i] for i in keep)]
    by_vid = {ver.vid: ver for ver in versions}
    for (a, b), t in (links or {}).items():
        if a in by_vid:
            by_vid[a].links[b] = t
    return keep, versions


def rechoose(clusters, chosen: dict[int, tuple[int, str]], edges):
    """The clusters with each chosen cluster's canonical replaced, and every member's similarity to the
    new canonical taken from the edges (a candidate has an edge to every member)."""
    moved = {c: v for c, (v, _) in chosen.items() if v != c}
    if not moved:
        return clusters
    canonical, similarity, first = clusters.canonical.copy(), clusters.similarity.copy(), clusters.first_choice.copy()
    n = len(canonical)
    a, b, s = (edges.column(k).to_numpy() for k in ("a", "b", "sim"))
    sim_of = dict(zip((np.minimum(a, b) * np.int64(n) + np.maximum(a, b)).tolist(), s.tolist()))
    old = clusters.canonical
    for m in np.flatnonzero(np.isin(old, np.fromiter(moved, np.int64, len(moved)))).tolist():
        v = moved[int(old[m])]
        canonical[m] = v
        similarity[m] = 1.0 if m == v else sim_of[min(m, v) * n + max(m, v)]
    hit = np.isin(first, np.fromiter(moved, np.int64, len(moved)))
    first[hit] = [moved[int(c)] for c in first[hit]]  # the component's first choice moves with it
    return dataclasses.replace(clusters, canonical=canonical, similarity=similarity, first_choice=first)
