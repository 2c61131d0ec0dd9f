"""The content check (no Ray; stage `verify`, :mod:`dedup.stages.verify`, runs it on Ray tasks): do two
images share content?

Why. A global cosine threshold cannot separate hard copies from hard non-copies: a heavy crop or a tilted
copy can score lower than two different halves of one photo of a symmetric object. Copy detection settles
such pairs by checking that the two images share content: local features matched under one geometric
transform. Here (:func:`check_pair`): OpenCV's ORB, :attr:`VerifyParams.features` keypoints on the image
in grey with its longer side scaled to :attr:`VerifyParams.size` px (also on its mirror image), Lowe's
ratio test, then RANSAC for a similarity transform (rotation, uniform scale, shift). A pair passes with
at least ``min_inliers`` inliers (``min_inliers_mirrored`` when only the mirrored image matches: symmetric
objects match their own mirror image, so it needs more evidence), a transform whose scale lies within
``max_scale`` either way (a degenerate transform that maps every inlier near one point is not a copy), and
containment (:func:`containment`): a copy is derived from the other image, so under that transform one of
the two lies (almost) wholly inside the other; two framings of one scene that share a strip do not; and
pixel agreement (:func:`agreement`): moved onto each other by that transform, the two images correlate
(a repeated print matches itself shifted by one repeat, two halves of a symmetric scene match as mirror
images, and the rest of the picture then disagrees). Images smaller than ``size`` are enlarged to it
(ORB finds almost no keypoints on a thumbnail).
The choices and what each measured are in the README ("Verifying ambiguous pairs").

:func:`plan_tasks` splits a set of edges into connected groups, so that each task reads and describes an
image once (:func:`check_edges` caches the features per image); :func:`apply` puts the results on the
edges.
"""
from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

VERIFIED, REJECTED, NOT_NEEDED = 1, 0, -1
VERIFY_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("sim", pa.float32()), ("verified", pa.int8()),
                           ("inliers", pa.int32()), ("mirrored", pa.bool_())])
CHECKED_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("ok", pa.bool_()), ("inliers", pa.int32()),
                            ("mirrored", pa.bool_()), ("scale", pa.float32()), ("error", pa.string())])


@dataclass(frozen=True)
class VerifyParams:
    """How a pair is checked (all of it goes into the cache key of ``verify.parquet``)."""

    detector: str = "orb"  # orb | akaze | sift (OpenCV); see the README for what each measured
    size: int = 400  # longer side of the grey image the keypoints are found on, px
    features: int = 1000  # keypoints per image (orb, sift; akaze finds its own number)
    ratio: float = 0.8  # Lowe's ratio test on the two nearest descriptors
    reproj_px: float = 5.0  # RANSAC inlier distance, px at ``size``
    min_inliers: int = 15
    min_inliers_mirrored: int = 25
    # the images moved onto each other by the matched transform must agree pixel by pixel (:func:`agreement`)
    # at least this well; a match found only on the mirror image, better (symmetric scenes match their mirror)
    min_agreement: float = 0.2
    min_mirrored_agreement: float = 0.9
    max_scale: float = 4.0  # the transform's scale must lie in [1/max_scale, max_scale]
    # A copy is derived from the other image, so one of the two lies (almost) wholly inside the other under
    # the transform that matches them: at least this share of one image's frame must land in the other's.
    min_containment: float = 0.9
    mirror: bool = True  # also match against the mirror image
    enlarge: bool = True  # a smaller image is enlarged to ``size`` too
    version: int = 2  # bump when the check changes for the same parameters

    def key(self) -> str:
        import hashlib
        import json

        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


# ---- the check itself (no Ray): features of one image, one pair ----------------------------------------


def grey_view(data: bytes, size: int, enlarge: bool = True) -> np.ndarray:
    """The image upright, in grey, its longer side scaled to ``size`` px (uint8 H x W); a smaller image
    keeps its size when not ``enlarge``."""
    from PIL import Image

    from dedup.ops.decode import load_rgb

    img = load_rgb(Image.open(io.BytesIO(data)), size, grey=True)
    scale = size / max(img.size)
    if scale < 1 or (scale > 1 and enlarge):  # ORB finds few keypoints on a thumbnail: enlarged
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BILINEAR if scale < 1 else Image.Resampling.BICUBIC)
    return np.asarray(img, np.uint8)


def _detector(params: VerifyParams):
    import cv2

    if params.detector == "orb":
        return cv2.ORB_create(nfeatures=params.features)
    if params.detector == "akaze":
        return cv2.AKAZE_create()
    if params.detector == "sift":
        return cv2.SIFT_create(nfeatures=params.features)
    raise ValueError(f"unknown detector {params.detector!r}")


class Features:
    """Keypoints and descriptors of an image, and of its mirror image."""

    def __init__(self, grey: np.ndarray, params: VerifyParams):
        det = _detector(params)
        self.shape = grey.shape
        self.grey = grey
        self.plain = self._describe(det, grey)
        self.mirrored = self._describe(det, np.ascontiguousarray(grey[:, ::-1])) if params.mirror else None

    @staticmethod
    def _describe(orb, grey: np.ndarray):
        kp, des = orb.detectAndCompute(grey, None)
        pts = np.float32([k.pt for k in kp]).reshape(-1, 2)
        return pts, des


