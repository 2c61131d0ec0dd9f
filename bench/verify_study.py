"""``python -m bench --verify-study``: how the content check's details were chosen, measured in one run.

Takes the bench's SSCD run (``WORK/out-sscd``, made by ``python -m bench``) and its labelled corpus, the stored
edges with similarity in [0.30, 0.95) as candidate pairs, and checks them with each variant of
:data:`VARIANTS` (the stage's own code, :func:`dedup.ops.verify.run_checks`). For each: the pairs that
pass among the true pairs (same group) and among the false ones, the time, and the run end to end with the
default band (the edges in the band kept only where they pass). Writes ``RESULTS/verify-study.md``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from dedup.ops.verify import VerifyParams

BASE = VerifyParams()
BEFORE = replace(BASE, min_local_share=0.0, fill_aware=False, homography=False, templates=False, coarse=0)
VARIANTS = {
    "default (coarse pass: orb 256 px, 500 features, a mirrored match out of frame failed there under 0.75; then orb 400 px, "
    "1000 features, 15 inliers, mirror 25, scale 1/4-4, containment of content 0.9, agreement 0.2, mirrored 0.9, local share 0.4, "
    "homography 20, templates)": BASE,
    "no coarse pass (400 px, 1000 features at once)": replace(BASE, coarse=0),
    "coarse pass without the mirrored sure fail": replace(BASE, coarse_mirror_fail=0.0),
    "coarse pass at 320 px": replace(BASE, coarse=320),
    "before issue 30 (no local share, frame containment, no homography, no templates)": BEFORE,
    "no template rule": replace(BASE, templates=False),
    "no local share": replace(BASE, min_local_share=0.0),
    "local share 0.5": replace(BASE, min_local_share=0.5),
    "local share 0.3": replace(BASE, min_local_share=0.3),
    "containment of frames (no fill)": replace(BASE, fill_aware=False),
    "no homography": replace(BASE, homography=False),
    "homography at 25 inliers": replace(BASE, min_inliers_homography=25),
    "500 features at 400 px": replace(BASE, features=500),
    "320 px (after the coarse pass)": replace(BASE, size=320),
    "no pixel agreement check": replace(BASE, min_agreement=-1.0, min_mirrored_agreement=-1.0, min_local_share=0.0),
    "small images not enlarged": replace(BASE, enlarge=False),
    "no containment check": replace(BASE, min_containment=0.0),
    "10 inliers": replace(BASE, min_inliers=10),
    "20 inliers": replace(BASE, min_inliers=20),
    "no mirror image": replace(BASE, mirror=False),
}
STUDY_RANGE = (0.30, 0.95)


def part_scores(out: Path, truth: pd.DataFrame, band: tuple, passed: np.ndarray) -> dict:
    """Pair precision and recall of each part of the corpus (``truth``'s ``part``), from the same clusters."""
    from bench.score import sweep

    if "part" not in truth:
        return {}
    out_scores = {}
    for part, sub in truth.groupby("part"):
        r = sweep(out, sub, [], bands=[band], passed=passed).iloc[0]
        out_scores[f"part:{part}:precision"], out_scores[f"part:{part}:recall"] = r["pair_precision"], r["pair_recall"]
    return out_scores


def verify_study(work: Path, results: Path, band: tuple[float, float] | None = None, name: str = "verify-study") -> dict:
    import ray

    from dedup.config import DEFAULT_VERIFY_BANDS

    from bench.score import sweep
    from dedup.ray_env import init_ray
    from dedup import load_stored
    from dedup.ops import plan
    from dedup.stages import verify

    band = band or DEFAULT_VERIFY_BANDS["sscd"]
    out = work / "out-sscd"
    truth = pd.read_csv(work / "corpus" / "truth.csv")
    stored = load_stored(out)
    files_df, edges = stored.files, stored.edges
    a, b, s = (edges[c].to_numpy() for c in ("a", "b", "sim"))
    cand = (s >= STUDY_RANGE[0]) & (s < STUDY_RANGE[1])
    reps = plan.representatives(files_df).set_index("vid")
    group = truth.set_index("path")["group"].reindex(reps["path"]).to_numpy()
    vid_group = dict(zip(reps.index.to_numpy(), group))
    true_pair = np.array([vid_group[x] == vid_group[y] for x, y in zip(a[cand], b[cand])])
    need = np.unique(np.concatenate([a[cand], b[cand]]))
    where = verify.where(reps.reset_index(), a[cand], b[cand])
    started = init_ray(logging_level="ERROR")  # the bench's own Ray, on loopback as a local run's
    rows = []
    try:
        for variant, vp in VARIANTS.items():
            t0 = time.perf_counter()
            table, counts = verify.run_checks(a[cand], b[cand], where, vp)
            seconds = time.perf_counter() - t0
            n = int(max(a.max(), b.max())) + 1
            key = table["a"].to_numpy() * n + table["b"].to_numpy()  # the tasks' order, not the input's
            ok = table["ok"].to_numpy()
            if vp.templates:  # as the stage does, over all the pairs
                ok = ok & ~verify.templates(table["a"].to_numpy(), table["b"].to_numpy(), ok, table["grid"].to_numpy())
            passed_key = key[ok]
            passed = np.isin(a * n + b, passed_key)
            ok = passed[cand]
            e2e = sweep(out, truth, [], bands=[band], passed=passed).iloc[0].to_dict()
            e2e.update(part_scores(out, truth, band, passed))
            rows.append({"variant": variant, "true_passed": int(ok[true_pair].sum()), "true_pairs": int(true_pair.sum()),
                         "false_passed": int(ok[~true_pair].sum()), "false_pairs": int((~true_pair).sum()),
                         "seconds": round(seconds, 1), "cpu_seconds": counts["task_cpu_seconds"], "images": len(need),
                         "cpu_ms_per_pair": round(1000 * counts["task_cpu_seconds"] / max(1, int(cand.sum())), 2),
                         **{k: v for k, v in e2e.items() if k in ("pair_f1", "wrongly_removed", "missed") or k.startswith("part:")},
                         "params": asdict(vp)})
    finally:
        if started:
            ray.shutdown()
    parts = sorted(truth["part"].unique()) if "part" in truth else []
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(rows, indent=2))
    lines = ["# Content check: the details, measured", "", f"Run: `{work / 'out-sscd'}`.", "",
             f"Candidate pairs: the corpus's SSCD edges with similarity in [{STUDY_RANGE[0]}, {STUDY_RANGE[1]}) "
             f"({int(true_pair.sum())} true pairs, {int((~true_pair).sum())} false ones, {len(need)} images); {os.cpu_count()} CPUs. "
             f"End to end: the default band ({band[0]:.2f} to {band[1]:.2f}), the edges in it kept only where they pass.", "",
             "| variant | true pairs passed | false pairs passed | seconds (CPU-s) | CPU ms per pair | F1 | wrongly removed | missed | "
             + " | ".join(f"{p} precision / recall" for p in parts) + " |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(parts)]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['true_passed']}/{r['true_pairs']} | {r['false_passed']}/{r['false_pairs']} | {r['seconds']} ({r['cpu_seconds']}) | "
                     f"{r['cpu_ms_per_pair']} | {r['pair_f1']:.4f} | {int(r['wrongly_removed'])} | {int(r['missed'])} | "
                     + " | ".join(f"{r[f'part:{p}:precision']:.3f} / {r[f'part:{p}:recall']:.3f}" for p in parts) + " |")
    md = "\n".join(lines) + "\n"
    (results / f"{name}.md").write_text(md)
    print(md)
    return {"rows": rows}
