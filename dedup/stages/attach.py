"""Stage `attach`: an image left alone joins the cluster of a kept image it is a verified copy of.

In:  the clusters and each one's kept image (`canonical`), the edges `verify` kept, the representatives
     (`discover`, where each vid's bytes are), ``--canonical``.
Out: the clusters with each lone image (a cluster of one, :func:`dedup.ops.graph.lone_copies`) that has an
     edge to the kept image of a larger cluster placed under it, where the quality policy, asked about
     the two (:func:`dedup.ops.canonical.choose`), keeps that image over it; the pairs placed are kept in
     ``state.json``.

Why. The chaining guard places an image under the cluster's canonical (the largest version) only where it has
an edge of its own to it. When stage `canonical` then keeps another version, often the original, an image that
matched the original but not the largest copy (a tilted or brightened copy of the photo, beside its
upscale) was left alone: a copy that a person would call one, missed. The question asked again keeps an
image that is the better version (the original, where the cluster kept a copy of it) apart, as before.
With a key-list policy (``largest``) the kept image is the graph's canonical, so no lone image has an
edge to one, and nothing is read. Metrics: ``lone`` (lone images with an edge to a kept image),
``attached``, ``kept_apart`` (the policy kept the lone image over it), ``unreadable`` and the tasks' CPU.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from dedup.ops.graph import lone_copies, place_under
from dedup.stages.base import Stage, StageContext, StageResult

PAIRS_PER_TASK = 64


class AttachStage(Stage):
    name = "attach"
    items = None  # a few images, if any: no rate
    after = ("discover", "decode_embed", "reference", "verify", "canonical")

    def fingerprint(self, ctx: StageContext):
        """The policy; with ``quality``, the code that asks it (the kept-image stage's digest and this one's)."""
        import hashlib
        from pathlib import Path

        from dedup.ops import graph
        from dedup.stages.canonical import _code_digest

        if ctx.cfg.canonical != "quality":
            return [ctx.cfg.canonical]
        own = hashlib.sha1(Path(__file__).read_bytes() + Path(graph.__file__).read_bytes()).hexdigest()[:16]
        return ["quality", ctx.cfg.image_column, _code_digest(), own]

    def needs_ray_now(self, ctx: StageContext) -> bool:
        return ctx.cfg.canonical == "quality" and bool(len(self._lone(ctx)[0]))

    def _lone(self, ctx: StageContext) -> tuple[np.ndarray, ...]:
        from dedup.stages.common import graph_inputs

        edges = ctx.value("verify").edges
        a, b, s = (edges.column(k).to_numpy() for k in ("a", "b", "sim"))
        return lone_copies(ctx.value("canonical").clusters, a, b, s, graph_inputs(ctx)[3])

    def load(self, ctx: StageContext, stored: dict) -> StageResult:
        choice = ctx.value("canonical")
        placed = np.asarray(stored.get("placed", []), np.float64).reshape(-1, 3)
        vids, under = placed[:, 0].astype(np.int64), placed[:, 1].astype(np.int64)
        clusters = place_under(choice.clusters, vids, under, placed[:, 2].astype(np.float32))
        return StageResult(dataclasses.replace(choice, clusters=clusters), dict(stored.get("metrics", {})))

    def run(self, ctx: StageContext) -> StageResult:
        from dedup.ops.canonical import per_vid
        from dedup.stages.canonical import vid_info
        from dedup.stages.common import graph_inputs

        choice = ctx.value("canonical")
        if ctx.cfg.canonical != "quality":
            return StageResult(choice, {"lone": 0, "attached": 0})
        lone, kept, sims = self._lone(ctx)
        verdicts, cpu = {}, 0.0
        if len(lone):
            table, meta, n, _ = graph_inputs(ctx)
            where = ctx.value("discover").reps.set_index("vid")[["kind", "unit", "path"]]
            info = vid_info(where, per_vid(table, meta, n), sorted(set(lone.tolist()) | set(kept.tolist())))
            pairs = list(zip(kept.tolist(), lone.tolist(), sims.tolist()))
            verdicts, cpu = run_verdicts(pairs, info, ctx.cfg.image_column, pair_links(pairs, ctx.value("verify").checks))
        got = [verdicts.get((k, v)) for k, v in zip(kept.tolist(), lone.tolist())]  # the vid kept of each pair
        go = np.array([g == k for g, k in zip(got, kept.tolist())], bool)
        clusters = place_under(choice.clusters, lone[go], kept[go], sims[go])
        metrics = {"lone": int(len(lone)), "attached": int(go.sum()),
                   "kept_apart": sum(g == v for g, v in zip(got, lone.tolist())), "unreadable": got.count(None),
                   "task_cpu_seconds": round(cpu, 3)}
        placed = [[int(v), int(k), float(s)] for v, k, s in zip(lone[go], kept[go], sims[go])]
        return StageResult(dataclasses.replace(choice, clusters=clusters), metrics, {"placed": placed, "metrics": metrics})


def pair_links(pairs: list[tuple], checks) -> dict[tuple[int, int], dict]:
    """Per (kept, lone) pair, the content check's transform between the two where it passed it
    ({(a, b): a -> b}, as :func:`dedup.stages.canonical.pair_transforms` gives a cluster's)."""
    if checks is None or "transform" not in checks.column_names or not pairs:
        return {}
    a, b = (np.asarray(checks.column(c).to_numpy(), np.int64) for c in ("a", "b"))
    n = int(max(a.max(initial=0), b.max(initial=0), *(max(k, v) for k, v, _ in pairs))) + 1
    want = {min(k, v) * n + max(k, v): (k, v) for k, v, _ in pairs}
    key = np.minimum(a, b) * n + np.maximum(a, b)
    ok = (checks.column("verified").to_numpy() == 1) & checks.column("transform").is_valid().to_numpy(zero_copy_only=False)
    out: dict = {}
    for i in np.flatnonzero(ok & np.isin(key, np.fromiter(want, np.int64, len(want)))).tolist():  # a few rows of many
        m = np.asarray(checks.column("transform")[i].as_py(), np.float64).reshape(3, 3)
        out.setdefault(want[int(key[i])], {})[(int(a[i]), int(b[i]))] = m
    return out


def run_verdicts(pairs: list[tuple], info: dict, image_column: str | None, links: dict) -> tuple[dict, float]:
    """({(kept, lone): the vid the policy keeps of the two, None where either could not be measured}, the
    tasks' CPU seconds), on Ray tasks of :data:`PAIRS_PER_TASK` pairs (sorted by kept image: each image
    measured once per task). ``info``: vid -> (kind, unit, path, pixels, bytes)."""
    import ray

    pairs = sorted(pairs)
    remote = ray.remote(num_cpus=1)(_task)
    refs = []
    for i in range(0, len(pairs), PAIRS_PER_TASK):
        part = pairs[i:i + PAIRS_PER_TASK]
        vids = {v for k, lone, _ in part for v in (k, lone)}
        refs.append(remote.remote(part, {v: info[v] for v in vids}, image_column, {(k, v): links[(k, v)] for k, v, _ in part if (k, v) in links}))
    verdicts, cpu = {}, 0.0
    for part, sec in ray.get(refs):
        verdicts.update(part)
        cpu += sec
    return verdicts, cpu


def _task(pairs, info, image_column, links):
    import time

    from dedup.ops.matching import single_threaded
    from dedup.stages.canonical import lattice_needed, measure_vids

    single_threaded()
    t0 = time.process_time()
    groups = [(i, [k, v]) for i, (k, v, _) in enumerate(pairs)]
    measured = measure_vids({v: i[:3] for v, i in info.items()}, image_column, lattice_needed(groups, info))
    out = {(k, v): verdict(k, v, s, measured, info, links.get((k, v))) for k, v, s in pairs}
    return out, time.process_time() - t0


def verdict(kept: int, lone: int, sim: float, measured: dict, info: dict, links: dict | None) -> int | None:
    """The vid the quality policy keeps of ``kept`` and ``lone`` (in the largest order, as a cluster's
    candidates are), or None where either could not be measured."""
    from dedup.ops.canonical import choose
    from dedup.stages.canonical import make_versions

    vs = sorted((kept, lone), key=lambda v: (-info[v][3], -info[v][4], v))
    keep, versions = make_versions(vs, measured, info, links)
    if len(keep) < 2:
        return None
    best, _ = choose(versions, np.array([[1.0, sim], [sim, 1.0]], np.float32))
    return vs[keep[best]]
