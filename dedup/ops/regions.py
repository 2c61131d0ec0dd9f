"""Evidence of an edit by place (no Ray; rules of :mod:`dedup.ops.canonical`): two aligned versions that
differ in one place, where one has something drawn on it (a caption, a watermark, a sticker, a patch) that
does not continue its surroundings, or where one lost highlights or shadows the other still has; and two
versions of one frame, one darkened toward its corners (a vignette, :func:`_vignetted`)."""
from __future__ import annotations

import numpy as np

from dedup.ops.versions import Version, _memo, _pair_memo, aligned


def clipped_detail(x: np.ndarray, y: np.ndarray, min_share: float = 0.001, spread: float = 4.0,
                   masks: list | None = None) -> bool:
    """``x`` is pure white (or pure black) where the aligned ``y`` still has detail: x lost what y has
    (brightening or a contrast boost that clipped, a pasted caption box). Where y is flat there (y's own
    clipped sky, made grey by a darkened copy), there is nothing lost and no evidence. ``masks``: x's
    :func:`clipped_areas`, where they are kept."""
    for mask in clipped_areas(x) if masks is None else masks:
        if mask.mean() > min_share and float(y[mask].astype(np.float32).std()) > spread:
            return True
    return False


def clipped_areas(x: np.ndarray) -> list[np.ndarray]:
    """The inside of ``x``'s pure white and of its pure black areas (at their edges a blurred or resampled
    copy mixes in the neighbours, which is not detail the clipped image lost)."""
    from scipy.ndimage import binary_erosion

    return [binary_erosion(mask, iterations=1) for mask in (x >= 253, x <= 2)]


def edited_region(a: np.ndarray, b: np.ndarray, z: float = 1.5, lo: float = 0.002, hi: float = 0.5) -> np.ndarray | None:
    """Where two grey images of one size, alike everywhere else, differ: the pixels whose standardised
    (:func:`_robust_z`) grey levels differ by more than ``z`` standard deviations (and five times the median difference). None
    when the images are not alike (the median pixel differs by 0.3 or more: a crop, a mirror image) or the
    region is not a local one (under ``lo`` or over ``hi`` of the image: a re-encode, a tone edit)."""
    return _differ(_robust_z(a), _robust_z(b), z, lo, hi)


def _differ(za: np.ndarray | None, zb: np.ndarray | None, z: float = 1.5, lo: float = 0.002,
            hi: float = 0.5) -> np.ndarray | None:
    """:func:`edited_region` of two images already standardised (:func:`_robust_z`)."""
    if za is None or zb is None:
        return None
    d = np.abs(za - zb)
    median = float(np.median(d.ravel()[::7]))
    if median >= 0.3:
        return None
    mask = d > max(z, 5 * median)
    return mask if lo <= float(mask.mean()) <= hi else None


def _robust_z(v: np.ndarray) -> np.ndarray | None:
    """Grey levels standardised by their median and interquartile range (an overlay on a quarter of the
    image hardly moves them, unlike the mean and standard deviation); None for a flat image."""
    from dedup.ops.quality import percentiles_u8

    f = v.astype(np.float32)
    q1, med, q3 = percentiles_u8(v.ravel()[::7], [25, 50, 75])  # a sample is enough for three quantiles
    return None if q3 - q1 < 1 else (f - med) / ((q3 - q1) / 1.349)


def _robust_z_of(v: Version) -> np.ndarray | None:
    """:func:`_robust_z` of ``v``'s detail view, once per version."""
    return _memo(v, "robust_z", lambda: _robust_z(v.detail))


def synthetic_share(values: np.ndarray, tol: int = 4) -> float:
    """The share of ``values`` that look drawn rather than photographed: within ``tol`` grey levels of
    their most common level (a filled box, a patch of one colour) or near pure white or black (text)."""
    v = values.astype(np.int16)
    mode = int(np.bincount(v, minlength=256).argmax())
    return float(np.mean((np.abs(v - mode) <= tol) | (v >= 240) | (v <= 15)))


