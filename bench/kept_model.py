"""``python -m bench --kept-model``: fit the kept-image model (:mod:`dedup.ops.evidence`) and score it, held out.

The corpus is ``bench/hard/make_lineage.py``'s (AugLy edit chains on the shared photos, its own venv): each
photo with copies made from it or from each other, so every two files of a group are either source and
copy (one made, through a chain, from the other) or siblings. The default job runs on it (``dedup run``,
SSCD); every cluster's candidates are measured by the stage's own code and compared in pairs.

Protocol: the model is fitted on the ``tune`` part of the first seed (tune photos, tune families) and on the
bench corpus's (original, copy) pairs (``python -m bench``'s run), only on the pairs no rule of direct evidence
decides; the depth of its trees is chosen by leaving a fifth of the families out in turn. ``heldout_photos``
(the tune families on photos never used), ``heldout_family`` (edit families never used: a zoom back to the
same size, a vignette, posterize, a pasted logo, a warm filter; from seed 2 on, a second set:
``make_lineage.py --heldout second``) and the other seeds are scored after.
Kept original is :func:`bench.score.kept_original` over the clusters that hold the group's original
among their candidates, for the rule list (``rules``, the order before the model) and the model.
"""
from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd

DEPTHS = (2, 3)  # the trees' depths tried, each with 100 rounds
# Where the trees may split each feature: rare, strong evidence (noise added to one copy in 50) sits in the tails.
QUANTILES = (0.005, 0.01, 0.02, *np.linspace(0.05, 0.95, 15), 0.98, 0.99, 0.995)


def load_run(out: Path, corpus: Path, cache: Path, truth: pd.DataFrame | None = None):
    """(groups {cluster: [vid]}, measured, info, sims, truth, links) of the default run ``out`` on ``corpus``
    (its ``truth.csv`` unless ``truth`` is given); measured once and kept in ``cache`` (a pickle); links: the
    content check's transforms of the run's pairs, as the stage has them
    (:func:`dedup.stages.canonical.pair_transforms`; none from a run made before the check kept them)."""
    from dedup import load_stored
    from bench.score import QualityChooser
    from dedup.stages import canonical as stage

    if truth is None:
        truth = pd.read_csv(corpus / "truth.csv")
        for col in ("path", "parent"):
            truth[col] = [str((corpus / p).resolve()) if isinstance(p, str) and p else "" for p in truth[col]]
    if cache.exists():
        groups, measured, info, sims = pickle.loads(cache.read_bytes())
        return groups, measured, info, sims, truth, run_links(out, groups)
    stored = load_stored(out)
    groups, ch = run_candidates(out, stored), QualityChooser(out)
    a, b, s = (stored.edges[c].to_numpy() for c in ("a", "b", "sim"))
    info = stage.vid_info(ch.where, ch.size, [v for vs in groups.values() for v in vs])
    info = {v: (k, u, str(Path(p).resolve()), px, nb) for v, (k, u, p, px, nb) in info.items()}
    # the largest order first, as the stage has them (whatever the run kept): the tie-break
    groups = {c: sorted(vs, key=lambda v: (-info[v][3], -info[v][4], v)) for c, vs in groups.items()}
    measured = stage.measure_vids({v: i[:3] for v, i in info.items()})
    sims = stage.cluster_sims(groups, a, b, s)
    cache.write_bytes(pickle.dumps((groups, measured, info, sims)))
    return groups, measured, info, sims, truth, run_links(out, groups)


def run_links(out: Path, groups: dict) -> dict:
    """The content check's transforms between the candidates of ``groups`` in the run ``out``."""
    import pyarrow.parquet as pq

    from dedup.stages.canonical import pair_transforms

    f = out / "edges_checked.parquet"
    return pair_transforms(groups, pq.read_table(f)) if f.exists() else {}


