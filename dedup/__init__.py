"""ray-image-dedup: find duplicate and near-duplicate images in large corpora.

From Python (``help(dedup.find_duplicates)`` lists every option with its type and default):

* :func:`find_duplicates` ``(inputs, output=None, **options) -> Result``: the whole job, as ``dedup run``
  with the same options in snake_case; the :class:`Result` has the clusters as a DataFrame (path,
  cluster, kept, similarity, reason, canonical_path), the ``keep`` / ``remove`` lists, the errors, the
  summary and the report's path (``Result.load(output)`` reads a finished run's folder).
* ``dedup.ray.deduplicate(ds, *, image_column, id_column, output, keep_only=False, **options)
  -> ray.data.Dataset``: the same job on a Ray Data Dataset of images (encoded bytes, ``{bytes, path}``
  structs or pixel arrays) and ids, which comes back with ``dedup_cluster``, ``dedup_keep``,
  ``dedup_canonical_id`` and ``dedup_error`` (:mod:`dedup.raydata`; ``import dedup.ray`` works too).

The lower-level API (what ``dedup report``, ``dedup apply``, the bench and the tests use):

* :func:`run` (a :class:`DedupConfig` -> the summary dict) and :func:`print_summary`;
* :class:`OutputLayout` (every path under ``--output``) and :func:`load_stored` (a finished run's files,
  vector metadata and edges);
* :func:`cluster_vids` (graph + canonical over stored edges, to re-threshold without embedding again),
  :func:`representative_paths` and :func:`build_manifest`;
* the errors a person fixes (:mod:`dedup.errors`): :class:`ConfigError`, :class:`JobError` and its kinds.
"""
from __future__ import annotations

__version__ = "0.1.0"

# ("ray" is left out of __all__: `from dedup import *` would hide the `ray` package behind dedup.ray.)
__all__ = ["find_duplicates", "Result", "run", "print_summary", "DedupConfig", "ConfigError", "JobError", "InputNotFound",
           "NoImages", "OutputNotWritable", "OutputLayout", "load_stored", "cluster_vids", "representative_paths", "build_manifest"]


def _ray_alias():
    """``dedup.ray``: the module :mod:`dedup.raydata` under a second name, loaded on first use, so that
    ``import dedup.ray`` and ``from dedup.ray import deduplicate`` work without a file named ray.py in
    this package (one would be taken for the ``ray`` package wherever this folder is on sys.path)."""
    import importlib.util
    import sys

    if "dedup.raydata" in sys.modules:
        module = sys.modules["dedup.raydata"]
    else:
        spec = importlib.util.find_spec("dedup.raydata")
        spec.loader = importlib.util.LazyLoader(spec.loader)
        module = importlib.util.module_from_spec(spec)
        sys.modules["dedup.raydata"] = module
        spec.loader.exec_module(module)
    sys.modules["dedup.ray"] = module
    return module


ray = _ray_alias()


def __getattr__(name: str):  # imported on first use: `dedup --help` and the report need none of it
    if name in ("find_duplicates", "Result"):
        from dedup import api

        return getattr(api, name)
    if name == "run":
        from dedup.job import run

        return run
    if name == "print_summary":
        from dedup.summary import print_summary

        return print_summary
    if name in ("DedupConfig", "ConfigError"):
        from dedup import config

        return getattr(config, name)
    if name in ("JobError", "InputNotFound", "NoImages", "OutputNotWritable"):
        from dedup import errors

        return getattr(errors, name)
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


def __dir__() -> list[str]:  # help(dedup) and dir() list the lazily imported API too
    return sorted(set(globals()) | set(__all__))
