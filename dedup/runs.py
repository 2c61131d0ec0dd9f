"""Runs that keep history: every finished run's results under ``OUTPUT/runs/<run id>/``, and two runs compared.

A run on an ``--output`` writes its manifest, errors, keep/remove lists, summary and report at the top of
the folder, as always (what the README's commands read: they are the latest run), and the same files under
``OUTPUT/runs/<run id>/`` (:data:`RUN_FILES`), where the next run with other parameters does not overwrite
them. ``OUTPUT/runs/latest`` names the latest run's id.

A run id is ``YYYYmmdd-HHMMSS-<key>``: when it finished, and a key of what decides its result (every
stage's fingerprint and the result's parameters: :func:`run_key`). A re-run whose key is the latest run's
(the same command again) refreshes that run's folder instead of adding one; any other run adds one.

``dedup report OUTPUT --runs`` lists the runs; ``dedup report OUTPUT --compare A [B]`` shows what differs
between two (B defaults to the latest): their parameters, the images one removes and the other keeps,
clusters merged or split, images only one of them has (:func:`compare`). ``dedup apply OUTPUT --run ID``
applies an earlier run. A run is named by its id, a unique part of it (the key, the time), ``latest``,
``previous`` (the run before the latest), or the path of a run folder or output folder.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dedup.layout import OutputLayout

# the parameters that decide a run's result besides the stages' fingerprints (the stages after `search`
# have none: they run every time)
RESULT_PARAMS = ("inputs", "input_format", "include", "exclude", "references", "reference_only", "image_column", "model",
                 "weights", "weights_sha256", "preprocess", "image_size", "max_pixels", "threshold", "max_bits", "canonical",
                 "verify", "verify_band")
# the parameters shown side by side by --compare and --runs, in this order (the others only when they differ)
SHOWN_PARAMS = ("model", "threshold", "verify", "verify_band", "max_bits", "canonical")
# parameters that never make two runs' results differ: left out of the comparison
IGNORED_PARAMS = {"output", "fresh", "report", "ray", "ray_address", "milvus_token", "bulk_secret_key", "bulk_access_key",
                  "collection", "weights_info"}


class RunNotFound(LookupError):
    """A run named on the command line is not there (or the name fits several)."""


def run_key(stage_fps: dict, cfg) -> str:
    from dedup.runner import fingerprint

    params = {k: getattr(cfg, k, None) for k in RESULT_PARAMS}
    return fingerprint(sorted((k, v) for k, v in stage_fps.items() if v), params)[:8]


def latest_id(layout: OutputLayout) -> str | None:
    try:
        rid = layout.latest_run.read_text().strip()
    except OSError:
        return None
    return rid if rid and layout.run_dir(rid).is_dir() else None


def next_id(layout: OutputLayout, key: str) -> str:
    """The id this run's files go under: the latest run's where it had the same key, else a new one."""
    latest = latest_id(layout)
    if latest and latest.rsplit("-", 1)[-1] == key:
        return latest
    stamp = time.strftime("%Y%m%d-%H%M%S")
    taken = {p.name.rsplit("-", 1)[0] for p in layout.runs.iterdir()} if layout.runs.is_dir() else set()
    prefix, n = stamp, 2
    while prefix in taken:  # runs in one second, whatever their keys: the later ids sort after (.2 to .9)
        prefix, n = f"{stamp}.{n}", n + 1
    return f"{prefix}-{key}"


def save(layout: OutputLayout, run_id: str) -> Path:
    """Copy the top-level results (the run that just finished) into ``runs/<run_id>/``; it becomes the latest."""
    target = layout.run_dir(run_id)
    target.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        src = layout.root / name
        if src.exists():
            tmp = target / (name + ".tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(target / name)
        else:
            (target / name).unlink(missing_ok=True)
    report = target / "report.html"
    if report.exists():  # the history's links, relative to OUTPUT at the top, are relative to runs/<id>/ here
        report.write_text(report.read_text(encoding="utf-8").replace(RUN_LINK + "runs/", RUN_LINK + "../"), encoding="utf-8")
    tmp = layout.latest_run.with_suffix(".tmp")
    tmp.write_text(run_id + "\n")
    tmp.replace(layout.latest_run)
    return target


def save_summary(layout: OutputLayout, run_id: str | None) -> None:
    """The top-level summary.json again into the run's folder (after its shutdown line was added)."""
    if run_id and layout.run_dir(run_id).is_dir() and layout.summary.exists():
        shutil.copyfile(layout.summary, layout.run_dir(run_id) / "summary.json")


RUN_FILES = ("manifest.parquet", "manifest.csv", "errors.parquet", "errors.csv", "keep.txt", "remove.txt", "summary.json", "report.html")
RUN_LINK = 'class="run-link" href="'


