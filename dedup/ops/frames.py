"""One frame, no keypoints (no Ray; :func:`dedup.ops.verify.check` tries these): two images of one aspect ratio
whose pixels agree as they are, under the identity, are matched without describing either. :func:`_identity`
first (a re-save, a tone edit, a downscale: the finest detail lies in the same places), :func:`_blurred` last
(a blurred copy, where the keypoints matched too few: the coarser bands agree). Each returns
:func:`~dedup.ops.verify.check`'s result (inliers 0, the identity recorded) or None."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dedup.ops.agreement import _agrees, band_agreement, detail_correlation

if TYPE_CHECKING:
    from dedup.ops.features import Features
    from dedup.ops.verify import VerifyParams


def _identity(fa: Features, fb: Features, params: VerifyParams) -> tuple | None:
    """:func:`~dedup.ops.verify.check`'s result for two images of one frame that pass as they are (no keypoints), or
    None (the keypoints decide): the same aspect ratio (within 1 %), the band-passed detail correlating at
    :attr:`~dedup.ops.verify.VerifyParams.identity_detail` or better on the coarse views (where there are: cheap,
    and most pairs of one shape that are not one picture stop there) and at full size, and the pixels agreeing under
    the identity as :func:`_agrees` asks of any match. Inliers 0: none were matched; the transform, the identity."""
    if not _one_aspect(fa, fb):
        return None

    def views():  # made when asked for: most pairs of one shape that are not one picture stop at the coarse ones
        if fa.coarse is not None and fb.coarse is not None:
            yield fa.coarse.view, fb.coarse.view
        yield fa.view, fb.view

    if any(detail_correlation(va, vb) < params.identity_detail for va, vb in views()):
        return None
    (ha, wa), (hb, wb) = fa.shape[:2], fb.shape[:2]
    ok, grid = _agrees(fa, fb, np.diag([wb / wa, hb / ha, 1.0]), params, False)
    return _as_they_are(fa, fb, grid) if ok else None


def _one_aspect(fa: Features, fb: Features, tol: float = 0.01) -> bool:
    (ha, wa), (hb, wb) = fa.shape[:2], fb.shape[:2]
    return abs(wa * hb - wb * ha) <= tol * max(wa * hb, wb * ha)


def _blurred(fa: Features, fb: Features, params: VerifyParams) -> tuple | None:
    """:func:`~dedup.ops.verify.check`'s result for a blurred copy, or None: ORB finds few keypoints on it and its
    finest detail is gone (:func:`_identity` asks for it), but under the identity the coarser bands agree
    (:func:`band_agreement`, :attr:`~dedup.ops.verify.VerifyParams.blurred`). Only for a pair the keypoints matched
    with too few inliers either way (two framings of one scene, a burst, are matched by theirs and decided by their
    pixels)."""
    if not _one_aspect(fa, fb):
        return None
    coarse, cells = band_agreement(fa.view, fb.view, 3.0, params.local_window, params.local_corr)
    if coarse < params.blurred or cells > params.blurred_cells:
        return None
    if band_agreement(fa.view, fb.view, 1.5, local=False)[0] < params.blurred - 0.1:
        return None
    return _as_they_are(fa, fb, 0)


def _as_they_are(fa: Features, fb: Features, grid: int) -> tuple:
    """:func:`~dedup.ops.verify.check`'s result for a pair matched under the identity: passed, no inliers (none
    were matched), not mirrored, the scale between the two frames, ``grid``, the identity."""
    (ha, wa), (hb, wb) = fa.shape[:2], fb.shape[:2]
    return True, 0, False, float(np.sqrt(wb * hb / (wa * ha))), grid, np.eye(3)
