"""The content check (no Ray; stage `verify`, :mod:`dedup.stages.verify`, runs it on Ray tasks): do two
images share content?

Why. A global cosine threshold cannot separate hard copies from hard non-copies: a heavy crop or a tilted
copy can score lower than two different halves of one photo of a symmetric object, and two different photos
in one screenshot template score higher than a photo and its screenshot. Copy detection settles such pairs
by checking that the two images share content: local features matched under one geometric transform, and
the pixels that transform moves onto each other agreeing.

How (:func:`check`): two images of one frame whose detail lies in the same places (a re-save, a tone
edit, a downscale) are matched by the identity, no keypoints needed; others by OpenCV's ORB keypoints on the
image in grey, matched with Lowe's ratio test, RANSAC for a similarity transform (rotation, uniform scale,
shift); coarse to fine: first on a 256 px view with 500 keypoints, and only where that does not pass at
400 px with 1000, then a homography (perspective, a changed aspect ratio), then the mirror image. A match
is plausible with ``min_inliers`` inliers (more for the mirror image and the homography), a scale within ``max_scale`` either way, and containment
(:func:`containment`): a copy is derived from the other image, so one image's content (its frame less a
uniform fill from a corner: pads, a rotation's corners, :func:`content_mask`) lies (almost) wholly inside
the other's frame; two framings that share a strip do not. It passes where the pixels agree
(:func:`agreements`): as a whole (a repeated print matches itself shifted; two halves of a symmetric scene
match as mirror images, and the rest then disagrees) and locally, over the detailed area the two overlap
in (two photos under one meme card or one watermark agree only in the card). Pairs that match only a frame
recurring across the corpus (an app's screenshot, a canvas) are found over all the pairs together
(:func:`~dedup.ops.templates.templates`). Images smaller than ``size`` are enlarged to it (ORB finds almost
no keypoints on a thumbnail). The choices and what each measured: ``docs/how-it-decides.md`` ("Verifying
ambiguous pairs").

What an image gives the check is in :mod:`dedup.ops.features`, the matching in :mod:`dedup.ops.matching`,
the pixels' agreement in :mod:`dedup.ops.agreement`, the templates in :mod:`dedup.ops.templates`, the
matches without keypoints (one frame, a blurred copy) in :mod:`dedup.ops.frames`; here: the
parameters, the order of the tries, the transform recorded, and running it over many pairs.

:func:`plan_tasks` splits a set of edges into connected groups, so that each task reads and describes an
image once (:func:`check_edges` caches the features per image); :func:`apply` puts the results on the
edges.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from dedup.ops.agreement import _agrees, _as3, _rescaled, agreements, same_frame
from dedup.ops.features import Features, containment, grey_view, picture_view
from dedup.ops.frames import _blurred, _identity
from dedup.ops.matching import _good_matches, _homography, _match, _precise, _tighter, ratio_matches
from dedup.ops.templates import templates

VERIFIED, REJECTED, NOT_NEEDED = 1, 0, -1
# ``transform``: for a pair that passed, the transform that matched it, a -> b in unit coordinates of the two
# upright frames, row-major 3 x 3 (:func:`unit_transform`); the kept-image stage registers the pair with it
TRANSFORM = pa.list_(pa.float32(), 9)
VERIFY_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("sim", pa.float32()), ("verified", pa.int8()),
                           ("inliers", pa.int32()), ("mirrored", pa.bool_()), ("transform", TRANSFORM)])
CHECKED_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("ok", pa.bool_()), ("inliers", pa.int32()),
                            ("mirrored", pa.bool_()), ("scale", pa.float32()), ("grid", pa.int64()), ("error", pa.string()),
                            ("transform", TRANSFORM)])


@dataclass(frozen=True)
class VerifyParams:
    """How a pair is checked (all of it goes into the cache key of ``verify.parquet``)."""

    detector: str = "orb"  # orb | akaze | sift (OpenCV); docs/how-it-decides.md says what each measured
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
    # Shared frame is not shared content (:func:`local_agreement`): of the textured area the two images
    # overlap in, at least this share must agree locally (windows of ``local_window`` px correlating at
    # ``local_corr`` or better). Two different photos in one screenshot template, under one meme caption or
    # one watermark agree only in the template.
    min_local_share: float = 0.4
    # ... and where they agree in one region only, under this share of the cells that agree or differ, and
    # differ in one region around it, they are two pictures sharing an inset, a badge or a card
    # (:func:`~dedup.ops.agreement.shared_region`). 0: off.
    max_inset_share: float = 0.5
    local_window: int = 13  # px of the agreement checks' half-size view (:class:`View`)
    local_corr: float = 0.5
    max_scale: float = 4.0  # the transform's scale must lie in [1/max_scale, max_scale]
    # A copy is derived from the other image, so one of the two lies (almost) wholly inside the other under
    # the transform that matches them: at least this share of one image's content (its frame less a uniform
    # fill reaching its border: pads, bars, the corners a rotation leaves) must land in the other's frame.
    min_containment: float = 0.9
    fill_aware: bool = True  # False: containment of the whole frames (a pad or a rotation's corners count)
    # where no similarity transform passes: a homography (perspective, a changed aspect ratio), with this many
    # inliers at least and its two axes' scales within ``max_anisotropy`` of each other
    homography: bool = True
    min_inliers_homography: int = 20
    # ... and only where the similarity transform found this many inliers: a perspective warp or a changed
    # aspect ratio is close to a similarity locally, so the best similarity already fits part of a copy's
    # matches; a pair with fewer shares nothing, and RANSAC would run all its 2,000 iterations on matches
    # that agree on nothing. 0: always tried.
    homography_from: int = 8
    max_anisotropy: float = 2.5
    # A pair the picture inside one image found (stage `inner`) whose whole images do not match: that picture
    # against the other image, which it must fill at least this share of (it is that image, not a detail of it)
    pictures: bool = True
    min_picture_cover: float = 0.6
    # Coarse to fine: each pair is first matched on a smaller view (longer side ``coarse`` px, ``coarse_features``
    # keypoints), with the same checks; only a pair that this does not decide is matched at ``size`` (with the
    # homography and the mirror image). Most pairs in the band are copies, decided there. 0: no coarse pass.
    coarse: int = 256
    coarse_features: int = 500
    # The coarse pass also decides a strong mirrored match whose pixels agree but whose content lies well
    # outside the other's frame as failed (two framings of a mirrored scene), where its containment is under
    # this: the coarse view's containment comes within a few points of the full size's, so a copy near
    # ``min_containment`` is still matched at full size. 0: such pairs go on to the full size.
    coarse_mirror_fail: float = 0.75
    # One frame, no keypoints (:func:`_identity`): two images of one aspect ratio whose band-passed detail
    # correlates at least this well as they are (on the coarse views, then at full size) are matched by the
    # identity, and pass where their pixels agree as any match's must: a re-save, a tone or colour edit, a
    # downscale. A tilt of half a degree or a crop of a pixel or two still passes (the identity then a pixel
    # off at ``size``); a tilt of a degree or a 2 % crop falls short, and the keypoints find its transform. 0: off.
    identity_detail: float = 0.95
    # A blurred copy (:func:`_blurred`): two images of one aspect ratio whose keypoints matched with too few
    # inliers either way pass where their coarser band (3 to 12 px of the agreement view) correlates at least
    # this well as they are, the finer one (1.5 to 6 px) at this less 0.1, and at most ``blurred_cells`` of the
    # 64 grid cells hold other content (a template's picture, a caption). 0: off.
    blurred: float = 0.9
    blurred_cells: int = 2
    # A coarse match whose corners land within this share of the size of the other's (but not within 1 %) is
    # fitted again to its matches within 1.5 px (:func:`~dedup.ops.matching._tighter`): a template's copies,
    # whose first fit can be a few per cent off, are one frame, and record where they differ for
    # :func:`~dedup.ops.templates.templates`; a small tilt or crop keeps its transform. 0: no second fit.
    near_frame: float = 0.05
    templates: bool = True  # pairs that matched only a recurring frame fail (:func:`templates`, in the stage)
    # ... and where one image has two same-frame matches differing in one region of at least this many of the
    # 64 cells whose third pair the search left out, that pair is checked too (:func:`open_wedges`). 0: never.
    template_wedges: int = 8
    mirror: bool = True  # also match against the mirror image
    enlarge: bool = True  # a smaller image is enlarged to ``size`` too
    version: int = 19  # bump when the check or what it records changes for the same parameters

    def key(self) -> str:
        import hashlib
        import json

        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def check_pair(fa: Features, fb: Features, params: VerifyParams) -> tuple[bool, int, bool, float]:
    """(shares content, inliers, mirrored, scale) for two images' features (see :func:`check`)."""
    return check(fa, fb, params)[:4]


