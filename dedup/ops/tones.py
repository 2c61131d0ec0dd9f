"""Evidence of a tone edit over the whole picture that says which version was made (no Ray;
:mod:`dedup.ops.canonical` calls it): ``equalized``.

Histogram equalization (PIL's ``ImageOps.equalize``, torchvision's ``equalize`` and AutoAugment's, OpenCV's and
albumentations' ``Equalize``) maps each colour channel through its own cumulative histogram, so that every
channel's levels are spread evenly: its percentiles land at the same share of 255. A colour photo's channels
are correlated but not alike, and are hardly ever all spread evenly at once; a grey photo may well have been
equalized before it was published (old scans are), so a grey version is never read as equalized. The model
reads an equalized copy's wider tones and stronger grain as a source's.
"""
from __future__ import annotations

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
