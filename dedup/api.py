"""The job from Python: :func:`find_duplicates` runs it and returns a :class:`Result` to work with.

    >>> import dedup
    >>> r = dedup.find_duplicates("./photos", output="./dedup-out", model="multihash")
    >>> r.clusters.head()          # path, cluster, kept, similarity, reason, canonical_path
    >>> r.remove                   # the paths a person would delete (never deleted by this call)

The options are the command line's (``dedup run --help``) in snake_case, as typed keyword arguments
(the fields of :class:`dedup.config.DedupConfig`); an unknown name is a ``TypeError`` that lists them.
"""
from __future__ import annotations

import dataclasses
import inspect
import os
import tempfile
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if typing.TYPE_CHECKING:  # pandas is imported when a Result is made
    import pandas as pd

CLUSTER_COLUMNS = ["path", "cluster", "kept", "similarity", "reason", "canonical_path"]


@dataclass
class Result:
    """A finished run, read back from its output folder.

    ``clusters``: one row per image (path, cluster, kept, similarity to the kept image, reason in words,
    canonical_path: the image kept for it); ``keep`` / ``remove``: the paths of ``keep.txt`` /
    ``remove.txt``; ``errors``: inputs that could not be used (path, error, stage, source); ``manifest``:
    every column of ``manifest.parquet``; ``summary``: ``summary.json`` as a dict; ``report``: the HTML
    report's path (None with ``report=False``); ``output``: the output folder.

    Where :func:`find_duplicates` ran without ``output``, the folder is a temporary one that lives as long
    as this object (:attr:`temporary`); :meth:`save` copies it somewhere lasting.
    """

    clusters: pd.DataFrame
    keep: list[str]
    remove: list[str]
    errors: pd.DataFrame
    manifest: pd.DataFrame
    summary: dict
    report: Path | None
    output: Path
    _tmp: Any = field(default=None, init=False, repr=False, compare=False)  # a TemporaryDirectory: removed with the Result

    def __repr__(self) -> str:
        n_clusters = int(self.clusters["cluster"].nunique()) if len(self.clusters) else 0
        return (f"Result({len(self.clusters)} images in {n_clusters} clusters: keep {len(self.keep)}, remove "
                f"{len(self.remove)}, errors {len(self.errors)}; output={str(self.output)!r}{' (temporary)' if self.temporary else ''})")

    @property
    def temporary(self) -> bool:
        """Whether :attr:`output` is a temporary folder, removed when this Result is."""
        return self._tmp is not None

    @property
    def duplicates(self) -> dict[str, list[str]]:
        """kept path -> the paths removed for it (clusters of two or more), as imagededup's dict."""
        removed = self.clusters[~self.clusters["kept"]]
        return {k: sorted(g["path"]) for k, g in removed.groupby("canonical_path")}

    @classmethod
    def load(cls, output: str | os.PathLike) -> Result:
        """The Result of a finished run in ``output`` (a CLI run's folder too)."""
        import json

        import pandas as pd

        from dedup.layout import OutputLayout

        layout = OutputLayout.of(output)
        if not layout.manifest_parquet.exists():
            raise FileNotFoundError(f"{layout.root} holds no finished run (no {layout.manifest_parquet.name})")
        man = pd.read_parquet(layout.manifest_parquet)
        errors = pd.read_parquet(layout.errors_parquet) if layout.errors_parquet.exists() else pd.DataFrame(columns=["path", "error", "stage", "source"])
        summary = json.loads(layout.summary.read_text()) if layout.summary.exists() else {}
        return cls(clusters=clusters_table(man), keep=_lines(layout.keep), remove=_lines(layout.remove), errors=errors,
                   manifest=man, summary=summary, report=layout.report if layout.report.exists() else None, output=layout.root)

    def save(self, folder: str | os.PathLike) -> Result:
        """Copy the output folder to ``folder`` (which must not exist) and return the Result read from there."""
        import shutil

        shutil.copytree(self.output, folder, ignore=shutil.ignore_patterns("milvus", "milvus-lite.log"))
        return Result.load(folder)


