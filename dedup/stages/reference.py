"""Stage `reference`: earlier runs' images as a reference that the new images are deduplicated against.

In:  ``--reference PRIOR_OUTPUT`` (one or more): each the output folder of a finished run
     (``summary.json``, ``files.parquet``, ``vectors/``); the new files from `discover`.
Out: a :class:`References`: the reference images in a vid space after the new ones (vid ``n_new + i``),
     with their representatives (where their bytes are), metadata and file sizes, where their vectors
     are, and the new files that are byte-identical to a reference image (by SHA-256: found before any
     decoding; they are not embedded). Nothing in a reference folder is written, its collection is
     neither rebuilt nor dropped.

A reference is usable only with the same embedding: the model, its file (SHA-256), ``--preprocess``,
``--image-size``, ``--max-pixels`` and the decoder's version must be the reference run's (its
``summary.json``'s ``parameters.embedding``); anything else is a clear error before any image is read.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from dedup.layout import OutputLayout
from dedup.stages.base import Stage, StageContext, StageResult


class ReferenceError(ValueError):
    """A reference folder that cannot be used: its message says why and what to do."""


@dataclass
class RefRun:
    folder: Path
    offset: int  # its vid v is vid offset + v of this run's graph
    n: int
    vectors: Path
    collection: str | None  # its Milvus collection on a server (None: Milvus Lite; the Parquet vectors are used)
    milvus_uri: str | None


@dataclass
class References:
    runs: list[RefRun] = field(default_factory=list)
    reps: pd.DataFrame = field(default_factory=pd.DataFrame)  # vid (global), sha, path, kind, unit, bytes
    meta: pd.DataFrame = field(default_factory=pd.DataFrame)  # vid (global), width, height, mode, format, error
    exact: dict[int, int] = field(default_factory=dict)  # new vid -> reference vid of the same bytes

    @property
    def n(self) -> int:
        return int(sum(r.n for r in self.runs))

    @property
    def vids(self) -> np.ndarray:
        return self.reps["vid"].to_numpy(np.int64) if len(self.reps) else np.zeros(0, np.int64)


def embedding_key(params: dict) -> dict:
    """What must be equal for two runs' vectors to be compared (recorded by `decode_embed`)."""
    return params.get("embedding") or {}


class ReferenceStage(Stage):
    name = "reference"
    after = ("discover", "weights")

    def run(self, ctx: StageContext) -> StageResult:
        files, cfg = ctx.value("discover"), ctx.cfg
        refs = References()
        frames, metas = [], []
        offset = files.n
        for folder in cfg.references:
            run, reps, meta = _load(Path(folder), offset, ctx.params["embedding"])
            refs.runs.append(run)
            frames.append(reps)
            metas.append(meta)
            offset += run.n
        if frames:
            refs.reps = pd.concat(frames, ignore_index=True)
            refs.meta = pd.concat(metas, ignore_index=True)
            usable = refs.reps[refs.reps["vid"].isin(refs.meta.loc[refs.meta["error"].isna(), "vid"])]
            refs.exact = _exact_copies(files.reps, usable)
        ctx.params["references"] = [str(r.folder) for r in refs.runs]
        return StageResult(refs, {"reference_runs": len(refs.runs), "reference_images": refs.n,
                                  "exact_copies_of_reference": len(refs.exact)})


def _load(folder: Path, offset: int, embedding: dict) -> tuple[RefRun, pd.DataFrame, pd.DataFrame]:
    layout = OutputLayout.of(folder)
    if not (layout.summary.exists() and layout.files.exists() and layout.vectors.exists()):
        raise ReferenceError(f"--reference {folder} is not the output folder of a finished dedup run "
                             "(it needs summary.json, files.parquet and vectors/)")
    params = json.loads(layout.summary.read_text()).get("parameters", {})
    theirs = embedding_key(params)
    if theirs != embedding:
        diff = {k: (theirs.get(k), embedding.get(k)) for k in sorted(set(theirs) | set(embedding)) if theirs.get(k) != embedding.get(k)}
        raise ReferenceError(f"--reference {folder} was embedded differently (reference, this run): {diff}. Its vectors "
                             "cannot be compared with this run's: run with the reference's --model, --weights, --preprocess "
                             "and --image-size, or make the reference again with these.")
    files = pq.read_table(layout.files).to_pandas()
    ok = files[files["vid"].notna()].sort_values("path", kind="stable").drop_duplicates("vid")
    n = int(files["vid"].max() + 1) if len(ok) else 0
    reps = pd.DataFrame({"vid": ok["vid"].astype(np.int64).to_numpy() + offset, "sha": ok["sha"].to_numpy(),
                         "path": ok["path"].to_numpy(), "kind": ok["kind"].to_numpy(), "unit": ok["unit"].to_numpy(),
                         "bytes": ok["bytes"].to_numpy(np.int64)}).sort_values("vid").reset_index(drop=True)
    meta = pads.dataset(str(layout.vectors), format="parquet").to_table(
        columns=["vid", "width", "height", "mode", "format", "error"]).to_pandas()
    meta["vid"] = meta["vid"].astype(np.int64) + offset
    collection = params.get("collection") if params.get("milvus_uri") else None
    run = RefRun(layout.root, offset, n, layout.vectors, collection, params.get("milvus_uri"))
    return run, reps, meta.sort_values("vid").reset_index(drop=True)


def _exact_copies(new_reps: pd.DataFrame, ref_reps: pd.DataFrame) -> dict[int, int]:
    """New vid -> the first reference vid with the same bytes."""
    first = ref_reps.drop_duplicates("sha", keep="first").set_index("sha")["vid"]
    hit = new_reps[new_reps["sha"].isin(first.index)]
    return dict(zip(hit["vid"].astype(int).tolist(), first.reindex(hit["sha"]).astype(int).tolist()))
