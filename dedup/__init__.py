"""ray-image-dedup: find duplicate and near-duplicate images in large corpora.

The public API (what ``dedup report``, ``dedup apply``, the bench and the tests use):

* :func:`run` (a :class:`DedupConfig` -> the summary) and :func:`print_summary`;
* :class:`OutputLayout` (every path under ``--output``) and :func:`load_stored` (a finished run's files,
  vector metadata and edges);
* :func:`cluster_vids` (graph + canonical over stored edges, to re-threshold without embedding again),
  :func:`representative_paths` and :func:`build_manifest`.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["run", "print_summary", "DedupConfig", "ConfigError", "OutputLayout", "load_stored", "cluster_vids",
           "representative_paths", "build_manifest"]


def __getattr__(name: str):  # imported on first use: `dedup --help` and the report need none of it
    if name == "run":
        from dedup.job import run

        return run
    if name == "print_summary":
        from dedup.summary import print_summary

        return print_summary
    if name in ("DedupConfig", "ConfigError"):
        from dedup import config

        return getattr(config, name)
    if name in ("OutputLayout", "load_stored"):
        from dedup import layout

        return getattr(layout, name)
    if name == "cluster_vids":
        from dedup.stages.graph import cluster_vids

        return cluster_vids
    if name in ("representative_paths", "build_manifest"):
        from dedup.ops import manifest

        return manifest.representative_paths if name == "representative_paths" else manifest.build
    raise AttributeError(f"module 'dedup' has no attribute {name!r}")