@dataclass
class Run:
    id: str  # the run id, or the folder's name for a folder outside runs/
    path: Path  # a folder with manifest.parquet (a run folder, or an output folder: its latest run)
    summary: dict

    @property
    def params(self) -> dict:
        return self.summary.get("parameters") or {}

    @property
    def counts(self) -> dict:
        return self.summary.get("counts") or {}

    def describe(self) -> str:
        p, c = self.params, self.counts
        shown = ", ".join(f"{k} {_fmt(p[k])}" for k in SHOWN_PARAMS if p.get(k) is not None)
        if not c:
            return shown
        removed = int(c.get("images", 0)) - int(c.get("kept", 0))
        return (f"{shown}: {c.get('images', 0):,} images, {c.get('duplicate_clusters', 0):,} clusters with duplicates, "
                f"{c.get('kept', 0):,} kept, {removed:,} to remove")


def list_runs(layout: OutputLayout) -> list[Run]:
    """The runs kept under ``runs/``, oldest first."""
    if not layout.runs.is_dir():
        return []
    out = []
    for d in sorted(p for p in layout.runs.iterdir() if p.is_dir() and (p / "manifest.parquet").exists()):
        out.append(Run(d.name, d, _read_summary(d / "summary.json")))
    return out


def resolve(output: str | Path, name: str | None = None) -> Run:
    """The run ``name`` of the output folder ``output`` (None or ``latest``: the latest run; ``previous``: the
    one before it; an id, a unique part of one, or a path to a run or output folder)."""
    layout = OutputLayout.of(output)
    if name in (None, "", "latest"):
        rid = latest_id(layout)
        if rid:
            return _run(layout.run_dir(rid), rid)
        if layout.manifest_parquet.exists():  # an output folder from before runs were kept
            return _run(layout.root, layout.root.name)
        raise RunNotFound(f"{layout.root} has no finished run (no manifest.parquet)")
    runs = list_runs(layout)
    if name == "previous":  # the run before the latest
        latest = latest_id(layout)
        before = [r for r in runs if r.id != latest and (latest is None or r.id < latest)]
        if not before:
            raise RunNotFound(f"{layout.root} keeps no run before the latest")
        return before[-1]
    exact = [r for r in runs if r.id == name]
    if exact:
        return exact[0]
    partial = [r for r in runs if name in r.id]
    if len(partial) == 1:
        return partial[0]
    if len(partial) > 1:
        raise RunNotFound(f"run {name!r} fits {len(partial)} runs of {layout.root}: " + ", ".join(r.id for r in partial))
    p = Path(name).expanduser()
    if p.is_dir():
        inner = OutputLayout.of(p)
        if (p / "manifest.parquet").exists() and not latest_id(inner):
            return _run(p.resolve(), p.resolve().name)
        return resolve(p)
    known = ", ".join(r.id for r in runs) or "none"
    raise RunNotFound(f"no run {name!r} in {layout.root} (runs: {known})")


def _run(path: Path, rid: str) -> Run:
    return Run(rid, path, _read_summary(path / "summary.json"))


