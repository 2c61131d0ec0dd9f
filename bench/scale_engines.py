"""``python -m bench --scale-engines N``: the search engines (exact in memory, Milvus Lite FLAT / IVF) side by side at
each size on planted SSCD-like vectors, timed and scored against exact search, with larger sizes extrapolated
from a sample of queries (``bench/results/scale.md``)."""
from __future__ import annotations

from pathlib import Path

from bench.scale import scale_run


# The engine comparison (``python -m bench --scale-engines N ...``): SSCD-sized vectors and an SSCD-like threshold,
# each engine as the job runs it, so the auto choice per size can be read off the table.
SSCD_DIM, SSCD_THRESHOLD, SSCD_COPY_COS = 512, 0.30, (0.45, 0.99)
ENGINES_MARK = "## Engines per size"


def engine_plan(n: int) -> list[tuple[str, dict]]:
    """(label, scale_run keywords) per engine timed at ``n`` vectors. Where every query would take too long
    on a 2-core machine, a sample of queries is timed (``query_every``) and the full time extrapolated. From
    100,000 vectors Milvus Lite gets IVF_FLAT (AUTO's HNSW costs more to build there than the exact search)."""
    every_exact = 1 if n <= 50_000 else max(1, n // 10_000)
    every_lite = 1 if n <= 20_000 else max(1, n // 20_000)
    index = "AUTO" if n < 100_000 else "IVF_FLAT"
    plan = [("exact, int8 products", {"search_engine": "exact", "exact_products": "int8", "query_every": every_exact, "index": "AUTO"}),
            ("exact, float32 products", {"search_engine": "exact", "exact_products": "float32", "query_every": every_exact, "index": "AUTO"}),
            ("lite, requests of 1024", {"search_engine": "milvus", "query_every": every_lite, "index": index})]
    if n <= 20_000:  # the request size before, and an ANN index: one size shows each, larger ones cost hours
        plan.insert(1, ("lite, requests of 32 (before)", {"search_engine": "milvus", "search_batch": 32, "query_every": every_lite, "index": index}))
        plan.append(("lite IVF_FLAT, requests of 1024", {"search_engine": "milvus", "query_every": every_lite, "index": "IVF_FLAT"}))
    return plan


def engines_bench(sizes, work: Path, results: Path | None = None, recall_sample: int = 1000, only: str | None = None) -> list[dict]:
    """Each engine of :func:`engine_plan` at each size on SSCD-like planted vectors; the fastest per size is
    what ``--search-engine auto`` should pick. Adds its section to RESULTS/scale.md and ``engines`` to scale.json."""
    import json

    import ray

    from dedup.ray_env import init_ray

    started = init_ray(logging_level="ERROR")
    rows = []
    try:
        for n in sizes:
            for label, kw in engine_plan(n):
                if only and not label.startswith(only):
                    continue
                kw = dict(kw)
                every = kw.pop("query_every")
                for attempt in (1, 2):  # a Milvus Lite server forked beside Ray's threads can die at start: once more
                    try:
                        r = scale_run(n, work, dim=SSCD_DIM, threshold=SSCD_THRESHOLD, query_every=every,
                                      copy_cos=SSCD_COPY_COS, recall_sample=recall_sample,
                                      label=label.split(",")[0] + str(kw.get("search_batch", "")) + kw.get("exact_products", ""), **kw)
                        break
                    except Exception as e:  # noqa: BLE001 - a failed engine is a row saying why
                        r = {"n": n, "error": f"{type(e).__name__}: {e}", "attempts": attempt}
                r["label"] = label
                rows.append(_extrapolate(r))
                print(engines_markdown(rows[-1:]), flush=True)
    finally:
        if started:
            ray.shutdown()
    if results is not None:
        results.mkdir(parents=True, exist_ok=True)
        js = results / "scale.json"
        report = json.loads(js.read_text()) if js.exists() else {}
        done = {(r.get("n"), r.get("label")) for r in rows}
        earlier = [r for r in report.get("engines", []) if (r.get("n"), r.get("label")) not in done]
        report["engines"] = sorted(earlier + rows, key=lambda r: (r.get("n", 0), r.get("label", "")))
        js.write_text(json.dumps(report, indent=2))
        md = results / "scale.md"
        head = md.read_text().split(ENGINES_MARK)[0].rstrip() + "\n\n" if md.exists() else ""
        md.write_text(head + engines_markdown(report["engines"]))
    return rows


def _extrapolate(r: dict) -> dict:
    """All queries' search time from a sampled one, and store + search as the job waits for them."""
    if "seconds" in r:
        every = r["query_every"]
        # A sampled exact search computes each sampled query against every vector; all queries would
        # compute each pair once (the upper triangle): half of every x the sample.
        scale = every / 2 if every > 1 and r["engine"] == "exact" else every
        r["search_seconds_all_queries"] = round(r["seconds"]["search"] * scale, 1)
        store, search = r["seconds"]["store"], r["search_seconds_all_queries"]
        # In the background the store runs beside the search, and the job waits for both; else one after the other.
        r["store_plus_search_seconds"] = round(max(store, search) if r["store"].get("background") else store + search, 1)
    return r


def engines_refresh(results: Path) -> None:
    """Recompute the derived columns of RESULTS/scale.json's engine rows and rewrite scale.md's section."""
    import json

    js, md = results / "scale.json", results / "scale.md"
    report = json.loads(js.read_text())
    report["engines"] = [_extrapolate(r) for r in report.get("engines", [])]
    js.write_text(json.dumps(report, indent=2))
    head = md.read_text().split(ENGINES_MARK)[0].rstrip() + "\n\n" if md.exists() else ""
    md.write_text(head + engines_markdown(report["engines"]))


def engines_markdown(rows: list[dict]) -> str:
    lines = [ENGINES_MARK, "",
             f"{SSCD_DIM}-d planted vectors: 10 % in groups of 2-5 copies whose cosine to their base is uniform in "
             f"{SSCD_COPY_COS[0]}-{SSCD_COPY_COS[1]}, threshold {SSCD_THRESHOLD} (SSCD's default); recall of the planted pairs, "
             "and of every pair at or above the threshold that involves one of the sampled queries (brute force). "
             "A sampled search (queries < vectors) is extrapolated to all queries (exact: x queries/2, each pair once); "
             "the store of an exact run is in the background, beside search (wall: both, as the job waits for them; "
             "store + search: one after the other, or the longer of the two where they run side by side).", "",
             "| vectors | engine | index | queries timed | store s | search s | wall s, as run | search s, all queries | store + search s, all queries | recall (planted) | recall (exact, sample) | peak driver MB | peak all MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['n']:,} | {r.get('label')} | {r['error']} | | | | | | | | | | |")
            continue
        sec = r["seconds"]
        lines.append(f"| {r['n']:,} | {r['label']} | {r['index']} | {r['queries']:,} | {sec.get('store')} | {sec.get('search')} | "
                     f"{r.get('store_plus_search_wall_seconds') or '-'} | {r['search_seconds_all_queries']} | {r['store_plus_search_seconds']} | {r['recall']} | {r.get('recall_exact')} | "
                     f"{r['peak_driver_mb']} | {r['peak_all_processes_mb']} |")
    lines += ["", "`python -m bench --scale-engines N ...` (one size at a time here). The fastest row per size is the engine "
              "`--search-engine auto` picks with Milvus Lite. A row with an error says what stopped it; a note in "
              "scale.json says where a row was taken from a run's printed line."]
    return "\n".join(lines) + "\n"
