"""The run's summary: counts, every parameter, the stage timeline; ``summary.json`` and the one-screen text.

Stage keys are the stages' names (``dedup.stages``): ``weights``, ``discover``, ``decode_embed``, ``store``,
``search``, ``verify``, ``graph``, ``manifest`` (``store_hash``, ``search_hash``, ``union`` for a model with
a hash), each with ``seconds``, a rate where it counts items, ``reused`` where an earlier run's result was
taken back, and its own metrics.
"""
from __future__ import annotations

import json
import sys

import pandas as pd


def counts(files: pd.DataFrame, man: pd.DataFrame, errs: pd.DataFrame, distinct: int, split_off: int) -> dict:
    exact = int((man["match"] == "exact").sum())
    near = int((man["match"] == "near").sum())
    return {
        "inputs": int(len(files)),
        "images": int(len(man)),
        "errors": int(len(errs)),
        "distinct_contents": int(distinct),
        "clusters": int(man["cluster_id"].nunique()) if len(man) else 0,
        "duplicate_clusters": int((man.groupby("cluster_id").size() > 1).sum()) if len(man) else 0,
        "duplicates": exact + near,
        "exact_duplicates": exact,
        "near_duplicates": near,
        "kept": int(man["is_canonical"].sum()),
        "split_off_by_chaining_guard": int(split_off),
    }


def build(counts_: dict, params: dict, stages: dict[str, dict], total_seconds: float, outputs: dict) -> dict:
    images = counts_["images"]
    search = dict(stages.get("search", {}))
    if "search_hash" in stages:  # a model with a hash: the hash signal's search and the union beside it
        search.update(hash=stages["search_hash"], union=stages.get("union", {}))
    return {
        "counts": counts_,
        "parameters": params,
        "stages": stages,
        "reused_stages": [k for k, v in stages.items() if v.get("reused")],
        "search": search,
        "total_seconds": round(total_seconds, 3),
        "images_per_second": round(images / total_seconds, 2) if total_seconds > 0 else None,
        "outputs": dict(outputs),
    }


