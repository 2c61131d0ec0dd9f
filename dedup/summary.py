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


def timeline_note(line: dict) -> str:
    """How a ``timeline`` line ran: beside which stages, in the background, or after the one before."""
    if line.get("beside"):
        return f"beside {', '.join(line['beside'])}"
    return "in the background" if line.get("background") else ""


def print_summary(summary: dict, stream=sys.stdout) -> None:
    c = summary["counts"]
    w = summary["parameters"].get("weights_info", {})
    lines = [
        "",
        "dedup finished",
        f"  inputs {c['inputs']}  images {c['images']}  errors {c['errors']}",
        f"  clusters {c['clusters']} ({c['duplicate_clusters']} with duplicates)  kept {c['kept']}  "
        f"duplicates {c['duplicates']} (exact {c['exact_duplicates']}, near {c['near_duplicates']})",
        f"  split off by the chaining guard: {c['split_off_by_chaining_guard']}",
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
    print("\n".join(lines), file=stream, flush=True)


