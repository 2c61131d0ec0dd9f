"""Whether the pixels a matched transform moves onto each other agree (no Ray; :mod:`dedup.ops.verify`): as a
whole and locally over the detailed overlap (:func:`agreements`), and whether two images are one frame
(:func:`same_frame`: a template's copies)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dedup.ops.features import Features
    from dedup.ops.verify import VerifyParams


def _as3(transform: np.ndarray) -> np.ndarray:
    """A 2 x 3 affine transform as 3 x 3 (a 3 x 3 one as it is)."""
    return transform if transform.shape == (3, 3) else np.vstack([transform, [0, 0, 1]])


class View:
    """An image's pixels as the agreement checks compare them: half the keypoints' size (the checks are
    coarse: a 1 px blur there is the 2 px one at full size), slightly blurred, and its band-passed detail
    (a difference of Gaussians: smooth ramps, which correlate by chance, taken out). Computed once per image
    and moved (not re-filtered) for each pair."""

    def __init__(self, grey: np.ndarray, blur: float = 1.0):
        import cv2

        h, w = grey.shape
        small = cv2.resize(grey, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA).astype(np.float32)
        self.smooth = cv2.GaussianBlur(small, (0, 0), blur)
        self.detail = self.smooth - cv2.GaussianBlur(small, (0, 0), 4 * blur)
        self.scale = small.shape[1] / w  # the view's pixels per keypoint-image pixel (about 1/2)
        self.ones = np.ones(small.shape, np.uint8)  # its frame, as :func:`agreements` moves it

    def band(self, sigma: float) -> np.ndarray:
        """A coarser band of the view (a difference of Gaussians, ``sigma`` and 4 x ``sigma`` view px, of the
        smooth view; made once per sigma): what a blurred copy keeps of the detail."""
        import cv2

        bands = self.__dict__.setdefault("_bands", {})
        if sigma not in bands:
            bands[sigma] = cv2.GaussianBlur(self.smooth, (0, 0), sigma) - cv2.GaussianBlur(self.smooth, (0, 0), 4 * sigma)
        return bands[sigma]

    def mirrored(self) -> "View":
        """The mirror image's view (made once)."""
        if getattr(self, "_mirror", None) is None:
            out = object.__new__(View)
            out.smooth, out.detail = np.ascontiguousarray(self.smooth[:, ::-1]), np.ascontiguousarray(self.detail[:, ::-1])
            out.scale, out.ones, out._mirror = self.scale, self.ones, self
            self._mirror = out
        return self._mirror


def _rescaled(transform: np.ndarray, sa: float, sb: float) -> np.ndarray:
    """``transform`` (a -> b) between the two images' frames scaled by ``sa`` and ``sb`` (3 x 3): diag(sb, sb,
    1) @ transform @ diag(1/sa, 1/sa, 1), as its rows and columns scaled (the same products)."""
    out = _as3(np.asarray(transform, np.float64)) * 1.0
    out[:2] *= sb
    out[:, :2] *= 1 / sa
    return out


def agreements(va: View, vb: View, transform: np.ndarray, window: int = 13, corr: float = 0.5,
               texture: float = 3.0, local: bool = True, inset: float = 0.0) -> tuple[float, float, int]:
    """How well ``vb``, moved into ``va``'s frame by ``transform`` (a -> b, keypoint-image pixels), agrees
    with ``va``: (the size of the two's correlation over the part of ``a`` that ``b`` covers: a negative
    correlates at -1; the local share).

    The local share: of the area where the two overlap and at least one has detail (the band-passed view's
    local standard deviation over ``texture`` grey levels in a ``window`` px window), the share where both
    have it and correlate at ``corr`` or better, or at -``corr`` or below in inverted regions (:func:`_inverted`).
    Uniform areas (pads, plain cards) count for nothing; a
    template that two different photos share agrees, the photos in it do not. Third: where they disagree
    (:func:`_local_share`'s grid bits). (0.0, 0.0, 0) where they overlap in under 100 pixels; without ``local``,
    the correlation alone (0.0, 0)."""
    import cv2

    h, w = va.smooth.shape
    try:
        back = np.linalg.inv(_rescaled(transform, va.scale, vb.scale))
    except np.linalg.LinAlgError:  # a degenerate transform moves nothing onto anything
        return 0.0, 0.0, 0
    covered = cv2.warpPerspective(vb.ones, back, (w, h), flags=cv2.INTER_NEAREST)
    inside = covered.view(bool)  # 0 or 1
    if np.count_nonzero(covered) < 100:
        return 0.0, 0.0, 0
    whole = abs(_correlation(va.smooth[inside], cv2.warpPerspective(vb.smooth, back, (w, h), flags=cv2.INTER_LINEAR)[inside]))
    if not local:
        return whole, 0.0, 0
    return whole, *_local_share(va.detail, cv2.warpPerspective(vb.detail, back, (w, h), flags=cv2.INTER_LINEAR),
                               cv2.erode(covered, np.ones((window, window), np.uint8)) > 0, window, corr, texture, inset)