def _region(x: Version, y: Version) -> tuple[np.ndarray, float, float] | None:
    """Where two versions of one size differ (:func:`edited_region`) and each one's edge energy (the mean
    absolute Laplacian of the detail view) outside it, 3 px away; None where they are not alike but there.
    Kept for the pair (:func:`_local_edit` and :func:`_drawn_on` both ask)."""
    if x.detail is None or y.detail is None or x.detail.shape != y.detail.shape:
        return None

    def make():
        mask = _differ(_robust_z_of(x), _robust_z_of(y))
        if mask is None:
            return None
        outside = ~grown(mask, 3)
        return mask, _edge_energy(x, outside), _edge_energy(y, outside)
    return _pair_memo(x, y, "region", make)


def grown(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` grown by ``px`` px (4-connected steps: the pixels within that city-block distance), as
    ``scipy.ndimage.binary_dilation(mask, iterations=px)`` gives it, by OpenCV's dilation with that diamond
    (the same pixels, a twentieth of the time)."""
    import cv2

    side = np.arange(2 * px + 1) - px
    diamond = (np.abs(side)[:, None] + np.abs(side)[None, :] <= px).astype(np.uint8)
    out = cv2.dilate(np.ascontiguousarray(mask, np.uint8), diamond, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return out.astype(bool)


def _edge_energy(v: Version, where: np.ndarray) -> float:
    """The mean absolute Laplacian of ``v``'s detail view over ``where`` (the Laplacian kept on ``v``)."""
    if not where.any():
        return 0.0
    lap = _memo(v, "abs_laplace", lambda: abs_laplace(v.detail))
    return float(lap[where].mean())


def abs_laplace(g: np.ndarray) -> np.ndarray:
    """``np.abs(scipy.ndimage.laplace(g.astype(np.float32)))`` of a uint8 image, in integers (the edge
    pixel repeated past the border, as its ``reflect`` mode does): on grey levels every sum is an exact
    integer, so the values are the same, for a third of the time."""
    a = g.astype(np.int16)
    up, down = np.concatenate([a[:1], a[:-1]]), np.concatenate([a[1:], a[-1:]])
    left, right = np.concatenate([a[:, :1], a[:, :-1]], axis=1), np.concatenate([a[:, 1:], a[:, -1:]], axis=1)
    return np.abs(up + down + left + right - 4 * a).astype(np.float32)


def _unless_blurred(r: int, ex: float, ey: float, blur: float) -> int:
    """``r``, or 0 where its winner has under ``blur`` of the loser's edge energy outside the region: a
    blurred copy is smoother everywhere, so its region is no evidence of what was drawn."""
    return 0 if (r > 0 and ex < blur * ey) or (r < 0 and ey < blur * ex) else r


def unexplained(v: np.ndarray, mask: np.ndarray, sigma: float = 3.0, min_pixels: int = 20) -> float | None:
    """How far the pixels of ``v`` in ``mask`` are from what their unmasked surroundings predict: the mean
    absolute difference from the Gaussian-weighted mean (``sigma`` px) of the grey levels outside the mask,
    over the masked pixels that have such surroundings. Photographed detail mostly continues its
    surroundings; text, marks or a box drawn over a photo do not. None with too few such pixels."""
    around = _surroundings(mask, sigma, min_pixels)
    return None if around is None else _unexplained_in(v, around, sigma)


def _surroundings(mask: np.ndarray, sigma: float = 3.0, min_pixels: int = 20) -> tuple | None:
    """What :func:`unexplained` needs of the mask alone (the same for both versions of a pair): the unmasked
    pixels (float32), their Gaussian weight, and the masked pixels near them; None with too few of those.
    All on the mask's bounding box and the filter's reach around it (the rest is not read: the filtered
    values at the masked pixels are the same)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    reach = int(4.0 * sigma + 0.5) + 1  # gaussian_filter's radius (truncate 4), and one more
    box = (slice(max(0, rows[0] - reach), rows[-1] + 1 + reach), slice(max(0, cols[0] - reach), cols[-1] + 1 + reach))
    mask = mask[box]
    outside = (~mask).astype(np.float32)
    weight = _gaussian(outside, sigma)
    near = mask & (weight > 0.05)
    return None if near.sum() < min_pixels else (outside, weight, near, box)


def _unexplained_in(v: np.ndarray, around: tuple, sigma: float = 3.0) -> float:
    outside, weight, near, box = around
    f = v[box].astype(np.float32)
    predicted = _gaussian(f * outside, sigma)[near] / weight[near]
    return float(np.mean(np.abs(f[near] - predicted)))


def _gaussian(a: np.ndarray, sigma: float) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(a, sigma)`` of a float32 array (the same kernel, truncated at 4 sigma,
    and the same reflected border) by OpenCV's separable filter: a fifth of the time, within 1e-4 grey levels."""
    import cv2

    k = 2 * int(4.0 * sigma + 0.5) + 1
    return cv2.GaussianBlur(a, (k, k), sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def _continued(x: Version, y: Version, mask: np.ndarray, ratio: float = 3.0) -> int:
    """+1 where x's pixels in ``mask`` continue their surroundings and y's do not (:func:`unexplained`,
    ``ratio`` times x's, +1 grey level each): y was drawn on; -1 the other way; 0 for no clear difference."""
    around = _surroundings(mask)
    if around is None:
        return 0
    ux, uy = _unexplained_in(x.detail, around), _unexplained_in(y.detail, around)
    return 1 if uy + 1 > ratio * (ux + 1) else (-1 if ux + 1 > ratio * (uy + 1) else 0)


def _local_edit(x: Version, y: Version, margin: float = 0.25, blur: float = 0.4, fill: float = 0.9) -> int:
    """Two versions alike except in one region (an overlay, a caption, a watermark, a pasted patch): the one
    whose pixels there look drawn (:func:`synthetic_share`, clearly more) was edited; the other wins, unless
    it is the blurred one (:func:`_unless_blurred`: a photo's own dark and bright texture looks drawn too),
    or the loser's region is not a fill (``fill`` of it drawn-looking) and continues its surroundings where
    the winner's does not (:func:`_continued`: white text on a dark photo, whose near-black looks drawn)."""
    region = _region(x, y)
    if region is None:
        return 0
    mask, ex, ey = region
    sx, sy = synthetic_share(x.detail[mask]), synthetic_share(y.detail[mask])
    r = _unless_blurred(1 if sy > sx + margin else (-1 if sx > sy + margin else 0), ex, ey, blur)
    if r and (sy if r > 0 else sx) < fill and _continued(x, y, mask) == -r:
        return 0  # :func:`_drawn_on` decides
    return r


def _drawn_on(x: Version, y: Version, blur: float = 0.4, ratio: float = 3.0) -> int:
    """Two versions alike except in one region where one of them does not continue its surroundings
    (:func:`_continued`): that one was drawn on (thin watermark text, a caption over a pale or dark
    photo, which :func:`_local_edit`'s drawn-looking levels miss) and the other wins, unless it is the
    blurred one (:func:`_unless_blurred`). A filled patch is :func:`_local_edit`'s: its unmasked edge predicts it."""
    region = _region(x, y)
    if region is None:
        return 0
    mask, ex, ey = region
    return _unless_blurred(_continued(x, y, mask, ratio), ex, ey, blur)


def edge_energy(v: Version) -> float:
    """The mean absolute Laplacian of ``v``'s whole detail view (kept on it: several pairs ask)."""
    if v.energy is None:
        v.energy = _edge_energy(v, np.ones(v.detail.shape, bool)) if v.detail is not None else 0.0
    return v.energy


def _clip_rule(x: Version, y: Version, blur: float = 0.4) -> int:
    """Aligned versions, one pure white or black where the other has detail (:func:`clipped_detail`): that
    one lost it and the other wins, unless the other is the blurred one (:func:`_unless_blurred` on the
    whole detail views): a blur spreads a photo's own clipped highlights into their surroundings, which
    looks like detail there (a blur of 3 px won so in 4 of 40 photos; a brightened copy keeps 0.5-1.5 of
    the photo's edge energy, a blurred one of 1.5 px 0.05-0.56, of 3 px 0.02-0.30)."""
    if not aligned(x, y):
        return 0
    lost_x = clipped_detail(x.view, y.view, masks=_memo(x, "clipped", lambda: clipped_areas(x.view)))
    lost_y = clipped_detail(y.view, x.view, masks=_memo(y, "clipped", lambda: clipped_areas(y.view)))
    r = int(lost_y) - int(lost_x)
    return _unless_blurred(r, edge_energy(x), edge_energy(y), blur) if r else 0


# A vignette (:func:`_vignetted`): the change of the tone gain from the centre to the corners, as a share of
# the gain, and the share of what a tone fit alone leaves that the radial term explains. Read off the edit-chain
# corpora's vignette family (seeds 0 and 1) and every (original, copy) pair of ten stored runs
# (docs/how-it-decides.md, "vignetted").
VIGNETTE_SLOPE, VIGNETTE_FIT = 0.25, 0.9


def _vignetted(x: Version, y: Version, cells: int = 12) -> int:
    """One of two versions of one frame (detail views of one size) is the other darkened toward its corners,
    a vignette as photo filters add: on a ``cells`` x ``cells`` grid of the views' mean grey levels, the
    other's cells fitted as ``a + b g + c r2 g`` (``g`` the first's cell, ``r2`` the cell's squared distance
    from the centre, 1 at a corner; the mirror image tried too), where the radial term explains
    :data:`VIGNETTE_FIT` of what the tone fit alone (``a + b g``) leaves and the gain falls by
    :data:`VIGNETTE_SLOPE` of ``b`` or more from the centre to the corners, the darkened one was vignetted and
    the other wins. A lens darkens an original's corners in both versions alike; a copy with its corners
    lightened would read the other way (rare: filters darken them)."""
    if x.detail is None or y.detail is None or x.detail.shape != y.detail.shape or x.f.get("digest") == y.f.get("digest"):
        return 0
    gx, gy = _cells(x, cells), _cells(y, cells)
    c = (np.arange(cells) + 0.5) / cells * 2 - 1
    r2 = ((c[None, :] ** 2 + c[:, None] ** 2) / 2).ravel()
    fits = [f for f in (_radial_gain(gx.ravel(), gy.ravel(), r2), _radial_gain(gx.ravel(), gy[:, ::-1].ravel(), r2)) if f]
    if not fits:
        return 0
    slope, explained = max(fits, key=lambda f: f[1])
    if explained < VIGNETTE_FIT or abs(slope) < VIGNETTE_SLOPE:
        return 0
    return 1 if slope < 0 else -1


def _cells(v: Version, cells: int) -> np.ndarray:
    """``v``'s detail view's mean grey levels on a ``cells`` x ``cells`` grid (float32), made once per version."""
    import cv2

    return _memo(v, ("cells", cells), lambda: cv2.resize(v.detail.astype(np.float32), (cells, cells), interpolation=cv2.INTER_AREA))


def _radial_gain(gx: np.ndarray, gy: np.ndarray, r2: np.ndarray, min_gain: float = 0.3) -> tuple[float, float] | None:
    """(``c / b``, the share of the tone fit's squared error the radial term takes away) of ``gy`` fitted as
    ``a + b gx + c r2 gx`` over the cells not near black; None where under half the cells count or the tone gain
    ``b`` is under ``min_gain`` (the two do not correspond)."""
    ok = (gx > 20) & (gy > 5)
    if ok.sum() < len(gx) / 2:
        return None
    tone = np.stack([np.ones(ok.sum()), gx[ok]], 1)
    full = np.column_stack([tone, r2[ok] * gx[ok]])
    errors, coef = [], None
    for a in (tone, full):
        coef, *_ = np.linalg.lstsq(a, gy[ok], rcond=None)
        errors.append(float(((gy[ok] - a @ coef) ** 2).sum()))
    if coef[1] < min_gain:
        return None
    return float(coef[2] / coef[1]), 1.0 - errors[1] / max(errors[0], 1e-9)