_MIRROR_UNIT = np.array([[-1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # u -> 1 - u: a frame's mirror image


def _to_unit(shape: tuple) -> np.ndarray:
    """Pixels of a view of ``shape`` -> unit coordinates ((x + 0.5) / width, (y + 0.5) / height)."""
    h, w = shape[:2]
    return np.array([[1.0 / w, 0.0, 0.5 / w], [0.0, 1.0 / h, 0.5 / h], [0.0, 0.0, 1.0]])


def unit_transform(transform: np.ndarray, shape_a: tuple, shape_b: tuple, mirrored: bool = False) -> np.ndarray:
    """``transform`` (a -> b, in pixels of views of ``shape_a`` and ``shape_b``; of b's mirror image where
    ``mirrored``) in unit coordinates of the two upright frames, to b's own frame: the same for any view of
    either image (the kept-image stage registers them on its own views with it: :func:`from_unit`)."""
    n = _to_unit(shape_b) @ _as3(np.asarray(transform, np.float64)) @ np.linalg.inv(_to_unit(shape_a))
    n = _MIRROR_UNIT @ n if mirrored else n
    return n / n[2, 2]


def from_unit(unit: np.ndarray, shape_a: tuple, shape_b: tuple) -> np.ndarray:
    """A :func:`unit_transform` (a -> b) in pixels of views of ``shape_a`` and ``shape_b``."""
    return np.linalg.inv(_to_unit(shape_b)) @ np.asarray(unit, np.float64) @ _to_unit(shape_a)


def check(fa: Features, fb: Features, params: VerifyParams) -> tuple[bool, int, bool, float, int, np.ndarray | None]:
    """(shares content, inliers, mirrored, scale, where a same-frame match disagrees: grid bits, also for a
    pair that failed, for :func:`templates`; for a pair that passed, the transform that matched it, a -> b, in
    unit coordinates: :func:`unit_transform`) for two images' features (see the module docstring).

    Tried in turn: the identity, for two images of one frame whose detail lies in the same places
    (:func:`_identity`: no keypoints); a similarity transform (on the coarse views first:
    :attr:`VerifyParams.coarse`); where it does not pass, a homography (perspective, a changed aspect ratio:
    :attr:`VerifyParams.homography`); where neither matched plausibly, the mirror image's similarity
    transform. A match passes when the pixels it moves onto each other agree (:func:`_agrees`). Where none
    passed and the keypoints matched too few either way, a blurred copy (:func:`_blurred`)."""
    if params.identity_detail:
        same = _identity(fa, fb, params)
        if same is not None:
            return same
    res = _keypoints(fa, fb, params)
    if not res[0] and res[1] < params.min_inliers and params.blurred:
        return _blurred(fa, fb, params) or res
    return res


def _keypoints(fa: Features, fb: Features, params: VerifyParams) -> tuple:
    """:func:`check`'s result by the keypoints: a similarity transform (coarse, full size), a homography, the mirror."""
    def plausible(n: int, floor: int, scale: float, contained: float) -> bool:
        return n >= floor and 1.0 / params.max_scale <= scale <= params.max_scale and contained >= params.min_containment

    seen = 0  # where the first plausible same-frame match disagreed: a failed pair still tells of a template
    if params.coarse and fa.coarse is not None and fb.coarse is not None:
        done, result = _coarse(fa, fb, params, plausible)
        if done:
            return result
        seen = result
    found = _good_matches(fa.plain, fb.plain, params)
    n, scale, contained, moved = _match(fa.plain, fb.plain, params, (fa, fb), found)
    matched = plausible(n, params.min_inliers, scale, contained)
    if matched:  # a repeated motif (a print, tiles) matches itself shifted; the rest of the picture then disagrees
        ok, grid = _agrees(fa, fb, moved, params, False)
        seen = seen or grid
        if ok:
            return True, n, False, scale, grid, unit_transform(_precise(found, n, moved, params), fa.shape, fb.shape)
    if params.homography and n >= params.homography_from:
        hn, hscale, hcontained, hmoved = _homography(found, params, (fa, fb))
        if plausible(hn, params.min_inliers_homography, hscale, hcontained):
            ok, grid = _agrees(fa, fb, hmoved, params, False)
            if ok:
                return True, hn, False, hscale, grid, unit_transform(hmoved, fa.shape, fb.shape)
            matched, seen = True, seen or grid
    if matched or fb.mirrored is None:
        return False, n, False, scale, seen, None
    m, mscale, mcontained, moved = _match(fa.plain, fb.mirrored, params, (fa, fb))
    if plausible(m, params.min_inliers_mirrored, mscale, mcontained):
        # a mirror copy is the other's pixels mirrored; a symmetric scene matches its mirror image only
        # where it is symmetric (the two halves of a railing)
        ok = _agrees(fa, fb, moved, params, True)[0]
        return ok, m, True, mscale, seen, (unit_transform(moved, fa.shape, fb.shape, True) if ok else None)
    return (False, m, True, mscale, seen, None) if m > n else (False, n, False, scale, seen, None)


def _coarse(fa: Features, fb: Features, params: VerifyParams, plausible) -> tuple[bool, tuple | int]:
    """The coarse pass of :func:`check`: (decided, its result) or (not decided, the grid seen). Decided: a pass
    (plain or mirrored), or a sure fail: a strong match (twice the inliers needed) whose pixels agree but
    neither image's content lies in the other's frame (two framings of one scene; the full size would find
    the same transform, and a match this strong is no mirror copy); or, with no plain match, such a match
    with the mirror image whose containment is well short (:attr:`VerifyParams.coarse_mirror_fail`)."""
    ca, cb = fa.coarse, fb.coarse
    found = _good_matches(ca.plain, cb.plain, ca.params)
    n, scale, contained, moved = _match(ca.plain, cb.plain, ca.params, (ca, cb), found)
    if plausible(n, params.min_inliers, scale, contained):
        ok, seen = _agrees(ca, cb, moved, ca.params, False)
        if ok and seen == 0 and not same_frame(ca.shape, cb.shape, moved) and params.near_frame \
                and same_frame(ca.shape, cb.shape, moved, params.near_frame):
            moved = _tighter(found, moved, params.min_inliers)  # a template's fit, a few per cent off
        if ok and seen == 0 and same_frame(ca.shape, cb.shape, moved):
            # one frame: the pixels again at full size (a small picture in a large template is a few coarse
            # windows, too few to disagree), with the coarse transform; no new keypoints
            full = _rescaled(moved, fa.shape[1] / ca.shape[1], fb.shape[1] / cb.shape[1])
            ok, seen = _agrees(fa, fb, full, params, False)
        if not ok:
            return False, seen
        return True, (True, n, False, scale, seen, unit_transform(_precise(found, n, moved, ca.params), ca.shape, cb.shape))
    if n >= 2 * params.min_inliers and plausible(n, params.min_inliers, scale, 1.0):
        if agreements(ca.view, cb.view, moved, local=False)[0] >= params.min_agreement:
            return True, (False, n, False, scale, 0, None)
    if params.mirror and cb.mirrored is not None:
        m, mscale, mcontained, mmoved = _match(ca.plain, cb.mirrored, ca.params, (ca, cb))
        if plausible(m, params.min_inliers_mirrored, mscale, mcontained) and _agrees(ca, cb, mmoved, ca.params, True)[0]:
            return True, (True, m, True, mscale, 0, unit_transform(mmoved, ca.shape, cb.shape, True))
        # no plain match, and the mirror image matched strongly but out of frame: what the full size would find
        if (n < params.min_inliers and m >= 2 * params.min_inliers_mirrored and mcontained < params.coarse_mirror_fail
                and plausible(m, params.min_inliers_mirrored, mscale, 1.0)
                and agreements(ca.view, cb.view.mirrored(), mmoved, local=False)[0] >= params.min_mirrored_agreement):
            return True, (False, m, True, mscale, 0, None)
    return False, 0


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
                image_column: str | None = None, max_pixels: int = 100_000_000, pictures: dict | None = None) -> dict:
    """Check the pairs (a[i], b[i]) in one process: each image read, decoded and described once.

    ``where``: vid -> (kind, unit, item path) of its representative. An image that cannot be read or
    decoded fails every pair it is in (``error`` says why): the edge is rejected, never kept unchecked.
    ``pictures``: {"pairs": the pairs stage `inner` found, "boxes": vid -> its picture's box}: such a pair
    whose whole images do not match is checked again with the picture (:func:`check_picture`).
    """
    from dedup.sources import read_vids

    t0, cpu0 = time.perf_counter(), time.process_time()
    vids = np.unique(np.concatenate([a, b]))
    pictures = pictures if pictures and params.pictures else {}
    pairs, boxes = pictures.get("pairs", set()), pictures.get("boxes", {})
    feats: dict[int, Features | str] = {}
    inside: dict[int, Features] = {}
    for v, data, error in read_vids({int(v): where[int(v)] for v in vids}, image_column):
        try:
            if error is not None:
                raise ValueError(error)
            feats[v] = Features(grey_view(data, params.size, params.enlarge), params)
        except Exception as e:  # noqa: BLE001 - one bad image fails its pairs, never the job
            feats[v] = f"{type(e).__name__}: {e}"
            continue
        if v in boxes:
            try:
                inside[v] = Features(picture_view(data, boxes[v], params.size), params)
            except Exception:  # noqa: BLE001 - the whole image is still checked; only its picture is not
                pass
    names = ("ok", "inliers", "mirrored", "scale", "grid", "transform", "error")
    out = {k: [] for k in names}
    for x, y in zip(a.tolist(), b.tolist()):
        fx, fy = feats.get(x, "not read"), feats.get(y, "not read")
        if isinstance(fx, str) or isinstance(fy, str):
            res, err = (False, -1, False, 0.0, 0, None), fx if isinstance(fx, str) else fy
        else:
            res, err = check(fx, fy, params), None
            if not res[0] and (x, y) in pairs:
                res = check_picture(fx, fy, inside.get(x), inside.get(y), boxes, (x, y), params) or res
        for k, v in zip(names, (*res, err)):
            out[k].append(v)
    out["transform"] = [None if t is None else np.asarray(t, np.float32).ravel() for t in out["transform"]]
    return {"a": np.asarray(a, np.int64), "b": np.asarray(b, np.int64), "ok": np.asarray(out["ok"], bool),
            "inliers": np.asarray(out["inliers"], np.int32), "mirrored": np.asarray(out["mirrored"], bool),
            "scale": np.asarray(out["scale"], np.float32), "grid": np.asarray(out["grid"], np.int64),
            "error": np.asarray(out["error"], object), "transform": out["transform"], "images_decoded": len(feats),
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - cpu0}


def check_picture(fx: Features, fy: Features, px: Features | None, py: Features | None, boxes: dict, pair: tuple,
                  params: VerifyParams) -> tuple | None:
    """:func:`check`'s result for a pair through the picture inside one of them (``px``, ``py``: the
    pictures' features, None for an image without one): the picture against the other whole image, passed
    where it matches and fills at least :attr:`VerifyParams.min_picture_cover` of that image (the picture
    is that image, not a detail of it: an app's logo inside two screenshots is not their photo), with the
    transform put back in the two whole frames. None where neither passes."""
    for mine, inner, picture_first in ((pair[0], px, True), (pair[1], py, False)):
        if inner is None:
            continue
        res = check(inner, fy, params) if picture_first else check(fx, inner, params)
        if not res[0] or res[5] is None:
            continue
        to_picture = _unit_box(boxes[mine])  # whole frame -> the picture's frame, unit coordinates
        t = np.asarray(res[5], np.float64).reshape(3, 3)
        whole = t @ to_picture if picture_first else np.linalg.inv(to_picture) @ t
        cover = _covered(t if picture_first else np.linalg.inv(t))
        if cover >= params.min_picture_cover:
            return (*res[:5], whole / whole[2, 2])
    return None


def _unit_box(box: tuple) -> np.ndarray:
    """Unit coordinates of a whole frame -> unit coordinates of the box (left, top, right, bottom) in it."""
    x0, y0, x1, y1 = box
    return np.array([[1 / (x1 - x0), 0, -x0 / (x1 - x0)], [0, 1 / (y1 - y0), -y0 / (y1 - y0)], [0, 0, 1.0]])


def _covered(picture_to_other: np.ndarray, grid: int = 16) -> float:
    """The share of the other frame (unit square) that the picture's frame covers under the transform."""
    u = (np.arange(grid) + 0.5) / grid
    pts = np.stack(np.meshgrid(u, u), -1).reshape(-1, 2)
    back = np.c_[pts, np.ones(len(pts))] @ np.linalg.inv(picture_to_other).T
    back = back[:, :2] / back[:, 2:3]
    return float(np.mean((back >= 0).all(axis=1) & (back <= 1).all(axis=1)))


def apply(edges: pa.Table, checked: pd.DataFrame, lo: float, hi: float | None, to_check: np.ndarray | None = None) -> pa.Table:
    """The edges with ``verified``/``inliers``/``mirrored``/``transform`` from ``checked`` (pairs at or above
    ``hi`` are NOT_NEEDED; ``hi`` None: every edge was to be checked; ``to_check``, where given, says which
    edges were)."""
    a, b, sim = (edges.column(c).to_numpy() for c in ("a", "b", "sim"))
    n = int(max(a.max(initial=0), b.max(initial=0))) + 1
    in_band = to_check if to_check is not None else (sim >= lo) & (sim < hi) if hi is not None else np.ones(len(a), bool)
    verified = np.full(len(a), NOT_NEEDED, np.int8)
    inliers = np.full(len(a), -1, np.int32)
    mirrored = np.zeros(len(a), bool)
    transform = np.full(len(a), None, object)
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
        if "transform" in checked:  # a template's pair has one from its check, and failed after
            transform[in_band] = np.where(verified[in_band] == VERIFIED, checked["transform"].to_numpy()[pos], None)
    return pa.table({"a": a, "b": b, "sim": sim, "verified": verified, "inliers": inliers, "mirrored": mirrored,
                     "transform": pa.array(transform.tolist(), TRANSFORM)}, schema=VERIFY_SCHEMA)


__all__ = ["VerifyParams", "check", "check_pair", "unit_transform", "from_unit", "ratio_matches", "templates", "same_frame", "check_edges", "plan_tasks", "apply", "containment", "Features", "grey_view",
           "VERIFIED", "REJECTED", "NOT_NEEDED"]