def run_candidates(out: Path, stored) -> dict[int, list[int]]:
    """The candidates of every cluster of the run ``out`` (:func:`dedup.stages.canonical.candidates`: the
    members that are near copies of every other one), whatever policy chose its kept images; ``stored``:
    its :func:`dedup.load_stored`."""
    from dedup.stages import canonical as stage

    vid_of = dict(zip(stored.files["path"], stored.files["vid"]))
    manifest = pd.read_parquet(out / "manifest.parquet", columns=["path", "canonical_path"])
    canonical = np.arange(stored.n)
    for path, kept in zip(manifest["path"], manifest["canonical_path"]):
        v, c = vid_of.get(path), vid_of.get(kept)
        if v == v and c == c and v is not None and c is not None:  # NaN: a file that was not decoded
            canonical[int(v)] = int(c)
    a, b = (stored.edges[c].to_numpy() for c in ("a", "b"))
    return stage.candidates(canonical, a, b, np.zeros(stored.n, bool))


def ancestors(truth: pd.DataFrame) -> dict[str, set[str]]:
    """path -> the paths it was made from, through its chain."""
    parent = dict(zip(truth["path"], truth["parent"]))
    out = {}
    for p in parent:
        seen, q = set(), parent[p]
        while q:
            seen.add(q)
            q = parent.get(q, "")
        out[p] = seen
    return out


def versions_of(vs, measured, info, sim, links=None):
    from dedup.ops.canonical import set_spread
    from dedup.stages.canonical import make_versions

    keep, ver = make_versions(vs, measured, info, links)
    ok = [vs[i] for i in keep]
    set_spread(ver, None if sim is None else sim[np.ix_(keep, keep)])
    return ok, ver


def undecided(table: pd.DataFrame) -> pd.DataFrame:
    """The pairs no rule of direct evidence decides (:data:`dedup.ops.evidence.SURE`): what the model is for.
    Only the rules the evidence has a vote column for are read: ``contains`` and ``noise_added``, which came
    after the model, are not, so the model is fitted on pairs some of which they now decide before it."""
    from dedup.ops.evidence import SURE

    return table[(table[[f"vote_{r}" for r in SURE if f"vote_{r}" in table]] == 0).all(axis=1)]


def pairs(groups, measured, info, sims, truth, links=None) -> pd.DataFrame:
    """One row per two candidates of a cluster where one was made from the other: the evidence
    (:func:`dedup.ops.evidence.features` of the source against the copy, label 1, or the other way round
    for every second pair, label 0), the part and the family."""
    from dedup.ops.evidence import NAMES, features

    anc = ancestors(truth)
    part = dict(zip(truth["path"], truth["part"]))
    family = dict(zip(truth["path"], truth["family"]))
    rows, flip = [], False
    for c, vs in groups.items():
        ok, ver = versions_of(vs, measured, info, sims.get(c), (links or {}).get(c))
        paths = [info[v][2] for v in ok]
        for i in range(len(ok)):
            for j in range(len(ok)):
                if paths[i] not in anc.get(paths[j], ()):
                    continue  # i is not j's source
                flip = not flip
                x, y = (ver[j], ver[i]) if flip else (ver[i], ver[j])
                rows.append({"cluster": c, "part": part.get(paths[i]), "family": family.get(paths[i]),
                             "label": 0 if flip else 1, **dict(zip(NAMES, features(x, y)))})
    return pd.DataFrame(rows)