def containment(shape_a: tuple, shape_b: tuple, transform: np.ndarray) -> float:
    """The larger of: the share of image A's frame that ``transform`` (A -> B) maps inside B's frame, and
    the share of B's frame covered by it (B inside A). 1.0 when one image lies wholly within the other."""
    import cv2

    (ha, wa), (hb, wb) = shape_a[:2], shape_b[:2]
    corners = np.float32([[0, 0], [wa, 0], [wa, ha], [0, ha]])
    mapped = (corners @ transform[:, :2].T + transform[:, 2]).astype(np.float32)
    frame_b = np.float32([[0, 0], [wb, 0], [wb, hb], [0, hb]])
    inter, _ = cv2.intersectConvexConvex(cv2.convexHull(mapped), frame_b)
    area_a = abs(np.linalg.det(transform[:, :2])) * wa * ha
    return float(max(inter / area_a if area_a > 0 else 0.0, inter / (wb * hb)))


def _match(a, b, params: VerifyParams, shapes: tuple | None = None) -> tuple[int, float, float, np.ndarray | None]:
    """(inliers, transform scale, containment, the transform) of the best similarity transform from ``a``'s
    keypoints to ``b``'s (``shapes``: the two images' shapes, for :func:`containment`; 1.0 without)."""
    import cv2

    (pa_, da), (pb, db) = a, b
    if da is None or db is None or len(da) < 2 or len(db) < 2:
        return 0, 0.0, 0.0, None
    pairs = cv2.BFMatcher(cv2.NORM_L2 if params.detector == "sift" else cv2.NORM_HAMMING).knnMatch(da, db, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < params.ratio * m[1].distance]
    if len(good) < 4:
        return 0, 0.0, 0.0, None
    src = pa_[[m.queryIdx for m in good]]
    dst = pb[[m.trainIdx for m in good]]
    cv2.setRNGSeed(0)  # RANSAC's samples: the same answer for a pair whichever worker checks it, after whatever
    transform, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=params.reproj_px,
                                                     maxIters=2000, confidence=0.99)
    if transform is None:
        return 0, 0.0, 0.0, None
    scale = float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
    return int(inliers.sum()), scale, containment(*shapes, transform) if shapes else 1.0, transform


def agreement(a: np.ndarray, b: np.ndarray, transform: np.ndarray, blur: float = 2.0) -> float:
    """How well grey image ``b``, moved into ``a``'s frame by ``transform`` (a -> b), agrees with ``a``
    pixel by pixel: the correlation of the two (each slightly blurred) over the part of ``a`` that ``b``
    covers; 0.0 where they overlap in under 100 pixels."""
    import cv2

    h, w = a.shape
    back = cv2.invertAffineTransform(transform)
    moved = cv2.warpAffine(b.astype(np.float32), back, (w, h), flags=cv2.INTER_LINEAR)
    covered = cv2.warpAffine(np.ones(b.shape, np.uint8), back, (w, h), flags=cv2.INTER_NEAREST) > 0
    if covered.sum() < 100:
        return 0.0
    x = cv2.GaussianBlur(a.astype(np.float32), (0, 0), blur)[covered]
    y = cv2.GaussianBlur(moved, (0, 0), blur)[covered]
    if x.std() < 1e-3 or y.std() < 1e-3:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def check_pair(fa: Features, fb: Features, params: VerifyParams) -> tuple[bool, int, bool, float]:
    """(shares content, inliers, mirrored, scale) for two images' features (see the module docstring)."""
    def plausible(scale: float, contained: float) -> bool:
        return 1.0 / params.max_scale <= scale <= params.max_scale and contained >= params.min_containment

    shapes = (fa.shape, fb.shape)
    n, scale, contained, moved = _match(fa.plain, fb.plain, params, shapes)
    if n >= params.min_inliers and plausible(scale, contained):
        # a repeated motif (a print, tiles) matches itself shifted; the rest of the picture then disagrees
        return agreement(fa.grey, fb.grey, moved) >= params.min_agreement, n, False, scale
    if fb.mirrored is not None:
        m, mscale, mcontained, moved = _match(fa.plain, fb.mirrored, params, shapes)
        if m >= params.min_inliers_mirrored and plausible(mscale, mcontained):
            # a mirror copy is the other's pixels mirrored; a symmetric scene matches its mirror image only
            # where it is symmetric (the two halves of a railing)
            ok = agreement(fa.grey, np.ascontiguousarray(fb.grey[:, ::-1]), moved) >= params.min_mirrored_agreement
            return ok, m, True, mscale
        if m > n:
            return False, m, True, mscale
    return False, n, False, scale


# ---- planning and running the checks on Ray -----------------------------------------------------------


