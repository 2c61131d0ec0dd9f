"""Stage `manifest`: the outputs a user acts on.

In:  the files (`discover`), the vector metadata (`decode_embed`), the clusters and why each kept image
     was kept (`canonical`, with the lone copies `attach` placed) and the edges' content checks (`verify`).
Out: ``manifest.parquet`` / ``.csv`` (one row per input read as an image), ``errors.parquet`` / ``.csv``
     (one row per input that could not be used, with the reason), ``keep.txt`` and ``remove.txt``; the
     columns are :data:`dedup.ops.manifest.MANIFEST_COLUMNS` and ``ERROR_COLUMNS``. Every input is in
     exactly one of manifest and errors (:func:`dedup.ops.manifest.build` checks it).
"""
from __future__ import annotations

import pandas as pd

from dedup.ops import manifest as kernels
from dedup.stages.base import Stage, StageContext, StageResult


class ManifestStage(Stage):
    name = "manifest"
    items = "rows"
    after = ("discover", "decode_embed", "reference", "graph", "attach", "verify")

    def needs_ray(self, ctx: StageContext) -> bool:
        return False  # tables in the driver

    def run(self, ctx: StageContext) -> StageResult:
        from dedup.stages.common import graph_inputs

        files = ctx.value("discover")
        table, meta, _, _ = graph_inputs(ctx)
        reps = kernels.representative_paths(table)  # a reference vid's path is its reference image's
        choice = ctx.value("attach")
        man, errs = kernels.build(files.table, meta, choice.clusters, reps, ctx.value("verify").checks,
                                  reference_from=files.n if ctx.cfg.references else None, kept_because=choice.why)
        write(ctx.layout, man, errs)
        return StageResult((man, errs), {"rows": int(len(man))})


def write(layout, manifest: pd.DataFrame, errors: pd.DataFrame) -> None:
    manifest.to_parquet(layout.manifest_parquet, index=False)
    manifest.to_csv(layout.manifest_csv, index=False)
    errors.to_parquet(layout.errors_parquet, index=False)
    errors.to_csv(layout.errors_csv, index=False)
    keep = manifest.loc[manifest["is_canonical"], "path"]
    remove = manifest.loc[~manifest["is_canonical"], "path"]
    layout.keep.write_text("".join(p + "\n" for p in keep))
    layout.remove.write_text("".join(p + "\n" for p in remove))