def detail_correlation(va: View, vb: View) -> float:
    """The correlation of the two views' band-passed detail with ``vb`` as it is, scaled to ``va``'s frame (two
    images of one aspect ratio under the identity): near 1 only where every edge lies where the other's does."""
    import cv2

    h, w = va.detail.shape
    other = vb.detail if vb.detail.shape == (h, w) else cv2.resize(vb.detail, (w, h), interpolation=cv2.INTER_LINEAR)
    return _correlation(va.detail, other)


def band_agreement(va: View, vb: View, sigma: float, window: int = 13, corr: float = 0.5,
                   texture: float = 3.0, local: bool = True) -> tuple[float, int]:
    """(the correlation of the two views' band at ``sigma`` (:meth:`View.band`) with ``vb`` as it is, scaled
    to ``va``'s frame; the number of :data:`GRID` cells where they hold other content, :func:`_local_share`'s):
    two images of one aspect ratio under the identity, compared where a blur has left detail. Without
    ``local``, the correlation alone (and 0)."""
    import cv2

    x, y = va.band(sigma), vb.band(sigma)
    if y.shape != x.shape:
        y = cv2.resize(y, (x.shape[1], x.shape[0]), interpolation=cv2.INTER_LINEAR)
    if not local:
        return _correlation(x, y), 0
    _, grid = _local_share(x, y, np.ones(x.shape, bool), window, corr, texture)
    return _correlation(x, y), int(grid_cells(grid)[0])


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's correlation of ``x`` and ``y`` (0.0 where either is flat): one pass of OpenCV's
    double-precision sums rather than numpy's covariance matrix."""
    import cv2

    x, y = x.reshape(-1, 1), y.reshape(-1, 1)  # one channel, however long
    mx, sx = (v.item() for v in cv2.meanStdDev(x))
    my, sy = (v.item() for v in cv2.meanStdDev(y))
    if sx < 1e-3 or sy < 1e-3:
        return 0.0
    return float(np.clip((cv2.mean(x * y)[0] - mx * my) / (sx * sy), -1.0, 1.0))


GRID = 8  # the disagreement grid (:func:`_local_share`): GRID x GRID cells, one bit each in an int64


