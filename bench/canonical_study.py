"""``python -m bench --canonical-study``: how the quality policy's rules and their order were chosen, measured.

Takes the bench's SSCD run (``WORK/out-sscd``, made by ``python -m bench``) and its labelled corpus, measures
every candidate of its clusters once (the stage's own code: :func:`dedup.stages.canonical.measure_vids`)
and chooses every cluster again with each variant of the rule list (:func:`variants`: the default, each
rule left out, the ``central`` rule moved, other margins, re-encodes not grouped, the list before
``central``, ``stretched``, ``requantized``, ``reoriented`` and ``drawn_on`` existed). For each: ``kept_original`` over the clusters that
hold the untouched original among their candidates, on the bench corpus and on a hard case of reposts
(:func:`build_reposts`: each photo once, and three re-encodes of its captioned copy; a real SSCD run on
it). Also, on ``--src`` photos, what the ``enlarged`` margin trades: the share of 1.25-2x enlargements it
catches and of 0.3-0.8x downscales it wrongly calls enlarged (:func:`enlarge_margins`); and how the two
local-region rules decide the bench's (original, copy) pairs, by edit (:func:`region_pairs`). Writes
``RESULTS/canonical-study.md`` (and ``.json``).
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from dedup.ops import canonical, lattices, regions

MARGINS = (0.04, 0.06, 0.08)


def _swap(rules, name, fn):
    return [(n, fn if n == name else f) for n, f in rules]


def _move(rules, name, after):
    item = next(r for r in rules if r[0] == name)
    rest = [r for r in rules if r[0] != name]
    i = [n for n, _ in rest].index(after) + 1
    return rest[:i] + [item] + rest[i:]


def variants() -> dict[str, tuple[list, dict]]:
    """name -> (rule list, keywords for :func:`dedup.ops.canonical.set_spread`)."""
    base = list(canonical.RULES)
    out = {"default": (base, {})}
    for name, _ in base:
        out[f"without {name}"] = ([r for r in base if r[0] != name], {})
    for after in ("same_pixels", "clipped_detail", "picture"):
        out[f"central after {after}"] = (_move(base, "central", after), {})
    out["re-encodes not grouped (each version its own)"] = (base, {"same_sim": 1.01})
    out["re-encodes not grouped, central after same_pixels"] = (_move(base, "central", "same_pixels"), {"same_sim": 1.01})
    out["grouped from similarity 0.995, tone 0.002"] = (base, {"same_sim": 0.995, "same_tone": 0.002})
    for m in (0.005, 0.02):
        out[f"central margin {m}"] = (_swap(base, "central", lambda x, y, m=m: canonical._central(x, y, m)), {})
    for m in (0.04, 0.08):
        out[f"enlarged margin {m}"] = (_swap(base, "enlarged", lambda x, y, m=m: canonical._enlarged(x, y, m)), {})
    for m in (0.3, 0.7):
        out[f"requantized score {m}"] = (_swap(base, "requantized", lambda x, y, m=m: canonical._requantized(x, y, m)), {})
    for r in (2.0, 4.0):
        out[f"drawn_on ratio {r}"] = (_swap(base, "drawn_on", lambda x, y, r=r: canonical._drawn_on(x, y, ratio=r)), {})
    out["drawn_on before local_edit"] = (_move(base, "drawn_on", "same_pixels"), {})
    out["local_edit never left to drawn_on (fill 0)"] = (_swap(base, "local_edit", lambda x, y: canonical._local_edit(x, y, fill=0.0)), {})
    out["local_edit and drawn_on without the blur guard"] = (
        _swap(_swap(base, "local_edit", lambda x, y: canonical._local_edit(x, y, blur=0.0)), "drawn_on",
              lambda x, y: canonical._drawn_on(x, y, blur=0.0)), {})
    before = [r for r in base if r[0] not in ("central", "reoriented", "stretched", "requantized", "drawn_on")]
    before = _swap(before, "local_edit", lambda x, y: canonical._local_edit(x, y, blur=0.0, fill=0.0))
    out["before this study (no central, reoriented, stretched, requantized, drawn_on; local_edit unguarded; enlarged 0.04)"] = (
        _swap(before, "enlarged", lambda x, y: canonical._enlarged(x, y, 0.04)), {})
    return out


def kept_original(groups, measured, info, sims, truth: pd.DataFrame, rules, spread_kw: dict) -> tuple[float, int]:
    """(:func:`bench.score.kept_original`, its clusters) when every cluster is chosen again among its
    candidates with ``rules`` and ``spread_kw`` (:func:`dedup.ops.canonical.choose`)."""
    from bench.score import kept_original as score_kept
    from dedup.stages.canonical import choose_groups

    _, chosen = choose_groups(list(groups.items()), measured, info, sims, rules=rules, spread=spread_kw)
    candidates = pd.DataFrame([{"cluster": c, "path": info[v][2], "is_canonical": v == chosen[c][0]}
                               for c, vs in groups.items() for v in vs])
    candidates = candidates.merge(truth[["path", "group"]], on="path", how="left")
    s = score_kept(candidates, truth)
    return s["kept_original"], s["clusters_with_original"]


def _inputs(out_dir: Path):
    from dedup import load_stored
    from bench.score import QualityChooser
    from dedup.stages import canonical as stage

    edges = load_stored(out_dir).edges
    a, b, s = (edges[c].to_numpy() for c in ("a", "b", "sim"))
    table = pd.read_parquet(out_dir / "canonical.parquet")  # the run's own candidates
    groups = {int(c): g["vid"].astype(int).tolist() for c, g in table.groupby("cluster_vid", sort=False)}
    chooser = QualityChooser(out_dir)  # where each vid's bytes are, and its pixels and bytes
    info = stage.vid_info(chooser.where, chooser.size, [v for vs in groups.values() for v in vs])
    measured = stage.measure_vids({v: i[:3] for v, i in info.items()})
    return groups, measured, info, stage.cluster_sims(groups, a, b, s)


def enlarge_margins(src: Path, every: int = 25) -> list[dict]:
    """Per margin: the share of enlargements (1.25x, 1.5x, 2x, bicubic, JPEG 90) that :func:`_enlarged`'s
    measure catches, and of downscales (0.8x, 0.5x, 0.3x, Lanczos) it calls enlarged, on every
    ``every``-th photo of ``src``."""
    from dedup.ops.quality import native_steps

    def native(img):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        return min(native_steps(np.asarray(Image.open(buf).convert("L"), np.float32)))

    rows = []
    for p in sorted(Path(src).iterdir())[::every]:
        im = Image.open(p).convert("L")
        o = min(native_steps(np.asarray(im, np.float32)))
        size = lambda f: (max(8, round(im.width * f)), max(8, round(im.height * f)))  # noqa: E731
        rows.append([o - native(im.resize(size(f), Image.Resampling.BICUBIC)) for f in (1.25, 1.5, 2.0)]
                    + [native(im.resize(size(f), Image.Resampling.LANCZOS)) - o for f in (0.8, 0.5, 0.3)])
    d = np.array(rows)
    return [{"margin": m, "photos": len(d), **{f"enlarged {f}x caught": round(float((d[:, i] > m).mean()), 3) for i, f in enumerate((1.25, 1.5, 2))},
             **{f"downscaled {f}x called enlarged": round(float((d[:, 3 + i] > m).mean()), 3) for i, f in enumerate((0.8, 0.5, 0.3))}}
            for m in MARGINS]


def requantized_pairs(groups, measured, info, truth: pd.DataFrame, scores=(0.3, 0.5, 0.7)) -> list[dict]:
    """Every two JPEG candidates of one cluster with a lattice score (:func:`dedup.ops.lattices.lattice_score`),
    by how they are related in ``truth``: the finer made from the coarser (the rule should fire), the coarser
    made from the finer or both made from a third (it should not); per relation, the share over each score."""
    from itertools import combinations

    edit = dict(zip(truth["path"], truth["edit"]))
    found = []
    for vs in groups.values():
        ok = [v for v in vs if not isinstance(measured.get(v), str) and measured[v][4] is not None]
        for x, y in combinations(ok, 2):
            qx, qy = measured[x][0]["jpeg_quality"], measured[y][0]["jpeg_quality"]
            if qx == qy:
                continue
            coarse, fine = (x, y) if qx < qy else (y, x)
            score = lattices.lattice_score(measured[coarse][4], measured[fine][4])
            if score is None:
                continue
            ec, ef = edit.get(info[coarse][2]), edit.get(info[fine][2])
            found.append(("finer made from coarser" if ec == "original" else "coarser made from finer" if ef == "original" else "made from a third", score))
    frame = pd.DataFrame(found, columns=["relation", "score"])
    return [{"relation": r, "pairs": len(g), **{f"over {t}": round(float((g["score"] > t).mean()), 4) for t in scores}}
            for r, g in frame.groupby("relation")]


def region_pairs(groups, measured, info, truth: pd.DataFrame) -> list[dict]:
    """Every (original, copy) pair of one bench cluster that are alike but in one region
    (:func:`dedup.ops.regions.edited_region` on their detail views), by the copy's edit: the share that
    ``local_edit`` and ``drawn_on``, each alone, decide for the original (right) and for the copy (wrong)."""
    edit = dict(zip(truth["path"], truth["edit"]))
    rules = dict(canonical.RULES)
    rows = []
    for vs in groups.values():
        ok = [v for v in vs if not isinstance(measured.get(v), str)]
        orig = [v for v in ok if edit.get(info[v][2]) == "original"]
        if len(orig) != 1:
            continue
        o = canonical.Version(measured[orig[0]][0], 0, *measured[orig[0]][1:])
        for v in ok:
            c = canonical.Version(measured[v][0], 0, *measured[v][1:])
            if v == orig[0] or regions._region(o, c) is None:
                continue
            rows.append({"edit": edit.get(info[v][2]), **{name: rules[name](o, c) for name in ("local_edit", "drawn_on")}})
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    return [{"edit": e, "pairs": len(g), **{f"{n} {k}": round(float((g[n] == s).mean()), 3)
                                           for n in ("local_edit", "drawn_on") for k, s in (("right", 1), ("wrong", -1))}}
            for e, g in frame.groupby("edit")]


def build_reposts(src: Path, out: Path, n: int = 40, every: int = 25) -> Path:
    """Every ``every``-th photo of ``src`` (``n`` at most), saved once at JPEG 95, and a captioned copy of it
    saved at 95 and re-saved from that at 85 and 70 (one edited copy, re-posted): OUT/images, OUT/truth.csv."""
    import csv

    from bench.corpus import _caption

    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for p in sorted(Path(src).iterdir())[::every][:n]:
        img = Image.open(p).convert("RGB")
        img.save(images / f"{p.stem}__original.jpg", quality=95)
        cap = _caption(img, rng)[0]
        cap.save(images / f"{p.stem}__caption95.jpg", quality=95)
        for q in (85, 70):
            Image.open(images / f"{p.stem}__caption95.jpg").save(images / f"{p.stem}__caption95_q{q}.jpg", quality=q)
        rows += [(str((images / f"{p.stem}__{e}.jpg").resolve()), p.stem, "reposts", e)
                 for e in ("original", "caption95", "caption95_q85", "caption95_q70")]
    with open(out / "truth.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "group", "part", "edit"), *rows])
    return out / "truth.csv"


def _reposts_run(work: Path, src: Path) -> Path:
    from dedup import run
    from dedup.config import DedupConfig

    folder = work / "reposts"
    build_reposts(src, folder)
    run(DedupConfig(inputs=[str(folder / "images")], output=str(folder / "out-sscd"), model="sscd", fresh=True))
    return folder


def canonical_study(work: Path, results: Path, src: Path) -> dict:
    t0 = time.perf_counter()
    corpora = {"bench corpus": work, "reposts": _reposts_run(work, src)}
    inputs = {k: (pd.read_csv(w / "truth.csv" if k == "reposts" else w / "corpus" / "truth.csv"), _inputs(w / "out-sscd"))
              for k, w in corpora.items()}
    rows = []
    for name, (rules, spread_kw) in variants().items():
        row = {"variant": name}
        for k, (truth, (groups, measured, info, sims)) in inputs.items():
            row[k], row[f"{k} clusters"] = kept_original(groups, measured, info, sims, truth, rules, spread_kw)
        rows.append(row)
    truth, (groups, measured, info, _) = inputs["bench corpus"]
    report = {"work": str(work), "rows": rows, "requantized_pairs": requantized_pairs(groups, measured, info, truth),
              "region_pairs": region_pairs(groups, measured, info, truth),
              "enlarge_margins": enlarge_margins(src), "seconds": round(time.perf_counter() - t0, 1)}
    results.mkdir(parents=True, exist_ok=True)
    (results / "canonical-study.json").write_text(json.dumps(report, indent=2))
    md = to_markdown(report)
    (results / "canonical-study.md").write_text(md)
    print(md)
    return report


def to_markdown(report: dict) -> str:
    r0 = report["rows"][0]
    lines = ["# Canonical study", "", f"`python -m bench --canonical-study --work {report['work']}`: every cluster of the bench's SSCD run, "
             "and of an SSCD run on the reposts hard case (each photo once, plus three re-encodes of its captioned copy), "
             "chosen again with each rule list; kept original = of the clusters that hold the untouched original among their "
             f"candidates, the share that keep it ({r0['bench corpus clusters']} and {r0['reposts clusters']} clusters). "
             f"{report['seconds']} s.", "", "| variant | kept original, bench corpus | kept original, reposts |", "|---|---|---|"]
    lines += [f"| {r['variant']} | {r['bench corpus']:.4f} | {r['reposts']:.4f} |" for r in report["rows"]]
    q = report["requantized_pairs"]
    cols = [k for k in q[0] if k.startswith("over")]
    lines += ["", "`requantized` on every two JPEG candidates of one bench cluster that can be compared (one size, grid, enough "
              "coefficients), by how they are related: the share whose lattice score is over each value:", "",
              "| relation | pairs | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    lines += [f"| {r['relation']} | {r['pairs']} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |" for r in q]
    g = report["region_pairs"] or [{"edit": "(no such pairs)", "pairs": 0}]
    cols = [k for k in g[0] if k not in ("edit", "pairs")]
    lines += ["", "`local_edit` and `drawn_on`, each alone, on every (original, copy) pair of one bench cluster that are alike "
              "but in one region, by the copy's edit: the share each decides for the original (right) and for the copy (wrong):", "",
              "| edit | pairs | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    lines += [f"| {r['edit']} | {r['pairs']} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |" for r in g]
    e = report["enlarge_margins"]
    keys = [k for k in e[0] if k != "margin"]
    lines += ["", f"The `enlarged` margin on {e[0]['photos']} photos of --src (bicubic enlargements, Lanczos downscales, JPEG 90):", "",
              "| margin | " + " | ".join(k for k in keys if k != "photos") + " |", "|---|" + "---|" * (len(keys) - 1)]
    lines += [f"| {r['margin']} | " + " | ".join(f"{r[k]:.2f}" for k in keys if k != "photos") + " |" for r in e]
    return "\n".join(lines) + "\n"
