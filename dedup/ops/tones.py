"""Evidence of a tone edit over the whole picture that says which version was made (no Ray;
:mod:`dedup.ops.canonical` calls it): ``equalized`` and ``tone_mapped``.

Histogram equalization (PIL's ``ImageOps.equalize``, torchvision's ``equalize`` and AutoAugment's, OpenCV's and
albumentations' ``Equalize``) maps each colour channel through its own cumulative histogram, so that every
channel's levels are spread evenly: its percentiles land at the same share of 255. A colour photo's channels
are correlated but not alike, and are hardly ever all spread evenly at once; a grey photo may well have been
equalized before it was published (old scans are), so a grey version is never read as equalized. The model
reads an equalized copy's wider tones and stronger grain as a source's.

A tone edit is a map of each grey level of the source to one level of the copy; where it merges levels or folds
back on itself (solarize inverts the levels above a threshold; posterize, clipping and a steep curve merge
levels), a level of the copy comes from several of the source, so the source predicts the copy far better than
the copy predicts the source (``tone_mapped``).
"""
from __future__ import annotations

import math

import numpy as np

from dedup.ops.quality import TONE_LEVELS
from dedup.ops.versions import Version

# A version is equalized where every channel's tone levels (dedup.ops.quality.tone_levels) lie within this
# many grey levels of an even spread, on average over the levels; the other version must lie at least
# NOT_EQUALIZED from it (a mild tone edit of an equalized photo is no evidence either way).
EQUALIZED_WITHIN, NOT_EQUALIZED = 8.0, 16.0
MIN_COLOUR = 2.0  # colourfulness (dedup.ops.quality.colourfulness) under which a version is grey
_EVEN = np.asarray(TONE_LEVELS, np.float32) * 2.55  # where an evenly spread channel's percentiles lie


def _equalized(x: Version, y: Version) -> int:
    """+1 where ``y`` is an equalized copy of ``x`` (its colour channels each spread evenly over the levels,
    ``x``'s far from it), -1 the other way round, else 0."""
    dx, dy = _uneven(x), _uneven(y)
    if dx is None or dy is None:  # a grey version: neither the equalized one's source nor told apart from it
        return 0
    if dy <= EQUALIZED_WITHIN and dx >= NOT_EQUALIZED:
        return 1
    if dx <= EQUALIZED_WITHIN and dy >= NOT_EQUALIZED:
        return -1
    return 0


def _uneven(v: Version) -> float | None:
    """How far ``v``'s least evenly spread colour channel lies from an even spread: the mean distance of its
    tone levels from :data:`_EVEN`, in grey levels; None for a grey version or one without tones."""
    if v.tone is None or v.f.get("colourfulness", 0.0) < MIN_COLOUR:
        return None
    levels = np.asarray(v.tone, np.float32).reshape(len(TONE_LEVELS), 3)
    return float(np.abs(levels - _EVEN[:, None]).mean(axis=0).max())


# tone_mapped: the log ratio of the two ways' spreads (each the share of a version's grey-level spread its partner's
# levels leave unexplained, :func:`_spread_given`) must be at least MAPPED_RATIO, the better way leave at most
# MAPPED_SPREAD (the two are aligned and one is a tone map of the other), and each quarter of the picture say the
# same by at least MAPPED_QUARTER (an edit over the whole picture: a caption or a sticker differs in one place).
MAPPED_RATIO, MAPPED_SPREAD, MAPPED_QUARTER = 0.8, 0.3, 0.2
MIN_SIDE = 16  # px: each quarter of a smaller view holds too few pixels for a histogram of 32 bins


def _tone_mapped(x: Version, y: Version) -> int:
    """+1 where ``y`` is a tone map of ``x`` that merges or folds ``x``'s levels (``x``'s grey view predicts
    ``y``'s far better than the reverse, over the whole picture), -1 the other way round, else 0. Views of other
    sizes are not aligned, a view under ``MIN_SIDE`` px has too few pixels to read: 0."""
    if x.view is None or y.view is None or x.view.shape != y.view.shape or min(x.view.shape) < MIN_SIDE:
        return 0
    r, better = _predicts(x.view, y.view)
    if abs(r) < MAPPED_RATIO or better > MAPPED_SPREAD:
        return 0
    h, w = x.view.shape
    for rows in (slice(0, h // 2), slice(h // 2, h)):
        for cols in (slice(0, w // 2), slice(w // 2, w)):
            if _predicts(x.view[rows, cols], y.view[rows, cols])[0] * np.sign(r) < MAPPED_QUARTER:
                return 0
    return 1 if r > 0 else -1


def _predicts(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(log of how much better ``a``'s grey levels predict ``b``'s than the reverse, the better way's spread)."""
    a_given_b, b_given_a = _spread_given(b, a), _spread_given(a, b)
    return math.log((a_given_b + 0.01) / (b_given_a + 0.01)), min(a_given_b, b_given_a)


def _spread_given(a: np.ndarray, b: np.ndarray, bins: int = 32) -> float:
    """The standard deviation of ``b``'s grey levels within ``a``'s ``bins`` bins (those of 20 pixels or more),
    pooled, over ``b``'s own: 0 where ``a`` determines ``b``, about 1 where it says nothing of it."""
    k = a.ravel().astype(np.int64) * bins // 256
    v = b.ravel().astype(np.float64)
    n, s1, s2 = np.bincount(k, minlength=bins), np.bincount(k, v, bins), np.bincount(k, v * v, bins)
    ok = n >= 20
    within = float((s2[ok] - s1[ok] ** 2 / n[ok]).sum() / max(int(n[ok].sum()), 1))
    return math.sqrt(max(within, 0.0)) / max(float(v.std()), 1e-6)
