"""OutputLayout: every path under ``--output``, the one place their names are spelled.

The job's stages, the runner, ``dedup report``, ``dedup apply``, the bench and the tests all find a run's
files through it, so a file is renamed in one place.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OutputLayout:
    root: Path

    @classmethod
    def of(cls, output: str | Path) -> "OutputLayout":
        return cls(Path(output).expanduser().resolve())

    # what a user reads and acts on
    @property
    def manifest_parquet(self) -> Path:
        return self.root / "manifest.parquet"

    @property
    def manifest_csv(self) -> Path:
        return self.root / "manifest.csv"

    @property
    def errors_parquet(self) -> Path:
        return self.root / "errors.parquet"

    @property
    def errors_csv(self) -> Path:
        return self.root / "errors.csv"

    @property
    def keep(self) -> Path:
        return self.root / "keep.txt"

    @property
    def remove(self) -> Path:
        return self.root / "remove.txt"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    # the runs kept (dedup.runs): each finished run's results, and which is the latest
    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    @property
    def latest_run(self) -> Path:
        """Names the latest run's id (its files are also the ones at the top of the folder)."""
        return self.runs / "latest"

    # what the stages keep for re-runs
    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def files(self) -> Path:
        """Stage `discover`: every input with its hash and vid."""
        return self.root / "files.parquet"

    @property
    def vectors(self) -> Path:
        """Stage `decode_embed`: one Parquet dataset of vectors and image metadata."""
        return self.root / "vectors"

    @property
    def vectors_partial(self) -> Path:
        """Where `decode_embed` writes until it is complete (then renamed to :attr:`vectors`)."""
        return self.root / "vectors.partial"

    def edges(self, signal: str = "") -> Path:
        """Stage `search` (of a signal): unique edges at or above the threshold."""
        return self.root / f"edges{signal}.parquet"

    def nearest(self, signal: str = "") -> Path:
        """Stage `search`: each image's nearest-neighbour similarity, down to the floor."""
        return self.root / f"nearest{signal}.parquet"

    def search_scratch(self, signal: str = "") -> Path:
        """Search actors' output before it is deduplicated into :meth:`edges`."""
        return self.root / f"search_edges{signal}"

    @property
    def union_edges(self) -> Path:
        """Stage `union` (a model with a hash): the edges of both signals."""
        return self.root / "edges_union.parquet"

    @property
    def verify_cache(self) -> Path:
        """Stage `verify`: every pair checked, with the parameters' key."""
        return self.root / "verify.parquet"

    @property
    def edges_checked(self) -> Path:
        """Stage `verify`: the edges with their check (verified, inliers, mirrored)."""
        return self.root / "edges_checked.parquet"

    @property
    def canonical(self) -> Path:
        """Stage `canonical`: the evidence measured for each candidate, and each cluster's choice."""
        return self.root / "canonical.parquet"

    # Milvus
    @property
    def milvus_lite_dir(self) -> Path:
        return self.root / "milvus"

    @property
    def milvus_lite_log(self) -> Path:
        return self.root / "milvus-lite.log"

    @property
    def bulk_dir(self) -> Path:
        return self.root / "milvus-bulk"

    def outputs(self) -> dict[str, str]:
        """The files a finished run names in its summary."""
        return {"manifest_parquet": str(self.manifest_parquet), "manifest_csv": str(self.manifest_csv),
                "errors_parquet": str(self.errors_parquet), "errors_csv": str(self.errors_csv),
                "keep": str(self.keep), "remove": str(self.remove)}


@dataclass
class StoredRun:
    """What a finished run left that the bench and reports re-cluster from: the files table, the vector
    metadata, the number of vids and the unique edges."""

    files: "object"  # pandas DataFrame (files.parquet)
    meta: "object"  # pandas DataFrame (vectors/ without the vectors)
    n: int
    edges: "object"  # pyarrow Table (edges.parquet)


def load_stored(output: str | Path) -> StoredRun:
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    layout = OutputLayout.of(output)
    files = pq.read_table(layout.files).to_pandas()
    meta = pads.dataset(str(layout.vectors), format="parquet").to_table(columns=["vid", "width", "height", "mode", "format", "error"]).to_pandas()
    n = int(files["vid"].max() + 1) if files["vid"].notna().any() else 0
    return StoredRun(files, meta, n, pq.read_table(layout.edges()))