def _read_summary(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return " ".join(_fmt(x) for x in v)
    return str(v)


def _manifest(run: Run) -> pd.DataFrame:
    man = pd.read_parquet(run.path / "manifest.parquet", columns=["path", "cluster_id", "is_canonical"])
    return man.set_index("path")


def compare(a: Run, b: Run, examples: int = 10) -> dict:
    """What differs between runs ``a`` and ``b`` of the same inputs (JSON-able): parameters, the images one
    removes and the other keeps, the clusters of duplicates merged or split, the images only one has."""
    ma, mb = _manifest(a), _manifest(b)
    both = ma.join(mb, how="inner", lsuffix="_a", rsuffix="_b")
    kept_a, kept_b = both["is_canonical_a"].astype(bool), both["is_canonical_b"].astype(bool)
    removed_a_kept_b = sorted(both.index[~kept_a & kept_b])
    kept_a_removed_b = sorted(both.index[kept_a & ~kept_b])
    merged = _regrouped(both, "cluster_id_a", "cluster_id_b", examples)  # a cluster of b holding images of several of a's
    split = _regrouped(both, "cluster_id_b", "cluster_id_a", examples)  # a cluster of a whose images are in several of b's
    pa_, pb = a.params, b.params
    keys = [k for k in dict.fromkeys(list(pa_) + list(pb)) if k not in IGNORED_PARAMS and pa_.get(k) != pb.get(k)]
    return {
        "a": {"id": a.id, "path": str(a.path), "describe": a.describe()},
        "b": {"id": b.id, "path": str(b.path), "describe": b.describe()},
        "parameters": {k: [pa_.get(k), pb.get(k)] for k in keys},
        "images_in_both": int(len(both)),
        "removed_in_a_kept_in_b": {"count": len(removed_a_kept_b), "examples": removed_a_kept_b[:examples]},
        "kept_in_a_removed_in_b": {"count": len(kept_a_removed_b), "examples": kept_a_removed_b[:examples]},
        "clusters_merged_in_b": merged,
        "clusters_split_in_b": split,
        "only_in_a": {"count": int(len(ma) - len(both)), "examples": sorted(set(ma.index) - set(both.index))[:examples]},
        "only_in_b": {"count": int(len(mb) - len(both)), "examples": sorted(set(mb.index) - set(both.index))[:examples]},
        "same_result": not (removed_a_kept_b or kept_a_removed_b or merged["count"] or split["count"] or len(ma) != len(both)
                            or len(mb) != len(both)),
    }


def _regrouped(both: pd.DataFrame, parts: str, whole: str, examples: int) -> dict:
    """The clusters of one run (``whole``) that hold images of two or more clusters of the other (``parts``):
    seen from ``parts``' run, those were merged. Their count, and the largest as examples, each with its
    images grouped by ``parts``."""
    df = both.reset_index()
    sub = df[df.groupby(whole)[parts].transform("nunique") > 1]
    sizes = sub.groupby(whole).size().sort_values(ascending=False, kind="stable")
    shown = []
    for cid in sizes.index[:examples]:
        g = sub[sub[whole] == cid]
        groups = sorted((sorted(gg["path"]) for _, gg in g.groupby(parts)), key=lambda x: (-len(x), x))
        shown.append({"images": int(len(g)), "groups": [grp[:6] for grp in groups[:6]]})
    return {"count": int(len(sizes)), "examples": shown}


def _changes(params: dict):
    """(name, before, after) per parameter that differs; for one held as a dict (the content check's
    parameters), only its keys that differ, as ``name.key``: a changed band is one line, not two dicts."""
    for k, (a, b) in params.items():
        if isinstance(a, dict) and isinstance(b, dict):
            yield from ((f"{k}.{sub}", a.get(sub), b.get(sub)) for sub in dict.fromkeys([*a, *b]) if a.get(sub) != b.get(sub))
        else:
            yield k, a, b


def format_compare(d: dict) -> str:
    lines = [f"A  {d['a']['id']}  {d['a']['describe']}", f"B  {d['b']['id']}  {d['b']['describe']}"]
    if d["parameters"]:
        lines.append("parameters that differ: " + "; ".join(f"{k} {_fmt(a)} -> {_fmt(b)}" for k, a, b in _changes(d["parameters"])))
    else:
        lines.append("parameters: the same")
    if d["same_result"]:
        lines.append(f"same result: the {d['images_in_both']:,} images are kept, removed and clustered alike")
        return "\n".join(lines)

    def paths(key: str, label: str) -> None:
        part = d[key]
        lines.append(f"{label}: {part['count']:,}")
        lines.extend(f"  {p}" for p in part["examples"])
        if part["count"] > len(part["examples"]):
            lines.append(f"  ... and {part['count'] - len(part['examples']):,} more")

    paths("removed_in_a_kept_in_b", "removed by A, kept by B")
    paths("kept_in_a_removed_in_b", "kept by A, removed by B")
    for key, label, what in (("clusters_merged_in_b", "clusters merged in B", "of A's clusters"),
                             ("clusters_split_in_b", "clusters split in B", "of B's clusters")):
        part = d[key]
        lines.append(f"{label}: {part['count']:,}")
        for c in part["examples"]:
            shown = sum(len(grp) for grp in c["groups"])
            lines.append(f"  {c['images']} images from {len(c['groups'])}{'+' if shown < c['images'] else ''} {what}: "
                         + " | ".join(", ".join(grp) for grp in c["groups"]) + (" ..." if shown < c["images"] else ""))
    for key, label in (("only_in_a", "images only in A"), ("only_in_b", "images only in B")):
        if d[key]["count"]:
            paths(key, label)
    return "\n".join(lines)


def format_runs(output: str | Path) -> str:
    layout = OutputLayout.of(output)
    runs = list_runs(layout)
    if not runs:
        return f"{layout.root}: no runs kept under runs/ yet"
    latest = latest_id(layout)
    return "\n".join(f"{'*' if r.id == latest else ' '} {r.id}  {r.describe()}" for r in runs) + "\n(* the latest: the files at the top of the folder)"


__all__ = ["Run", "RunNotFound", "RUN_FILES", "run_key", "next_id", "save", "list_runs", "resolve", "compare", "format_compare", "format_runs"]
