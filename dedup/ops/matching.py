"""How the content check matches two images (no Ray; :mod:`dedup.ops.verify`): descriptors matched with Lowe's
ratio test, RANSAC for a similarity transform or a homography, and the transform recorded for a pair that
passed (:func:`_precise`)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dedup.ops.agreement import _as3
from dedup.ops.features import Features, containment

if TYPE_CHECKING:
    from dedup.ops.verify import VerifyParams


def ratio_matches(query: np.ndarray, train: np.ndarray, ratio: float, binary: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(query indices, train indices) of the descriptor matches that pass Lowe's ratio test: each query
    descriptor's two nearest in ``train`` (Hamming for ``binary`` descriptors, else L2), as arrays: what
    BFMatcher.knnMatch(k=2) computes, without a Python object per match. Binary descriptors are searched
    with faiss's exact Hamming search (its popcount kernels for whole codes; OpenCV's batchDistance calls a
    distance function per pair): the same two distances per query, hence the same matches (where the two
    nearest tie the test fails either way, whichever index comes first)."""
    if binary:
        dist, nearest = _hamming_two_nearest(query, train)
    else:
        import cv2

        dist, nearest = cv2.batchDistance(query, train, cv2.CV_32F, normType=cv2.NORM_L2, K=2)
    good = np.flatnonzero((nearest[:, 1] >= 0) & (dist[:, 0] < ratio * dist[:, 1]))
    return good, nearest[good, 0]


def single_threaded() -> None:
    """OpenCV and faiss on one thread each: a Ray task holds one CPU, and their own thread pools would only
    compete with the other tasks (and their spinning counts as the task's CPU time)."""
    import cv2
    import faiss

    cv2.setNumThreads(1)
    faiss.omp_set_num_threads(1)


