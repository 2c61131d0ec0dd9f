"""A candidate version of an image, as the kept-image rules see it (:class:`Version`), and what several rules
share: derived arrays kept on the version once (:func:`_memo`), and whether two versions hold the same pixels in
the same places (:func:`aligned`). No Ray; :mod:`dedup.ops.canonical` compares versions."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dedup.ops.quality import Lattice


# ---- the quality policy: every two candidates compared, rule by rule ----------------------------------


@dataclass
class Version:
    """One candidate: its :data:`dedup.ops.quality.FIELDS`, its ``rank`` in the ``largest`` order (the
    tie-break), its grey view and grey detail view (for the checks that compare two images pixel by
    pixel), its tone levels and its JPEG lattice, or, not a JPEG, its luma on a JPEG's square
    (:mod:`dedup.ops.quality`). :func:`choose` adds its
    ``spread`` to ``f`` where the cluster holds three or more distinct versions (:func:`set_spread`)."""

    f: dict
    rank: int
    view: np.ndarray | None = None
    detail: np.ndarray | None = None
    tone: np.ndarray | None = None
    lattice: Lattice | None = None
    luma: np.ndarray | None = None  # a file that is not a JPEG: its luma on a JPEG's square (quality.square_luma)
    energy: float | None = None  # its detail view's edge energy (:func:`edge_energy`), once asked for
    reg: list | None = None  # its registration view and keypoints (:func:`dedup.ops.lineage.reg_view`), once asked for
    vid: int = -1  # which image it is (the keys of ``links``)
    links: dict = field(default_factory=dict)  # vid -> the content check's transform from this frame to that one's (unit)
    box: tuple | None = None  # the picture found inside it (stage `inner`): left, top, right, bottom, unit coordinates
    memo: dict = field(default_factory=dict, repr=False)  # arrays derived from it, once asked for (:func:`_memo`)


def _memo(v: Version, key, make: Callable[[], object]):
    """``make()`` kept on ``v`` under ``key``: what the pairwise rules derive from one version (a standardised
    view, a Laplacian, a DCT) is computed once per version, not once per pair."""
    if key not in v.memo:
        v.memo[key] = make()
    return v.memo[key]


def _pair_memo(x: Version, y: Version, key, make: Callable[[], object]):
    """``make()`` kept on ``x`` for the pair (``x``, ``y``): two rules that ask the same of one pair
    (:func:`_region`) compute it once."""
    kept = x.memo.setdefault(key, {})
    if id(y) not in kept or kept[id(y)][0] is not y:
        kept[id(y)] = (y, make())
    return kept[id(y)][1]


def _more(a: float, b: float, factor: float) -> int:
    """+1 if a > b * factor, -1 if b > a * factor, else 0 (no clear difference)."""
    return 1 if a > b * factor else (-1 if b > a * factor else 0)


def aligned(x: Version, y: Version, max_median: float = 0.3) -> bool:
    """The two views show the same pixels in the same places (tone or colour edits, re-encodes, overlays,
    small rotations): same size, and their grey levels, each standardised, differ by less than
    ``max_median`` standard deviations at the median pixel (an overlay changes only its own pixels; a crop
    or a mirror image moves all of them: about 0.5-0.9)."""
    if x.view is None or y.view is None or x.view.shape != y.view.shape or x.view.size < 64:
        return False
    za, zb = _standard_view(x), _standard_view(y)
    if za is None or zb is None:
        return False
    return median_below(np.abs(za - zb), max_median)


def median_below(values: np.ndarray, limit: float) -> bool:
    """``float(np.median(values)) < limit`` (float32 ``values``, no NaN), from how many values are below
    ``limit`` instead of a partial sort; only where the two middle values fall either side of it is their
    mean taken, as numpy's median takes it."""
    n, below = values.size, int(np.count_nonzero(values < limit))
    if n % 2:
        return below >= (n + 1) // 2
    if below != n // 2:
        return below > n // 2
    middle = np.array([values[values < limit].max(), values[values >= limit].min()], values.dtype)
    return float(np.mean(middle)) < limit


def _standard_view(v: Version) -> np.ndarray | None:
    """``v``'s view, flattened and standardised (float32); None for a flat one (standard deviation under 1)."""
    def make():
        a = v.view.astype(np.float32).ravel()
        return None if a.std() < 1 else (a - a.mean()) / a.std()
    return _memo(v, "standard_view", make)