def grid_cells(grid) -> np.ndarray:
    """The number of cells set in each :func:`_local_share` grid (int64 bits, the sign bit one of them)."""
    return np.unpackbits(np.atleast_1d(np.asarray(grid, ">i8")).view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def _local_share(x: np.ndarray, y: np.ndarray, inner: np.ndarray, window: int, corr: float, texture: float,
                 inset: float = 0.0) -> tuple[float, int]:
    """(the local share, see :func:`agreements`; the cells of a GRID x GRID grid over ``x``'s frame where
    most of the detailed area holds other content in the two, as bits). With ``inset``: 0.0 where the two
    share one region only (:func:`shared_region`)."""
    import cv2

    # the local means of x, y, x*x, y*y in one box filter over their four channels (the same sums per channel)
    means = cv2.blur(cv2.merge([x, y, x * x, y * y]), (window, window))
    mx, my = means[..., 0], means[..., 1]
    vx, vy = means[..., 2] - mx * mx, means[..., 3] - my * my
    tx, ty = vx > texture ** 2, vy > texture ** 2
    detailed = inner & (tx | ty)
    n = np.count_nonzero(detailed)
    if n < window * window:
        return 0.0, 0
    r = (cv2.blur(x * y, (window, window)) - mx * my) / np.sqrt(np.maximum(vx, 1e-6) * np.maximum(vy, 1e-6))
    both = detailed & tx & ty
    agree = both & (r >= corr)
    area = _cells(detailed)
    turned = _inverted(both & (r <= -corr), area, n)
    if turned is not None:
        agree |= turned
    # a grid cell disagrees where most of its detailed area has detail in both images that does not correlate:
    # other content (detail lost on one side, clipped or blurred, is an edit of the same content)
    grid = _mostly(both & ~agree, area)
    share = np.count_nonzero(agree) / n
    if inset and np.count_nonzero(grid) >= SHARED_MIN_CELLS:  # the agreeing cells only where they can matter
        if shared_region(grid, _mostly(agree, area), inset):
            share = 0.0
    return share, int(np.packbits(grid.ravel()).view(">i8")[0])


def _cells(mask: np.ndarray) -> np.ndarray:
    """The share of each GRID x GRID cell of ``mask``'s frame that ``mask`` covers."""
    import cv2

    return cv2.resize(mask.astype(np.float32), (GRID, GRID), interpolation=cv2.INTER_AREA)


def _mostly(mask: np.ndarray, area: np.ndarray) -> np.ndarray:
    """The grid cells with detail (``area``, :func:`_cells` of the detailed pixels: a fifth or more) where
    ``mask`` holds half of it or more."""
    return (area >= 0.2) & (_cells(mask) >= 0.5 * area)


def _inverted(anti: np.ndarray, area: np.ndarray, n: int) -> np.ndarray | None:
    """The windows that correlate at -``corr`` or below (``anti``) in the grid cells where they hold most of the
    detailed area (``area``: its share per cell), where those make :data:`INVERTED_SHARE` of the ``n`` detailed
    pixels: a negative's or a solarized copy's inverted tones, the same content turned over; else None. Unrelated
    content anti-correlates as often as it correlates, in windows scattered over the frame, not in whole cells."""
    import cv2

    if np.count_nonzero(anti) < INVERTED_SHARE * n:
        return None
    cells = _mostly(anti, area)
    turned = anti & cv2.resize(cells.astype(np.uint8), anti.shape[::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
    return turned if np.count_nonzero(turned) >= INVERTED_SHARE * n else None


INVERTED_SHARE = 0.2  # of the detailed area: inverted regions that count as agreeing (:func:`_inverted`)
SHARED_MIN_CELLS = 12  # cells of the GRID x GRID grid that must differ before a pair can share one region only


def shared_region(differ: np.ndarray, agree: np.ndarray, inset: float, min_cells: int = SHARED_MIN_CELLS) -> bool:
    """The two images share one region and hold other pictures around it: the grid cells where they agree
    (``agree``) are one connected region, under ``inset`` of the cells that agree or differ, and the cells
    where they differ (``differ``, at least ``min_cells`` of the 64) are one region too (nine tenths in the
    largest). A copy with a sticker, a caption or a pasted patch differs in the smaller part (its edit), and a
    warp the transform does not fit differs in several places round the frame; two different photos with
    one inset (a picture in the picture, a shared badge or card) agree only in it."""
    from scipy.ndimage import label

    nd, na = int(differ.sum()), int(agree.sum())
    if nd < min_cells or na >= inset * (na + nd):
        return False
    lab_a, count_a = label(agree)
    if count_a > 1:
        return False
    lab_d, count_d = label(differ)
    return bool(count_d and np.bincount(lab_d.ravel())[1:].max() >= 0.9 * nd)


def _agrees(fa: "Features", fb: "Features", moved: np.ndarray, params: VerifyParams, mirrored: bool) -> tuple[bool, int]:
    """(the pixels agree under the matched transform, as a whole and locally over the detailed overlap;
    where they disagree, as :func:`_local_share`'s grid bits when the two share one frame, else 0)."""
    vb = fb.view.mirrored() if mirrored else fb.view
    whole, share, grid = agreements(fa.view, vb, moved, params.local_window, params.local_corr, inset=params.max_inset_share)
    ok = whole >= (params.min_mirrored_agreement if mirrored else params.min_agreement) and share >= params.min_local_share
    return ok, grid if same_frame(fa.shape, fb.shape, moved) else 0


def same_frame(shape_a: tuple, shape_b: tuple, transform: np.ndarray, tol: float = 0.01) -> bool:
    """The two images are one frame: ``transform`` (a -> b) maps a's corners onto b's, within ``tol`` of
    the size (a template's copies: different pictures in one screenshot, meme card or canvas)."""
    (ha, wa), (hb, wb) = shape_a[:2], shape_b[:2]
    t = _as3(np.asarray(transform, np.float64)).tolist()  # four corners: plain floats cost less than arrays
    limit = tol * max(wb, hb)
    for (xa, ya), (xb, yb) in zip(((0, 0), (wa, 0), (wa, ha), (0, ha)), ((0, 0), (wb, 0), (wb, hb), (0, hb))):
        z = t[2][0] * xa + t[2][1] * ya + t[2][2]
        if abs(z) < 1e-9:
            return False
        if abs((t[0][0] * xa + t[0][1] * ya + t[0][2]) / z - xb) > limit or abs((t[1][0] * xa + t[1][1] * ya + t[1][2]) / z - yb) > limit:
            return False
    return True