def _hamming_two_nearest(query: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices) of each query code's two nearest codes in ``train`` (uint8 rows of bits); -1
    where ``train`` has fewer than two."""
    import faiss

    index = faiss.IndexBinaryFlat(train.shape[1] * 8)
    index.add(np.ascontiguousarray(train, np.uint8))
    return index.search(np.ascontiguousarray(query, np.uint8), 2)


def _good_matches(a, b, params: VerifyParams):
    (pa_, da), (pb, db) = a, b
    if da is None or db is None or len(da) < 2 or len(db) < 2:
        return None
    qi, ti = ratio_matches(da, db, params.ratio, binary=params.detector != "sift")
    if len(qi) < 4:
        return None
    return pa_[qi], pb[ti]


def _scale(transform: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(transform[:2, :2]))))


def _match(a, b, params: VerifyParams, shapes: tuple | None = None, found=False) -> tuple[int, float, float, np.ndarray | None]:
    """(inliers, transform scale, containment, the transform) of the best similarity transform from ``a``'s
    keypoints to ``b``'s (``shapes``: the two images' Features or shapes, for :func:`containment`; 1.0
    without; ``found``: their matches, when :func:`_good_matches` already ran)."""
    import cv2

    found = _good_matches(a, b, params) if found is False else found
    if found is None:
        return 0, 0.0, 0.0, None
    cv2.setRNGSeed(0)  # RANSAC's samples: the same answer for a pair whichever worker checks it, after whatever
    transform, inliers = cv2.estimateAffinePartial2D(*found, method=cv2.RANSAC, ransacReprojThreshold=params.reproj_px,
                                                     maxIters=2000, confidence=0.99)
    if transform is None:
        return 0, 0.0, 0.0, None
    return int(inliers.sum()), _scale(transform), containment(*shapes, transform) if shapes else 1.0, transform


def _tighter(found, transform: np.ndarray, min_inliers: int, px: float = 1.5) -> np.ndarray:
    """The similarity transform fitted again to the matches ``found`` with RANSAC within ``px`` (where it keeps
    ``min_inliers``; else ``transform``): the first fit's ``reproj_px`` lets a scale a few per cent off the
    identity hold every match of a shared frame."""
    import cv2

    cv2.setRNGSeed(0)
    tight, inliers = cv2.estimateAffinePartial2D(*found, method=cv2.RANSAC, ransacReprojThreshold=px, maxIters=2000,
                                                 confidence=0.99)
    return tight if tight is not None and int(inliers.sum()) >= min_inliers else transform


def _homography(found, params: VerifyParams, shapes: tuple) -> tuple[int, float, float, np.ndarray | None]:
    """As :func:`_match`, for a homography (a perspective warp, a changed aspect ratio) on the matches
    ``found``; no transform where it folds, or stretches one axis over ``max_anisotropy`` times the other."""
    import cv2

    if found is None or len(found[0]) < params.min_inliers_homography:
        return 0, 0.0, 0.0, None
    cv2.setRNGSeed(0)
    h, inliers = cv2.findHomography(*found, cv2.RANSAC, params.reproj_px, maxIters=2000, confidence=0.99)
    if h is None or abs(h[2, 2]) < 1e-9:
        return 0, 0.0, 0.0, None
    h = h / h[2, 2]
    sv = np.linalg.svd(h[:2, :2], compute_uv=False)
    ha, wa = shapes[0].shape[:2] if isinstance(shapes[0], Features) else shapes[0][:2]
    corners = np.float64([[0, 0, 1], [wa, 0, 1], [wa, ha, 1], [0, ha, 1]]).T
    mapped = h @ corners
    if sv[1] <= 0 or sv[0] / sv[1] > params.max_anisotropy or np.any(mapped[2] <= 0):
        return 0, 0.0, 0.0, None
    quad = mapped[:2] / mapped[2]
    if not cv2.isContourConvex(quad.T.astype(np.float32).reshape(-1, 1, 2)):
        return 0, 0.0, 0.0, None
    return int(inliers.sum()), _scale(h), containment(*shapes, h), h


def _precise(found, n: int, transform: np.ndarray, params: VerifyParams) -> np.ndarray:
    """The transform to record for a pair that passed with the similarity ``transform`` (``n`` inliers of
    the matches ``found``): a homography fitted by least squares to the matches within ``reproj_px`` of it,
    refitted once to those within ``reproj_px`` of the homography, where it keeps as many and fits them in
    under :data:`_SHARPER` of the similarity's error (a perspective warp, a changed aspect ratio: the
    kept-image stage finds such a copy's frame with it); else ``transform``. No RANSAC: the similarity's
    inliers are the sample; a few hundred points, well under a millisecond."""
    import cv2

    if found is None or n < params.min_inliers_homography:
        return transform
    src, dst = (np.asarray(p, np.float64).reshape(-1, 2) for p in found)
    sim = _as3(np.asarray(transform, np.float64))
    err_sim = _residuals(sim, src, dst)
    keep = err_sim < params.reproj_px
    h = None
    for _ in range(2):
        if keep.sum() < params.min_inliers_homography:
            return transform
        h, _ = cv2.findHomography(src[keep], dst[keep], 0)
        if h is None or abs(h[2, 2]) < 1e-9:
            return transform
        h = h / h[2, 2]
        err = _residuals(h, src, dst)
        keep = err < params.reproj_px
    if keep.sum() < n or err[keep].mean() >= _SHARPER * err_sim[err_sim < params.reproj_px].mean():
        return transform
    sv = np.linalg.svd(h[:2, :2], compute_uv=False)
    return h if sv[1] > 0 and sv[0] / sv[1] <= params.max_anisotropy and np.linalg.det(h[:2, :2]) > 0 else transform


_SHARPER = 0.7  # a homography is recorded where it fits the matches in under this share of the similarity's error


def _residuals(t: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """How far (px) ``t`` puts each of ``src`` from its ``dst``."""
    m = np.c_[src, np.ones(len(src))] @ t.T
    z = np.where(np.abs(m[:, 2]) < 1e-9, 1e-9, m[:, 2])
    return np.hypot(m[:, 0] / z - dst[:, 0], m[:, 1] / z - dst[:, 1])
