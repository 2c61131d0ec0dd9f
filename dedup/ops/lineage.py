"""Which of two versions was made from the other, from where each one's picture lies in the other's frame
(no Ray; :mod:`dedup.ops.canonical`'s rule ``framed`` asks).

The two grey detail views are registered (ORB keypoints, a similarity transform or, where it explains
clearly more matches, a homography; the mirror image is tried where neither matches). Each version's
*extra* is the part of its frame the other's frame does not cover once mapped into it: a crop's source has
the picture around the crop; a padded, letterboxed, captioned, meme-carded or pasted-on-a-canvas copy has
the added frame; a rotated or warped copy inside its own frame has the filled corners, and its source the
corners the warp cut off.

Whether an extra continues the picture is the evidence: photographed content goes on across the edge of
the shared part (a crop cut it there), added content does not (a pad, a card, a canvas or a fill was put
there). Two measures say so. The step (:func:`edge_step`): how much more the picture changes across the
other's frame edge than across lines beside it; every edge of an added frame is a step, a crop's edges are
not (``added_to``'s ``ratio``). And the fill (:func:`self_fill`): a pad in reflect or edge mode, or the
corners a warp filled by reflection, continue the picture across the edge with no step, but as the picture
itself mirrored or repeated, which a photographed scene is not; its bounds were read off the extras of stored
runs (``docs/how-it-decides.md``, "Pads that repeat the picture").
"""
from __future__ import annotations

import numpy as np

from dedup.ops.features import describe
from dedup.ops.matching import ratio_matches

SIDE = 384  # px, the longer side the detail views are registered and compared at
MIN_MATCHES = 12  # RANSAC inliers a registration needs
MIN_EXTRA = 0.005  # share of a frame under which it has no extra (an edge of the other's frame along its own border)
# A pad that repeats the picture (:func:`self_fill`): the mirror error over the picture's own at that distance,
# and over the median error of the edge positions around it; the change along the normal over the picture's.
# Read off the extras of stored runs (docs/how-it-decides.md, "Pads that repeat the picture").
FILL_MIRROR, FILL_DIP, FILL_REPEAT = 0.3, 0.3, 0.03