def clusters_table(man: pd.DataFrame) -> pd.DataFrame:
    """The manifest as :attr:`Result.clusters`: path, cluster, kept, similarity, reason, canonical_path."""
    import numpy as np
    import pandas as pd

    kept = man["is_canonical"].astype(bool).to_numpy()
    sim = man["similarity_to_canonical"].astype(float).to_numpy()
    canon = man["canonical_path"].astype(str).to_numpy()
    match = man["match"].astype(str).to_numpy()
    size = man["cluster_size"].to_numpy()
    because = man["kept_because"].fillna("").astype(str).to_numpy()
    ref = man["reference_path"].fillna("").astype(str).to_numpy() if "reference_path" in man else canon
    sim3 = np.floor(sim * 1000) / 1000  # 0.9999 reads 0.999, not 1.000 (that only for byte-identical copies)
    reason = [
        ("unique" if n == 1 else f"kept: {b}" if b else "kept") if k
        else f"byte-identical copy of {c}" if m == "exact"
        else f"copy of reference image {r} (similarity {s:.3f})" if m == "reference"
        else f"near copy of {c} (similarity {s:.3f})"
        for k, n, b, m, c, r, s in zip(kept, size, because, match, canon, ref, sim3)
    ]
    return pd.DataFrame({"path": man["path"].to_numpy(), "cluster": man["cluster_id"].astype(np.int64).to_numpy(), "kept": kept,
                         "similarity": sim, "reason": reason, "canonical_path": canon})


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _config_fields(skip: tuple[str, ...] = ("inputs", "output")) -> list[tuple[str, Any, Any]]:
    """(name, type, default) of every DedupConfig field but ``skip``: the keyword options."""
    from dedup.config import DedupConfig

    hints = typing.get_type_hints(DedupConfig)
    out = []
    for f in dataclasses.fields(DedupConfig):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out.append((f.name, hints[f.name], default))
    return out


def option_names(skip: tuple[str, ...] = ("inputs", "output")) -> list[str]:
    """The keyword options a call takes: DedupConfig's fields but ``skip``."""
    return [name for name, _, _ in _config_fields(skip)]


def check_options(where: str, options: dict[str, Any], skip: tuple[str, ...] = ("inputs", "output")) -> None:
    """An unknown keyword option is a TypeError that lists the valid ones (as Python's own for a function)."""
    valid = option_names(skip)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"{where}() got unexpected keyword argument{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(map(repr, unknown))}; valid options: {', '.join(valid)}")


def make_config(where: str, inputs: list[str], output: str, options: dict[str, Any], **fixed: Any):
    """A :class:`~dedup.config.DedupConfig` from keyword ``options`` (checked: :func:`check_options`)
    and the fields the caller sets itself (``fixed``, which the options may not name)."""
    from dedup.config import DedupConfig

    check_options(where, options, ("inputs", "output", *fixed))
    return DedupConfig(inputs=inputs, output=output, **fixed, **options)


def with_options_signature(fn, fixed: list[inspect.Parameter], skip: tuple[str, ...] = ("inputs", "output")):
    """Give ``fn(..., **options)`` the signature ``help()`` and IDEs show: ``fixed`` then every option as
    a typed keyword-only parameter with its default (DedupConfig's fields, so the two never drift)."""
    params = list(fixed) + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=tp)
                            for name, tp, default in _config_fields(skip)]
    fn.__signature__ = inspect.Signature(params, return_annotation=inspect.signature(fn).return_annotation)
    return fn


def find_duplicates(inputs: str | os.PathLike | list[str | os.PathLike], output: str | os.PathLike | None = None,
                    **options: Any) -> Result:
    """Find duplicate and near-duplicate images in ``inputs`` and return the :class:`Result`.

    ``inputs``: a folder, file or fsspec URI, or a list of them (as ``dedup run --input``; ``.parquet`` and
    ``.tar`` files are shards). ``output``: the output folder (manifest, keep/remove lists, report,
    summary.json, state for re-runs); a second call on the same folder reuses every stage whose inputs
    and parameters did not change (``fresh=True`` recomputes). Without it the run goes to a temporary
    folder that lives as long as the Result (``Result.save`` keeps it).

    Every other keyword is an option of ``dedup run`` in snake_case (``model``, ``threshold``,
    ``max_bits``, ``verify``, ``canonical``, ``input_format``, ``image_column``, ``include``,
    ``exclude``, ``references``, ``milvus_uri``, ``ray_address``, ``report``, ...): see the signature
    and the README's option table. Ray: joins the Ray this process is connected to (``ray.init`` before)
    or ``RAY_ADDRESS``, else starts a local one and stops it at the end. Inputs are never modified.

    Raises ``TypeError`` for an unknown option, :class:`dedup.ConfigError` for a bad value, and the
    errors of :mod:`dedup.errors` (no input, no image, output not writable).
    """
    from dedup.job import run

    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    tmp = tempfile.TemporaryDirectory(prefix="dedup-") if output is None else None
    cfg = make_config("find_duplicates", [os.fspath(i) for i in items], tmp.name if tmp else os.fspath(output), options)
    run(cfg)
    result = Result.load(cfg.output)
    result._tmp = tmp
    return result


with_options_signature(find_duplicates, list(inspect.signature(find_duplicates).parameters.values())[:2])

__all__ = ["find_duplicates", "Result"]