def plan_tasks(a: np.ndarray, b: np.ndarray, edges_per_task: int) -> list[np.ndarray]:
    """Edge indices per task: whole connected components packed together up to ``edges_per_task`` edges,
    so that an image's features are computed in one task; a larger component is cut into pieces."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(a) == 0:
        return []
    ids, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = inv[: len(a)], inv[len(a):]
    graph = coo_matrix((np.ones(len(a), np.int8), (ia, ib)), shape=(len(ids), len(ids)))
    _, label = connected_components(graph, directed=False)
    comp = label[ia]
    order = np.argsort(comp, kind="stable")
    sizes = np.bincount(comp)
    tasks, current, filled = [], [], 0
    start = 0
    for c in np.unique(comp[order]):
        idx = order[start : start + sizes[c]]
        start += sizes[c]
        if sizes[c] > edges_per_task:  # a big component: its own tasks, edges grouped by their first image
            idx = idx[np.argsort(a[idx], kind="stable")]
            tasks += [idx[i : i + edges_per_task] for i in range(0, len(idx), edges_per_task)]
            continue
        if filled + sizes[c] > edges_per_task and current:
            tasks.append(np.concatenate(current))
            current, filled = [], 0
        current.append(idx)
        filled += sizes[c]
    if current:
        tasks.append(np.concatenate(current))
    return tasks


def check_edges(a: np.ndarray, b: np.ndarray, where: dict[int, tuple[str, str, str]], params: VerifyParams,
                image_column: str | None = None, max_pixels: int = 100_000_000) -> dict:
    """Check the pairs (a[i], b[i]) in one process: each image read, decoded and described once.

    ``where``: vid -> (kind, unit, item path) of its representative. An image that cannot be read or
    decoded fails every pair it is in (``error`` says why): the edge is rejected, never kept unchecked.
    """
    from dedup.sources import read_vids

    t0 = time.perf_counter()
    vids = np.unique(np.concatenate([a, b]))
    feats: dict[int, Features | str] = {}
    for v, data, error in read_vids({int(v): where[int(v)] for v in vids}, image_column):
        try:
            if error is not None:
                raise ValueError(error)
            feats[v] = Features(grey_view(data, params.size, params.enlarge), params)
        except Exception as e:  # noqa: BLE001 - one bad image fails its pairs, never the job
            feats[v] = f"{type(e).__name__}: {e}"
    out = {k: [] for k in ("ok", "inliers", "mirrored", "scale", "error")}
    for x, y in zip(a.tolist(), b.tolist()):
        fx, fy = feats.get(x, "not read"), feats.get(y, "not read")
        if isinstance(fx, str) or isinstance(fy, str):
            res, err = (False, -1, False, 0.0), fx if isinstance(fx, str) else fy
        else:
            res, err = check_pair(fx, fy, params), None
        for k, v in zip(("ok", "inliers", "mirrored", "scale", "error"), (*res, err)):
            out[k].append(v)
    return {"a": np.asarray(a, np.int64), "b": np.asarray(b, np.int64), "ok": np.asarray(out["ok"], bool),
            "inliers": np.asarray(out["inliers"], np.int32), "mirrored": np.asarray(out["mirrored"], bool),
            "scale": np.asarray(out["scale"], np.float32), "error": np.asarray(out["error"], object),
            "images_decoded": len(feats), "seconds": time.perf_counter() - t0}


def apply(edges: pa.Table, checked: pd.DataFrame, lo: float, hi: float | None) -> pa.Table:
    """The edges with ``verified``/``inliers``/``mirrored`` from ``checked`` (pairs at or above ``hi`` are
    NOT_NEEDED; ``hi`` None: every edge was to be checked)."""
    a, b, sim = (edges.column(c).to_numpy() for c in ("a", "b", "sim"))
    n = int(max(a.max(initial=0), b.max(initial=0))) + 1
    in_band = (sim >= lo) & (sim < hi) if hi is not None else np.ones(len(a), bool)
    verified = np.full(len(a), NOT_NEEDED, np.int8)
    inliers = np.full(len(a), -1, np.int32)
    mirrored = np.zeros(len(a), bool)
    if in_band.any():
        key = checked["a"].to_numpy(np.int64) * n + checked["b"].to_numpy(np.int64)
        order = np.argsort(key)
        want = a[in_band] * n + b[in_band]
        pos = order[np.searchsorted(key[order], want)]
        if not np.array_equal(key[pos], want):
            raise AssertionError("an edge in the verify band was not checked")
        verified[in_band] = np.where(checked["ok"].to_numpy()[pos], VERIFIED, REJECTED)
        inliers[in_band] = checked["inliers"].to_numpy()[pos]
        mirrored[in_band] = checked["mirrored"].to_numpy()[pos]
    return pa.table({"a": a, "b": b, "sim": sim, "verified": verified, "inliers": inliers, "mirrored": mirrored}, schema=VERIFY_SCHEMA)


__all__ = ["VerifyParams", "check_pair", "check_edges", "plan_tasks", "apply", "containment", "Features", "grey_view",
           "VERIFIED", "REJECTED", "NOT_NEEDED"]