def write(path, summary: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    tmp.replace(path)


def read(path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# The few metrics a stage's progress line shows (after its items count), in this order; the rest is in
# summary.json. A stage not listed shows its first three numbers.
STAGE_LINE_METRICS = {
    "weights": ("format",),
    "discover": ("megabytes", "skipped"),
    "decode_embed": ("decode_errors", "model_images_per_second"),
    "store": ("method",),
    "search": ("unique_edges", "mode"),
    "search_reference": ("matches",),
    "union": ("edges",),
    "verify": ("mode", "verified", "rejected", "not_needed"),
    "graph": ("edges", "split_off_by_chaining_guard"),
    "canonical": ("clusters", "changed_from_largest"),
    "attach": ("attached", "kept_apart"),
    "manifest": (),
}


def human_number(v: float) -> str:
    """2036 -> "2,036", 1234.56 -> "1,235", 12.345 -> "12.3", 0.0123 -> "0.0123"."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 1:
        return f"{int(v):,}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 1 else f"{v:.3g}"


def stage_line(name: str, seconds: float, metrics: dict, items: str | None = None, reused: bool = False) -> str:
    """One stage's progress line for a person: "discover: 2,036 files, 96.1 MB in 0.6 s (25 skipped: .txt 20, .json 5)"."""
    lead = [f"{human_number(metrics[items])} {items.replace('_', ' ')}"] if items and isinstance(metrics.get(items), (int, float)) else []
    if name == "discover" and metrics.get("megabytes") is not None:
        lead.append(f"{metrics['megabytes']:,.1f} MB")
    extras = []
    keys = STAGE_LINE_METRICS.get(name)
    if keys is None:
        keys = [k for k, v in metrics.items() if k != items and isinstance(v, (int, float)) and not isinstance(v, bool)][:3]
    for k in keys:
        v = metrics.get(k)
        if k == "megabytes" or v is None or isinstance(v, (dict, list)) and k != "skipped":
            continue
        if k == "skipped":
            if v.get("files"):
                exts = ", ".join(f"{e} {human_number(n)}" for e, n in list(v.get("by_extension", {}).items())[:4])
                extras.append(f"{human_number(v['files'])} skipped: {exts}")
        elif k.endswith("_per_second"):
            what = k.removesuffix("_per_second").split("_")
            extras.append(" ".join(what[:-1] + [human_number(v), what[-1] + "/s"]))
        elif isinstance(v, str):
            extras.append(v if k in ("mode", "method", "format") else f"{k.replace('_', ' ')} {v}")
        else:
            extras.append(f"{human_number(v)} {k.replace('_', ' ')}")
    if reused:
        extras.insert(0, "reused from an earlier run")
    text = f"{name}: " + (", ".join(lead) + " " if lead else "") + f"in {seconds:.1f} s"
    return text + (f" - {', '.join(extras)}" if extras else "")


def timeline_note(line: dict) -> str:
    """How a ``timeline`` line ran: beside which stages, in the background, or after the one before."""
    if line.get("beside"):
        return f"beside {', '.join(line['beside'])}"
    return "in the background" if line.get("background") else ""


def _placed_later(summary: dict) -> str:
    """What the chaining guard's line adds where stage `attach` placed lone images under a kept image: the count."""
    placed = (summary.get("stages", {}).get("attach") or {}).get("attached") or 0
    return f"; {placed} lone images placed under a kept image they copy (attach)" if placed else ""


def print_summary(summary: dict, stream=sys.stdout) -> None:
    c = summary["counts"]
    w = summary["parameters"].get("weights_info", {})
    lines = [
        "",
        "dedup finished",
        f"  inputs {c['inputs']}  images {c['images']}  errors {c['errors']}",
        f"  clusters {c['clusters']} ({c['duplicate_clusters']} with duplicates)  kept {c['kept']}  "
        f"duplicates {c['duplicates']} (exact {c['exact_duplicates']}, near {c['near_duplicates']})",
        f"  split off by the chaining guard: {c['split_off_by_chaining_guard']}" + _placed_later(summary),
        f"  model {summary['parameters'].get('model')}" + (f" ({w.get('format') or w.get('weights')}: {w.get('source') or w.get('weights')})" if w.get("weights") else " (weight-free)")
        + f", threshold {summary['parameters'].get('threshold')}",
        f"  {summary['total_seconds']:.1f}s total, {summary['images_per_second']} images/s end to end",
    ]
    tl = summary.get("timeline", {})
    for name, label in (("process_start_to_run", "start-up: interpreter and imports"), ("ray_start", "start-up: Ray"),
                        ("milvus_lite_start", "start-up: Milvus Lite")):
        if tl.get(name, {}).get("seconds") is not None:
            note = timeline_note(tl[name])
            lines.append(f"    {label:<34} {tl[name]['seconds']:>6.1f}s  {note}")
    for name, st in summary["stages"].items():
        rate = next((f"{v} {k.replace('_per_second', '')}/s" for k, v in st.items() if k.endswith("_per_second")), "")
        if st.get("background"):
            rate += f" (in the background, {st['background']})"
        if st.get("reused"):
            rate = "reused from an earlier run" + (f" (edges filtered from threshold {st['filtered_from_threshold']})" if "filtered_from_threshold" in st else "")
        lines.append(f"    {name:<13} {st['seconds']:>8.1f}s  {rate}")
    lines += [f"  warning: {text}" for text in summary.get("warnings", [])]
    if not w.get("meaningful", True):
        lines.append("  RANDOM WEIGHTS: the clusters above mean nothing; do not act on remove.txt.")
    lines.append(f"  manifest: {summary['outputs']['manifest_csv']}")
    lines.append(f"  errors:   {summary['outputs']['errors_csv']}")
    lines.append(f"  summary:  {summary['outputs']['summary']}")
    if "report" in summary["outputs"]:
        lines.append(f"  report:   {summary['outputs']['report']}")
    if "run" in summary["outputs"]:
        lines.append(f"  this run: {summary['outputs']['run']} (kept beside earlier runs: dedup report OUTPUT --runs, --compare)")
    print("\n".join(lines), file=stream, flush=True)