def reg_view(v, mirrored: bool = False, keypoints: bool = True) -> tuple[np.ndarray, tuple | None]:
    """(the grey detail view at :data:`SIDE`, its ORB keypoints and descriptors), or with ``mirrored`` the
    mirror image's keypoints; each described on first use (none without ``keypoints``) and kept on the
    version (``v.reg``)."""
    import cv2

    if getattr(v, "reg", None) is None:
        g = v.detail
        scale = SIDE / max(g.shape)
        if scale < 1:
            g = cv2.resize(g, (max(1, round(g.shape[1] * scale)), max(1, round(g.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        v.reg = [np.ascontiguousarray(g), None, None]
    k = 2 if mirrored else 1
    if keypoints and v.reg[k] is None:
        v.reg[k] = _describe(np.ascontiguousarray(v.reg[0][:, ::-1]) if mirrored else v.reg[0])
    return v.reg[0], v.reg[k]


def _describe(g: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    import cv2

    return describe(cv2.ORB_create(nfeatures=1000), g)


def _fit(a: tuple, b: tuple) -> tuple[int, np.ndarray | None]:
    """(inliers, 3 x 3 transform from ``b``'s points to ``a``'s): a similarity, or a homography where it
    keeps 1.2 times the inliers (a perspective warp, a changed aspect ratio)."""
    import cv2

    (pa, da), (pb, db) = a, b
    if da is None or db is None or len(da) < MIN_MATCHES or len(db) < MIN_MATCHES:
        return 0, None
    good, nearest = ratio_matches(db, da, 0.8)
    if len(good) < MIN_MATCHES:
        return 0, None
    src, dst = pb[good], pa[nearest]
    cv2.setRNGSeed(0)
    sim, keep = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0, maxIters=2000)
    n_sim = int(keep.sum()) if sim is not None else 0
    if len(good) < 1.2 * n_sim:  # a homography keeps at most every match: it cannot win, and costs most of a fit
        return n_sim, np.vstack([sim, [0, 0, 1]])
    hom, hkeep = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    n_hom = int(hkeep.sum()) if hom is not None else 0
    if hom is not None and n_hom >= 1.2 * n_sim and abs(np.linalg.det(hom[:2, :2])) > 1e-3:
        return n_hom, hom
    return n_sim, (np.vstack([sim, [0, 0, 1]]) if sim is not None else None)


def register(x, y) -> np.ndarray | None:
    """The 3 x 3 transform from ``y``'s registration view (:func:`reg_view`) to ``x``'s, or None where they
    do not match (:data:`MIN_MATCHES`). Where the content check matched the two (``links``: its transform, in
    unit coordinates), that transform, moved to these views (no keypoints); else ORB keypoints, and a
    mirror image is tried where the plain views do not match."""
    known = linked(x, y)
    if known is not None:
        return known
    (_, fx), (gy, fy) = reg_view(x), reg_view(y)
    n, t = _fit(fx, fy)
    if n < MIN_MATCHES:
        n, t = _fit(fx, reg_view(y, mirrored=True)[1])
        if t is not None:  # y's mirror -> x, after y -> y's mirror
            t = t @ np.array([[-1, 0, gy.shape[1] - 1], [0, 1, 0], [0, 0, 1]], np.float64)
    return t if n >= MIN_MATCHES else None


def linked(x, y) -> np.ndarray | None:
    """The content check's transform between the two (:func:`dedup.ops.verify.unit_transform`, kept on the
    versions as ``links``) from ``y``'s registration view to ``x``'s; None where it has none."""
    from dedup.ops.verify import from_unit

    unit = getattr(y, "links", {}).get(getattr(x, "vid", -1))  # y -> x
    if unit is None:
        unit = getattr(x, "links", {}).get(getattr(y, "vid", -1))  # x -> y
        if unit is None:
            return None
        try:
            unit = np.linalg.inv(np.asarray(unit, np.float64).reshape(3, 3))
        except np.linalg.LinAlgError:
            return None
    gx, gy = reg_view(x, keypoints=False)[0], reg_view(y, keypoints=False)[0]
    return from_unit(np.asarray(unit, np.float64).reshape(3, 3), gy.shape, gx.shape)


def covered(shape_to: tuple, shape_from: tuple, t: np.ndarray) -> np.ndarray:
    """The pixels of a frame of ``shape_to`` that a frame of ``shape_from``, mapped by ``t``, covers."""
    import cv2

    ones = np.ones(shape_from, np.uint8)
    return cv2.warpPerspective(ones, t, (shape_to[1], shape_to[0]), flags=cv2.INTER_NEAREST) > 0


def quad(t: np.ndarray, shape_from: tuple) -> np.ndarray:
    """The corners of a frame of ``shape_from`` mapped by ``t`` (4 x 2, x y, in order round the frame)."""
    h, w = shape_from
    c = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], np.float64).T
    m = t @ c
    return (m[:2] / m[2]).T


def edge_profiles(g: np.ndarray, corners: np.ndarray, reach: int = 8, step: float = 2.0) -> list[np.ndarray]:
    """For each edge of the polygon ``corners`` (the other version's frame mapped into this one) that lies
    inside ``g``'s frame, how much ``g`` changes across lines parallel to it at offsets -``reach`` ..
    +``reach`` px (outwards positive): the median, over the edge's points, of the absolute difference
    between the pixels one px either side of each line. Only the points whose whole profile lies inside
    ``g`` count (an edge along ``g``'s own border has no outside); an edge with under 10 such points is
    left out. The points of all edges are sampled at once (:func:`_bilinear`): per edge, numpy's call
    overhead cost more than the sampling."""
    h, w = g.shape
    centre, offsets = corners.mean(axis=0), np.arange(-reach - 1, reach + 2, dtype=np.float64)
    lines = []
    for a, b in zip(corners, np.roll(corners, -1, axis=0)):
        length = float(np.hypot(*(b - a)))
        if length < 8:
            continue
        n = np.array([b[1] - a[1], a[0] - b[0]]) / length
        n = n if np.dot(n, (a + b) / 2 - centre) > 0 else -n  # outwards
        p = a + np.linspace(0.05, 0.95, max(2, int(length / step)))[:, None] * (b - a)
        ends = np.stack([p + offsets[0] * n, p + offsets[-1] * n])  # a profile lies inside the frame where both its ends do
        inside = ((ends[..., 0] >= 0) & (ends[..., 0] <= w - 1) & (ends[..., 1] >= 0) & (ends[..., 1] <= h - 1)).all(axis=0)
        if inside.sum() >= 10:
            lines.append(p[inside][:, None, :] + offsets[None, :, None] * n)  # (points, offsets, 2)
    if not lines:
        return []
    xy = np.concatenate(lines)
    v = _bilinear(g, xy[..., 0], xy[..., 1])
    d = np.abs(v[:, 2:] - v[:, :-2])
    ends = np.cumsum([len(line) for line in lines])
    return [np.median(part, axis=0) for part in np.split(d, ends[:-1])]


def _bilinear(g: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``g`` at the points (``x``, ``y``), all inside its frame, by linear interpolation (float32): what
    ``scipy.ndimage.map_coordinates(g.astype(np.float32), [y, x], order=1)`` gives, without its per-call cost."""
    h, w = g.shape
    x0 = np.clip(np.floor(x).astype(np.intp), 0, max(w - 2, 0))
    y0 = np.clip(np.floor(y).astype(np.intp), 0, max(h - 2, 0))
    fx, fy = x - x0, y - y0
    f, i, right, down = g.ravel(), y0 * w + x0, int(w > 1), w * int(h > 1)  # uint8 times float64: float64
    top = f[i] * (1 - fx) + f[i + right] * fx
    bottom = f[i + down] * (1 - fx) + f[i + down + right] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def edge_step(g: np.ndarray, corners: np.ndarray, near: int = 2, far: int = 5) -> float | None:
    """How much more ``g`` changes across the mapped frame's edges than beside them: per edge
    (:func:`edge_profiles`), the largest change within ``near`` px of it (registration's error) over the
    median change across lines ``far`` px or more away on either side; the smallest over the edges. About 1
    where the picture goes on across the edges (the other version is a crop: at most one edge of a crop
    falls on a boundary in the picture), several times that where a frame, a card or a fill was put
    around the picture (every edge is a step). None where no edge lies inside ``g``."""
    ratios = []
    for d in edge_profiles(g, corners):
        reach = (len(d) - 1) // 2
        o = np.abs(np.arange(-reach, reach + 1))
        ratios.append(float(d[o <= near].max() / max(float(np.median(d[o >= far])), 1.0)))
    return min(ratios) if ratios else None


def extras(x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(the part of x's registration view that y's frame covers, the part of y's that x's covers, y's frame's
    corners in x, x's frame's corners in y, the transform from y's view to x's), or None where the two do not
    register; computed once per pair (``framed``, ``contains`` and :func:`fills` ask)."""
    from dedup.ops.versions import _pair_memo

    return _pair_memo(x, y, "extras", lambda: _extras(x, y))


def _extras(x, y):
    t = register(x, y)
    if t is None:
        return None
    gx, gy = reg_view(x, keypoints=False)[0], reg_view(y, keypoints=False)[0]
    try:
        back = np.linalg.inv(t)
    except np.linalg.LinAlgError:
        return None
    return covered(gx.shape, gy.shape, t), covered(gy.shape, gx.shape, back), quad(t, gy.shape), quad(back, gx.shape), t


def self_fill(g: np.ndarray, shared: np.ndarray, shape: tuple, to_g: np.ndarray, reach: int = 8, shift: int = 4) -> bool | None:
    """Whether ``g``'s extra just past the other's frame is the picture itself, mirrored across the frame's
    edge or its edge pixels repeated: a pad in reflect, symmetric or edge mode, or the corners a rotation, a
    shear or a warp filled by reflection (OpenCV's and albumentations' reflected borders), which continue the
    picture across the edge as a photographed scene does, so that :func:`edge_step` sees no step. ``shape``:
    the other's view's, ``to_g``: its transform into ``g``. Along the normals of the other's frame edges in
    its own coordinates, where a warp's border reflects (:func:`_profiles`, ``reach`` px either side, the
    edge placed where it fits best within ``shift`` px: registration's error):

    * mirrored: the pixels ``j`` px outside differ from those ``j`` px inside by under :data:`FILL_MIRROR` of
      what the picture's own pixels ``2j`` px apart do, and under :data:`FILL_DIP` of what they do with the
      edge put elsewhere in the window (a mirror matches at one place, a scene nowhere much better);
    * repeated: beyond the window the pixels change along the normal under :data:`FILL_REPEAT` of what
      the picture's do inside, while changing along the edge as the picture's do.

    The outside must change along the edge at least half as much as the inside (a plain fill or a sky is
    no evidence either way; :func:`edge_step` tells a plain fill). None where ``g`` has no extra (under
    :data:`MIN_EXTRA`), or its edges have under 40 points or too little texture."""
    if 1.0 - float(shared.mean()) < MIN_EXTRA:
        return None
    v, ends = _profiles(g, shape, to_g, -3 * reach - shift, 2 * reach + shift)
    if v is None or len(v) < 40:
        return None
    sums = sum(len(part) * _fill_measures(part, 2 * (3 * reach + shift), reach, shift) for part in np.split(v, ends[:-1]))
    mirror, base, others, out_normal, in_normal, out_along, in_along = sums / len(v)
    if base < 3.0 or out_along < 0.5 * in_along:
        return None
    repeated = out_normal <= FILL_REPEAT * in_normal
    return bool(repeated or (mirror <= FILL_MIRROR * base and mirror <= FILL_DIP * others))


def _fill_measures(part: np.ndarray, zero: int, reach: int, shift: int) -> np.ndarray:
    """For one edge's profiles (points x offsets in half px, offset 0 at ``zero``): the mean mirror error
    at the best edge position, the picture's own at that distance, the median mirror error over the
    positions, the mean change along the normal outside and inside the window, and along the edge outside
    and inside (:func:`self_fill`)."""
    j = 2 * np.arange(1, reach + 1)
    at = np.arange(zero - 2 * shift, zero + 2 * shift + 1)
    errors = np.abs(part[:, at[:, None] + j] - part[:, at[:, None] - j]).mean(axis=(0, 2))
    o = int(at[errors.argmin()])
    base = np.abs(part[:, o - j] - part[:, o - 3 * j]).mean()
    out, inside = part[:, zero + 2 * shift + j], part[:, zero - 2 * shift - j]
    normal = [np.abs(np.diff(side, axis=1)).mean() for side in (out, inside)]
    return np.array([errors.min(), base, np.median(errors), *normal, _along(out), _along(inside)])


def _along(values: np.ndarray) -> float:
    """The mean absolute difference between neighbouring points along an edge (rows of ``values``)."""
    return float(np.abs(np.diff(values, axis=0)).mean()) if len(values) > 1 else 0.0


def _profiles(g: np.ndarray, shape: tuple, to_g: np.ndarray, lo: float, hi: float, step: float = 2.0):
    """``g`` along the outward normals of the edges of a frame of ``shape`` (the other view's, mapped into
    ``g`` by ``to_g``), at offsets ``lo`` .. ``hi`` px of ``g`` (in that frame's units: the transform's scale)
    in half-px steps, at points about ``step`` px of ``g`` apart along each edge whose whole normal lands
    inside ``g``: (points x offsets, the ends of each edge's points in it), or (None, None) where no edge has
    10 points."""
    h, w = g.shape
    oh, ow = shape
    unit = 1.0 / max(float(np.sqrt(abs(np.linalg.det(to_g[:2, :2])))), 1e-6)  # one px of g in the frame's px
    offsets, step = np.arange(2 * lo, 2 * hi + 1) / 2.0 * unit, step * unit
    lo, hi = offsets[0], offsets[-1]
    corners = np.array([[0, 0], [ow - 1, 0], [ow - 1, oh - 1], [0, oh - 1]], np.float64)
    normals = np.array([[0, -1], [1, 0], [0, 1], [-1, 0]], np.float64)  # outwards from top, right, bottom, left
    lines = []
    for a, b, n in zip(corners, np.roll(corners, -1, axis=0), normals):
        length = float(np.hypot(*(b - a)))
        if length < 8:
            continue
        p = a + np.linspace(0.05, 0.95, max(2, int(length / step)))[:, None] * (b - a)
        ends = _mapped(to_g, np.stack([p + lo * n, p + hi * n]))  # a mapped normal is a segment: inside where both ends are
        inside = ((ends[..., 0] >= 0) & (ends[..., 0] <= w - 1) & (ends[..., 1] >= 0) & (ends[..., 1] <= h - 1)).all(axis=0)
        if inside.sum() >= 10:
            lines.append(_mapped(to_g, p[inside][:, None, :] + offsets[None, :, None] * n))
    if not lines:
        return None, None
    xy = np.concatenate(lines)
    return _bilinear(g, xy[..., 0], xy[..., 1]), np.cumsum([len(line) for line in lines])


def _mapped(t: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Points (``...`` x 2, x y) mapped by the 3 x 3 transform ``t``."""
    m = xy @ t[:2, :2].T + t[:2, 2]
    w = xy @ t[2, :2] + t[2, 2]
    with np.errstate(divide="ignore", invalid="ignore"):  # a point at infinity: never inside a frame
        return m / w[..., None]


def fills(x, y) -> tuple[bool, bool]:
    """Whether each version's extra is a pad that repeats its picture (:func:`self_fill`), computed once per
    pair (``framed`` and ``contains`` both ask); (False, False) where they do not register."""
    from dedup.ops.versions import _pair_memo

    def make():
        e = extras(x, y)
        if e is None:
            return False, False
        shared_x, shared_y, _, _, t = e
        gx, gy = reg_view(x, keypoints=False)[0], reg_view(y, keypoints=False)[0]
        return bool(self_fill(gx, shared_x, gy.shape, t)), bool(self_fill(gy, shared_y, gx.shape, np.linalg.inv(t)))

    return _pair_memo(x, y, "fills", make)


def frame_step(g: np.ndarray, shared: np.ndarray, corners: np.ndarray) -> float:
    """:func:`edge_step` of the other's frame in ``g``; 1 (nothing added) where ``g`` has no extra (under
    :data:`MIN_EXTRA` of it) or no edge of that frame lies inside it."""
    if 1.0 - float(shared.mean()) < MIN_EXTRA:
        return 1.0
    s = edge_step(g, corners)
    return 1.0 if s is None else s


def added_to(x, y, ratio: float = 2.0) -> int:
    """+1 where ``y`` is ``x``'s picture with content added around it or put into a new frame (a pad, a
    letterbox, a card, a caption bar, a canvas, a screenshot, the filled corners of a rotation or a warp
    inside its frame): the change across the edge of ``x``'s frame in ``y`` (:func:`frame_step`) is over
    ``ratio`` and ``ratio`` times the change across ``y``'s frame in ``x`` (the picture a crop or a warp cut
    away goes on across it), or ``y``'s extra repeats its picture (a pad in reflect or edge mode, corners
    filled by reflection, :func:`self_fill`) and ``x``'s does not; -1 the other way; 0 where they do not register or neither is clear."""
    e = extras(x, y)
    if e is None:
        return 0
    fill_x, fill_y = fills(x, y)
    if fill_x != fill_y:  # one has a pad that repeats the picture, the other no such extra
        return 1 if fill_y else -1
    shared_x, shared_y, corners_y, corners_x, _ = e
    sx = frame_step(reg_view(x, keypoints=False)[0], shared_x, corners_y)
    sy = frame_step(reg_view(y, keypoints=False)[0], shared_y, corners_x)
    if max(sx, sy) <= ratio or max(sx, sy) <= ratio * min(sx, sy):
        return 0
    return 1 if sy > sx else -1


def contains(x, y, whole: float = 0.98, part: float = 0.9, step: tuple = (0.5, 2.0), texture: float = 0.5,
             flat: float = 0.25, margin: int = 5) -> int:
    """+1 where ``x`` holds all of ``y``'s picture and clearly more of the scene around it: ``y``'s frame covers
    at most ``part`` of ``x``'s view, ``x``'s frame covers ``whole`` of ``y``'s, and what ``x`` has beyond is the
    picture going on: across the edge of ``y``'s frame the change is that of the picture itself
    (:func:`frame_step` within ``step``) and not the picture mirrored or repeated (a pad, :func:`self_fill`),
    and the part beyond is textured as the shared part is (at least
    ``texture`` times its detail, and at most ``flat`` more of it flat: not a card, a pad, a caption bar or a
    blurred fill), read ``margin`` px away from its edges (:func:`_away`: the texture maps' 8 x 8 windows and
    3 x 3 Laplacian there straddle the edge, so a pad a few pixels wide on a small copy reads as textured;
    where nothing is left, nothing is decided). ``y`` is then a crop of ``x``, whatever its size: a crop
    enlarged back to the photo's size has as many pixels as the photo. -1 the other way; 0 where they do not
    register or neither holds the other."""
    e = extras(x, y)
    if e is None:
        return 0
    shared_x, shared_y, corners_y, corners_x, _ = e
    gx, gy = reg_view(x, keypoints=False)[0], reg_view(y, keypoints=False)[0]
    fill_x, fill_y = fills(x, y)
    for v, g, mine, theirs, corners, sign, fill in ((x, gx, shared_x, shared_y, corners_y, 1, fill_x),
                                                    (y, gy, shared_y, shared_x, corners_x, -1, fill_y)):
        if theirs.mean() >= whole and mine.mean() <= part:
            goes_on = not fill and step[0] <= frame_step(g, mine, corners) <= step[1]
            maps = _texture_maps(v)
            (detail_beyond, flat_beyond), (detail_shared, flat_shared) = _texture(maps, _away(~mine, margin)), _texture(maps, mine)
            alike = detail_beyond >= texture * detail_shared and flat_beyond <= flat_shared + flat
            return sign if goes_on and alike else 0
    return 0


def _away(mask: np.ndarray, margin: int) -> np.ndarray:
    """The part of ``mask`` at least ``margin`` px from its own edges and from the frame's border."""
    import cv2

    if margin <= 0:
        return mask
    k = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    return cv2.erode(mask.astype(np.uint8), k, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0


def _texture_maps(v) -> tuple[np.ndarray, np.ndarray]:
    """(the absolute Laplacian of ``v``'s registration view, where its 8 x 8 neighbourhood is flat: grey
    levels' variance under 1), made once per version (every pair it is in asks, for both parts of it)."""
    import cv2

    from dedup.ops.versions import _memo

    def make():
        f = reg_view(v, keypoints=False)[0].astype(np.float32)
        variance = cv2.blur(f * f, (8, 8)) - cv2.blur(f, (8, 8)) ** 2
        return np.abs(cv2.Laplacian(f, cv2.CV_32F)), variance < 1

    return _memo(v, "reg_texture", make)


def _texture(maps: tuple[np.ndarray, np.ndarray], where: np.ndarray) -> tuple[float, float]:
    """(the mean absolute Laplacian over ``where``, the share of it that is flat) of :func:`_texture_maps`;
    (0, 0) where it holds under 50 pixels."""
    if np.count_nonzero(where) < 50:
        return 0.0, 0.0
    lap, flat = maps
    return float(lap[where].mean()), float(flat[where].mean())