def fit(X: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Logistic regression without an intercept (the features are antisymmetric), L2 ``l2`` per pair."""
    from scipy.optimize import minimize

    def loss(w):
        z = X @ w
        p = 1 / (1 + np.exp(-z))
        nll = np.logaddexp(0, -z) * y + np.logaddexp(0, z) * (1 - y)
        return nll.mean() + l2 * (w @ w) / len(y), X.T @ (p - y) / len(y) + 2 * l2 * w / len(y)

    return minimize(loss, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B").x


def boost(X: np.ndarray, y: np.ndarray, rounds: int = 100, rate: float = 0.1, depth: int = 2, min_leaf: int = 20,
          lam: float = 1.0) -> list:
    """Gradient-boosted trees of ``depth`` on the logistic loss (Newton leaves, ``lam`` their L2), on the pairs
    and their mirror images (``-X``, ``1 - y``), so that :func:`dedup.ops.evidence.tree_score`, which takes
    ``(F(x) - F(-x)) / 2``, is antisymmetric by construction. Splits at each feature's quantiles."""
    X2, y2 = np.vstack([X, -X]), np.concatenate([y, 1 - y])
    cuts = [np.unique(np.quantile(X2[:, k], QUANTILES)) for k in range(X2.shape[1])]
    F, trees = np.zeros(len(y2)), []
    for _ in range(rounds):
        p = 1 / (1 + np.exp(-F))
        tree = _tree(X2, y2 - p, p * (1 - p), np.ones(len(y2), bool), cuts, depth, min_leaf, lam, rate)
        trees.append(tree)
        F += np.array([_leaf(tree, row) for row in X2])
    return trees


def _tree(X, g, h, rows, cuts, depth, min_leaf, lam, rate):
    G, H = g[rows].sum(), h[rows].sum()
    leaf = round(float(rate * G / (H + lam)), 6)
    if depth == 0 or rows.sum() < 2 * min_leaf:
        return leaf
    best, parent = None, G * G / (H + lam)
    for k, ts in enumerate(cuts):
        col = X[:, k]
        for t in ts:
            left = rows & (col <= t)
            n_left = left.sum()
            if n_left < min_leaf or rows.sum() - n_left < min_leaf:
                continue
            gl, hl = g[left].sum(), h[left].sum()
            gain = gl * gl / (hl + lam) + (G - gl) ** 2 / (H - hl + lam) - parent
            if best is None or gain > best[0]:
                best = (gain, k, float(t), left)
    if best is None or best[0] <= 1e-6:
        return leaf
    _, k, t, left = best
    return {"f": k, "t": round(t, 6), "l": _tree(X, g, h, left, cuts, depth - 1, min_leaf, lam, rate),
            "r": _tree(X, g, h, rows & ~left, cuts, depth - 1, min_leaf, lam, rate)}


def _leaf(tree, row) -> float:
    while isinstance(tree, dict):
        tree = tree["l"] if row[tree["f"]] <= tree["t"] else tree["r"]
    return tree


def kept_by_part(groups, measured, info, sims, truth, policy: dict, links=None) -> dict:
    """Kept original per part and per family, choosing with ``policy`` (:func:`dedup.ops.canonical.choose`'s
    keywords: ``rules`` for the rule list, ``model`` for a model)."""
    from bench.score import kept_original
    from dedup.stages.canonical import choose_groups

    _, chosen = choose_groups(list(groups.items()), measured, info, sims, links, **policy)
    cand = pd.DataFrame([{"cluster": c, "path": info[v][2], "is_canonical": v == chosen[c][0]}
                         for c, vs in groups.items() for v in vs])
    cand = cand.merge(truth[["path", "group", "part", "family"]], on="path", how="left")
    out = {}
    for key in ("part", "family"):
        for name, d in cand.groupby(key):
            out[(key, name)] = kept_original(d[["cluster", "path", "is_canonical", "group"]], truth[truth[key] == name])
    return out


def bench_pairs(work: Path) -> tuple[pd.DataFrame, Path, Path]:
    """The (original, copy) pairs of the bench corpus's SSCD run (``WORK/corpus``, ``WORK/out-sscd``, made by
    ``python -m bench``; each copy there is made from the original), its families prefixed ``bench:``."""
    truth_csv, out = (work / "corpus" / "truth.csv").resolve(), (work / "out-sscd").resolve()
    truth = bench_truth(truth_csv)
    groups, measured, info, sims, _, links = load_run(out, truth_csv.parent, work / "measured-out-sscd.pkl", truth)
    table = pairs(groups, measured, info, sims, truth, links)
    table["part"], table["family"] = "tune", "bench:" + table["family"].astype(str)
    return table, out, truth_csv


def bench_truth(truth_csv: Path) -> pd.DataFrame:
    truth = pd.read_csv(truth_csv)
    truth["path"] = [str((truth_csv.parent / p).resolve()) for p in truth["path"]]
    original = truth[truth["edit"] == "original"].set_index("group")["path"]
    truth["parent"] = ["" if e == "original" else original.get(g, "") for g, e in zip(truth["group"], truth["edit"])]
    truth["part"], truth["family"] = "bench", truth["edit"]
    return truth


def fit_model(train: pd.DataFrame) -> dict:
    """The model on ``train``'s pairs that no rule of direct evidence decides: boosted trees of the depth
    that five folds of whole families (each left out in turn) find best; the logistic regression's figure
    beside them."""
    from dedup.ops.evidence import NAMES

    train = undecided(train)
    cv = {depth: _family_cv(train, depth) for depth in DEPTHS}
    best = max(cv, key=cv.get)
    trees = boost(train[list(NAMES)].to_numpy(), train["label"].to_numpy(), depth=best)
    return {"names": list(NAMES), "depth": best, "trees": trees, "pairs": int(len(train)), "cv_pair_accuracy": cv,
            "logistic_cv_pair_accuracy": _family_cv(train, None)}


def _family_cv(tune: pd.DataFrame, depth: int | None, folds: int = 5) -> float:
    """Pair accuracy with the families split into ``folds`` folds, each left out in turn (fitted on the
    others): boosted trees of ``depth``, or with None a logistic regression (L2 1.0), the baseline."""
    from dedup.ops.evidence import NAMES, forest, tree_score

    names = sorted(tune["family"].unique())
    hits = total = 0
    for k in range(folds):
        out = set(names[k::folds])
        train, test = tune[~tune["family"].isin(out)], tune[tune["family"].isin(out)]
        X, y, Xt = train[list(NAMES)].to_numpy(), train["label"].to_numpy(), test[list(NAMES)].to_numpy()
        if depth is None:
            z = Xt @ fit(X, y, 1.0)
        else:
            trees = forest(boost(X, y, depth=depth))  # compiled once, not once per row
            z = np.array([tree_score(trees, row)[0] for row in Xt])
        hits += int(((z > 0) == (test["label"].to_numpy() == 1)).sum())
        total += len(test)
    return round(hits / max(total, 1), 4)


def score_run(groups, measured, info, sims, truth, links=None) -> dict:
    """Kept original by part and family, with the rule list and with the package's model."""
    from dedup.ops.canonical import RULES
    from dedup.ops.evidence import load_model

    return {"rules": kept_by_part(groups, measured, info, sims, truth, {"rules": RULES}, links),
            "model": kept_by_part(groups, measured, info, sims, truth, {"model": load_model()}, links)}


def build(src: Path, out: Path, seed: int, photos: int) -> Path:
    """The seed's lineage corpus (built once; ``bench/hard/install.sh`` makes the AugLy venv where it is missing)."""
    import subprocess

    from bench.hard import ROOT, VENV_PYTHON

    if (out / "truth.csv").exists():
        return out
    python = ROOT / VENV_PYTHON
    if not python.exists():
        subprocess.run(["bash", str(ROOT / "bench/hard/install.sh")], check=True)
    subprocess.run([str(python), str(ROOT / "bench/hard/make_lineage.py"), "--src", str(src), "--out", str(out),
                    "--seed", str(seed), "--photos", str(photos), "--heldout", "first" if seed < 2 else "second"], check=True)
    return out


def kept_model_main(src: Path, work: Path, results: Path, seeds=(0, 1), photos: int = 800, write: bool = True) -> dict:
    """Build each seed's lineage corpus and run the default job on it (``--canonical largest``: the choice is
    made here); fit the model on seed ``seeds[0]``'s tune part and the bench corpus's pairs (``python -m bench``
    must have run), write it to the package (:data:`dedup.ops.evidence.MODEL_FILE`) with ``write``, and score
    it and the rule list on every part of every seed and on the bench corpus. Writes
    ``RESULTS/kept-model.md`` (and ``.json``)."""
    from bench.run import first_run
    from dedup.config import DedupConfig
    from dedup.ops.evidence import MODEL_FILE, load_model

    t0, runs = time.time(), {}
    for seed in seeds:
        corpus = build(src, work / f"lineage-seed{seed}", seed, photos).resolve()
        out = (work / f"out-lineage-seed{seed}").resolve()
        if not (out / "manifest.parquet").exists():
            first_run(DedupConfig(inputs=[str(corpus)], output=str(out), canonical="largest"))
        runs[seed] = (out, corpus, work / f"measured-{out.name}.pkl")  # loaded one at a time: GBs of views each
    tune = pairs(*load_run(*runs[seeds[0]]))
    bench, bench_out, bench_csv = bench_pairs(work)
    model = fit_model(pd.concat([tune[tune["part"] == "tune"], bench]))
    if write:
        MODEL_FILE.write_text(json.dumps({**model, "trained_on": (
            f"{model['pairs']} (source, copy) pairs no rule of direct evidence decides: the tune part of "
            f"bench/hard/make_lineage.py --seed {seeds[0]} and the bench corpus (python -m bench --kept-model)")}) + "\n")
        load_model.cache_clear()
    report = {"fit": {k: v for k, v in model.items() if k not in ("trees", "names")},
              "seeds": {seed: score_run(*load_run(*run)) for seed, run in runs.items()}}
    b_truth = bench_truth(bench_csv)
    report["bench"] = score_run(*load_run(bench_out, bench_csv.parent, work / "measured-out-sscd.pkl", b_truth))
    report["seconds"] = round(time.time() - t0, 1)
    results.mkdir(parents=True, exist_ok=True)
    (results / "kept-model.json").write_text(json.dumps(_jsonable(report), indent=1))
    md = to_markdown(report, seeds[0])
    (results / "kept-model.md").write_text(md)
    print(md)
    return report


def _jsonable(report):
    if isinstance(report, dict):
        return {(":".join(map(str, k)) if isinstance(k, tuple) else str(k)): _jsonable(v) for k, v in report.items()}
    return report


def _rows(r: dict, kind: str) -> list[str]:
    out = []
    for key in sorted(k for k in r["model"] if k[0] == kind):
        rules, model = r["rules"][key], r["model"][key]
        if model.get("clusters_with_original"):
            out.append(f"| {key[1]} | {model['clusters_with_original']} | {rules['kept_original']:.3f} | {model['kept_original']:.3f} |")
    return out


def to_markdown(report: dict, first: int) -> str:
    fit = report["fit"]
    bench = report["bench"]
    whole = lambda r: r[("part", "bench")]  # noqa: E731
    lines = [
        "# The kept image on AugLy edit chains (`python -m bench --kept-model`)", "",
        "Each photo with three copies made by chains of AugLy edits (`bench/hard/make_lineage.py`; a copy is made "
        "from the photo or from an earlier copy), the default job's clusters, every cluster's candidates chosen "
        "among with the rule list (`--canonical quality` before the model) and with the model (the forensic and "
        "direct-evidence rules first, then boosted trees over the rest of the evidence: `dedup/ops/evidence.py`). "
        f"The model was fitted on seed {first}'s `tune` part and the bench corpus's (original, copy) pairs, only "
        f"on the {fit['pairs']} pairs no rule of direct evidence decides; trees of depth {fit['depth']}, chosen by "
        f"leaving out a fifth of the families in turn (pair accuracy by depth {fit['cv_pair_accuracy']}; a logistic "
        f"regression on the same evidence: {fit['logistic_cv_pair_accuracy']}). `heldout_photos`: the tune families "
        "on photos never used; `heldout_family`: edit families never used while choosing anything (seeds 0 and 1: "
        "a zoom back to the photo's size, a vignette, posterize, a pasted logo, a warm filter; seeds 2 and later "
        "another set, made after the first had been looked at: a gamma curve, autocontrast, a fade, the photo "
        "on its own blurred enlargement, a GIF palette); each seed splits its photos apart, so seed 1's and "
        "seed 2's parts are all new groups. Kept original: of the clusters that hold the group's original "
        "among their candidates, the share that keep it.", "",
        f"Bench corpus (`python -m bench`'s SSCD run; fitted on, so not held out): rule list "
        f"{whole(bench['rules'])['kept_original']:.3f}, model {whole(bench['model'])['kept_original']:.3f} "
        f"({whole(bench['model'])['clusters_with_original']} clusters). {report['seconds']:.0f} s.", ""]
    for seed, r in report["seeds"].items():
        lines += [f"## Seed {seed}", "", "| part | clusters | rule list | model |", "|---|---|---|---|", *_rows(r, "part"),
                  "", "| family | clusters | rule list | model |", "|---|---|---|---|", *_rows(r, "family"), ""]
    return "\n".join(lines)
