"""The policy that says which image of a cluster is kept (no Ray; stage `canonical` runs it).

Two policies, ``--canonical``:

* ``quality`` (the default): the best version, by evidence from the images themselves. Every two
  candidates are compared by :data:`RULES`, in order; the first rule that sees a clear difference decides
  the pair (a rule with no clear difference passes to the next). The candidate that wins the most pairs
  is kept; a tie goes to the ``largest`` order. Candidates are the cluster's images that are near copies of
  every other one in it (for a cluster formed around one image, often all of them), so the cluster stays
  the same and every removed image is still a copy of the kept one. The rules and why each is where it is
  are in the README ("Which image is kept").
* a comma list of keys, applied in order, each breaking the previous one's ties: ``pixels`` (more pixels
  first), ``bytes`` (larger file first), ``path`` (path order). ``largest`` is ``pixels,bytes,path``, the
  policy before ``quality`` existed.

The chaining guard (:mod:`dedup.ops.graph`) forms clusters in the ``largest`` order (:func:`policy_rank`)
under either policy; path order is always the last tie-break, so every choice is deterministic.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dedup.ops.quality import LATTICE_SIDE, Lattice

LARGEST = "pixels,bytes,path"
KEYS = ("pixels", "bytes", "path")
POLICIES = {"largest": LARGEST}


def policy_rank(keys: list[str], pixels: np.ndarray, nbytes: np.ndarray, path_order: np.ndarray) -> np.ndarray:
    columns = {
        "pixels": -np.asarray(pixels, np.int64),
        "bytes": -np.asarray(nbytes, np.int64),
        "path": np.asarray(path_order, np.int64),
    }
    sort_keys = [columns[k] for k in keys] + [columns["path"]]
    order = np.lexsort(tuple(reversed(sort_keys)))  # lexsort's last key is the primary one
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank


def per_vid(files: pd.DataFrame, meta: pd.DataFrame, n: int) -> dict[str, np.ndarray]:
    """The policy's inputs per vid: ``pixels`` (from the decoded metadata) and ``bytes`` (the file size)."""
    pixels = np.zeros(n, np.int64)
    nbytes = np.zeros(n, np.int64)
    if n:
        m = meta.set_index("vid")
        idx = m.index.to_numpy(np.int64)
        pixels[idx] = m["width"].to_numpy(np.int64) * m["height"].to_numpy(np.int64)
        ok = files[files["vid"].notna()]
        nbytes[ok["vid"].to_numpy(np.int64)] = ok["bytes"].to_numpy(np.int64)
    return {"pixels": pixels, "bytes": nbytes}


def rank_vids(keys: list[str], files: pd.DataFrame, meta: pd.DataFrame, n: int) -> np.ndarray:
    """Each vid's place in a key list's order (vids are numbered in path order, see `plan`)."""
    v = per_vid(files, meta, n)
    return policy_rank(keys, v["pixels"], v["bytes"], np.arange(n))


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
    from scipy.ndimage import gaussian_filter

    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    reach = int(4.0 * sigma + 0.5) + 1  # gaussian_filter's radius (truncate 4), and one more
    box = (slice(max(0, rows[0] - reach), rows[-1] + 1 + reach), slice(max(0, cols[0] - reach), cols[-1] + 1 + reach))
    mask = mask[box]
    outside = (~mask).astype(np.float32)
    weight = gaussian_filter(outside, sigma)
    near = mask & (weight > 0.05)
    return None if near.sum() < min_pixels else (outside, weight, near, box)


def _unexplained_in(v: np.ndarray, around: tuple, sigma: float = 3.0) -> float:
    from scipy.ndimage import gaussian_filter

    outside, weight, near, box = around
    f = v[box].astype(np.float32)
    predicted = gaussian_filter(f * outside, sigma)[near] / weight[near]
    return float(np.mean(np.abs(f[near] - predicted)))


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


def _native(v: Version) -> float:
    return min(v.f["native_x"], v.f["native_y"])


def _resampled(x: Version, y: Version, margin: float = 0.04) -> int:
    """Two images of the same size (within 3 %), one with clearly less detail at its own pixel scale: that
    one was resampled (a zoomed re-framing, a rotation, a blur, a heavy JPEG): the other wins."""
    if not 0.97 <= x.f["pixels"] / max(y.f["pixels"], 1) <= 1 / 0.97:
        return 0
    d = _native(x) - _native(y)
    return 1 if d > margin else (-1 if d < -margin else 0)


def _stretched(x: Version, y: Version, longer: float = 1.08, same: float = 0.02, margin: float = 0.02,
               anisotropy: float = 0.01) -> int:
    """One image longer (by ``longer`` or more) along one axis only, with less detail at its own pixel scale
    along that axis (by ``margin``), and more so than along its other axis (by ``anisotropy``, against the
    other image's own balance): stretched from the other, which wins. A crop along one axis keeps its
    detail; a stretch interpolates it (a drop of 0.04-0.2 at 1.25-1.6x)."""
    for axis, other, nat, onat in (("width", "height", "native_x", "native_y"), ("height", "width", "native_y", "native_x")):
        for big, small, sign in ((x, y, -1), (y, x, 1)):
            if abs(big.f[other] / max(small.f[other], 1) - 1) <= same and big.f[axis] >= small.f[axis] * longer:
                drop = small.f[nat] - big.f[nat]
                unbalanced = (big.f[onat] - big.f[nat]) - (small.f[onat] - small.f[nat])
                if drop > margin and unbalanced > anisotropy:
                    return sign
    return 0


def _bigger(x: Version, y: Version) -> tuple[Version, Version, int] | None:
    """(the larger, the smaller, -1 if the larger is x else +1), or None within 3 % of each other."""
    if x.f["pixels"] > y.f["pixels"] / 0.97:
        return x, y, -1
    if y.f["pixels"] > x.f["pixels"] / 0.97:
        return y, x, 1
    return None


def _enlarged(x: Version, y: Version, margin: float = 0.06) -> int:
    """The larger image has clearly less detail at its own pixel scale: it was enlarged from the other.
    ``margin``: measured on photos made 1.25-2x larger and 0.8-0.3x smaller (``dedup bench
    --canonical-study``): at 0.06 it catches 53-85 % of the enlargements and calls 0-7 % of the downscales
    enlarged (at 0.04: 80-90 % and 3-15 %)."""
    pair = _bigger(x, y)
    return pair[2] if pair and _native(pair[1]) - _native(pair[0]) > margin else 0


def _colour(x: Version, y: Version) -> int:
    cx, cy = x.f["colourfulness"], y.f["colourfulness"]
    return (1 if cx > cy else -1) if min(cx, cy) < 3 and max(cx, cy) > 8 else 0


def _poor_jpeg(x: Version, y: Version) -> int:
    """A heavily compressed JPEG loses (a lossy WebP's ``jpeg_quality`` of 100 says nothing of its
    compression: no decision against one)."""
    if x.f.get("lossy") or y.f.get("lossy"):
        return 0
    qx, qy = x.f["jpeg_quality"], y.f["jpeg_quality"]
    return (1 if qx > qy else -1) if min(qx, qy) < 70 and abs(qx - qy) >= 10 else 0


def _flat(x: Version, y: Version) -> int:
    fx, fy = x.f["flat"], y.f["flat"]
    return -_more(fx, fy, 1.5) if abs(fx - fy) > 0.01 else 0


def lattice_score(coarse: Lattice, fine: Lattice, min_step: float = 4.0, min_ratio: float = 1.5,
                  min_count: int = 200) -> float | None:
    """How much the finer JPEG's luma coefficients sit on the coarser one's quantisation lattice: 1 when
    every one is within its own rounding of a lattice point (``fine`` was re-saved from ``coarse``, after
    at most a linear tone change, whose factor is fitted), about 0 for coefficients spread evenly (no
    relation, or ``coarse`` made from ``fine``: a coarser re-save keeps no trace of the finer lattice).
    Only at frequencies where the coarser step is ``min_step`` or more and ``min_ratio`` times the finer,
    on the coefficients that are not zero in the coarser file. None where the two cannot be compared (other
    sizes, too few coefficients, no linear relation)."""
    if coarse.size != fine.size or coarse.coef.shape != fine.coef.shape:
        return None
    sel = (coarse.q >= min_ratio * fine.q) & (coarse.q >= min_step)
    x, y = coarse.coef[:, sel] / 16.0, fine.coef[:, sel] / 16.0
    step, fine_step = np.broadcast_to(coarse.q[sel], x.shape), np.broadcast_to(fine.q[sel], x.shape)
    nonzero = np.abs(x) >= 0.5 * step
    if nonzero.sum() < min_count:
        return None
    x, y, step, fine_step = x[nonzero], y[nonzero], step[nonzero], fine_step[nonzero]
    a = float((x * y).sum() / (x * x).sum())  # the tone edit's contrast factor (1 for none)
    if not 0.3 < a < 3:
        return None
    tol = fine_step / (2 * a) + 0.5  # the finer file's own rounding, and the decoder's
    expected = float(np.minimum(1.0, 2 * tol / step).mean())  # within tol by chance
    if expected > 0.9:
        return None
    return (float(np.mean(np.abs(y / a - x) <= tol)) - expected) / (1 - expected)


def _requantized(x: Version, y: Version, min_score: float = 0.5) -> int:
    """Two JPEGs of one size: the finer one whose coefficients keep the coarser one's lattice
    (:func:`lattice_score` over ``min_score``) was re-saved from it at a higher quality, and the coarser
    wins (a higher quality setting does not bring back what the first save lost)."""
    if x.lattice is None or y.lattice is None or x.f["jpeg_quality"] == y.f["jpeg_quality"]:
        return 0
    coarse, fine, sign = (x, y, 1) if x.f["jpeg_quality"] < y.f["jpeg_quality"] else (y, x, -1)
    score = lattice_score(coarse.lattice, fine.lattice)
    return sign if score is not None and score > min_score else 0


# The seven ways to turn or mirror an image other than leaving it: (transposed, rows reversed, columns reversed).
TURNS = tuple((t, r, c) for t in (False, True) for r in (False, True) for c in (False, True) if (t, r, c) != (False, False, False))


def turned_square(src: Lattice, other: Lattice, turn: tuple[bool, bool, bool]) -> np.ndarray | None:
    """``other``'s luma turned or mirrored by ``turn`` (:data:`TURNS`) into ``src``'s frame, over ``src``'s
    lattice square; None where the turned image is not ``src``'s size or its stored luma does not cover it."""
    transpose, rows, cols = turn
    (w, h), (ow, oh) = src.size, other.size
    if ((oh, ow) if transpose else (ow, oh)) != (w, h) or src.luma is None or other.luma is None:
        return None
    side_h, side_w = min(h - src.origin[0], LATTICE_SIDE), min(w - src.origin[1], LATTICE_SIDE)
    i, j = np.arange(side_h) + src.origin[0], np.arange(side_w) + src.origin[1]
    i, j = (h - 1 - i if rows else i), (w - 1 - j if cols else j)  # in the transposed or plain other
    r, c = (j, i) if transpose else (i, j)  # in other's own pixels
    r, c = r - other.origin[0], c - other.origin[1]
    if r.min() < 0 or c.min() < 0 or r.max() >= other.luma.shape[0] or c.max() >= other.luma.shape[1]:
        return None
    block = other.luma[_span(r), _span(c)]  # r and c run by +1 or -1: a view, not a copy
    return block.T if transpose else block


def _span(idx: np.ndarray) -> slice:
    """The slice that takes the indices ``idx`` (consecutive, rising or falling)."""
    step = 1 if len(idx) < 2 or idx[1] > idx[0] else -1
    stop = int(idx[-1]) + step
    return slice(int(idx[0]), stop if stop >= 0 else None, step)


def lattice_coherence(src: Lattice, coef: np.ndarray, min_step: float = 4.0, min_count: int = 200) -> float | None:
    """How much ``coef`` (another image's DCT on ``src``'s blocks, :func:`dedup.ops.quality.block_dct`) sits
    on ``src``'s quantisation lattice, after a fitted contrast factor: the length of the mean of
    exp(2 pi i c / step) over the coefficients not zero in ``src`` where its step is ``min_step`` or more
    (1: every one on a lattice point; near 0: spread over the steps). None where too few to say."""
    x = src.coef.astype(np.float32) / 16.0
    if coef.shape != x.shape:
        return None
    sel = src.q >= min_step
    step = np.broadcast_to(src.q[sel], x[:, sel].shape)
    x, y = x[:, sel], coef[:, sel]
    nonzero = np.abs(x) >= 0.5 * step
    if nonzero.sum() < min_count:
        return None
    x, y, step = x[nonzero], y[nonzero], step[nonzero]
    a = float((x * y).sum() / (x * x).sum())
    if not 0.3 < a < 3:
        return None
    return float(np.abs(np.exp(2j * np.pi * (y / a) / step).mean()))


def turned_from(src: Lattice, other: Lattice, min_corr: float = 0.5) -> float:
    """How much ``other``, turned or mirrored back into ``src``'s frame (the turn of :data:`TURNS` whose
    pixels correlate best with ``src``'s, ``min_corr`` at least, and better than ``other`` as it is), keeps
    ``src``'s JPEG lattice (:func:`lattice_coherence`); 0 where no turn matches or it cannot be said."""
    from dedup.ops.quality import block_dct

    own = src.luma[:LATTICE_SIDE, :LATTICE_SIDE].astype(np.float32) if src.luma is not None else None
    best, square = min_corr, None
    for turn in ((False, False, False), *TURNS):
        t = turned_square(src, other, turn)
        if t is not None and t.shape == own.shape:
            c = float(np.corrcoef(own.ravel()[::3], t.astype(np.float32).ravel()[::3])[0, 1])
            if c > best:
                best, square = c, (t if turn in TURNS else None)
    if square is None:
        return 0.0  # no turn matches, or leaving it matches best (a symmetric picture, not a turned copy)
    return lattice_coherence(src, block_dct(square.astype(np.float32))) or 0.0


def _reoriented(x: Version, y: Version, margin: float = 0.2, min_score: float = 0.3) -> int:
    """Two JPEGs, one a mirror image or a quarter or half turn of the other: the one whose pixels, turned
    back, keep the other's quantisation lattice (:func:`turned_from`, over ``min_score`` and ``margin``
    more than the other way) was made from its decoded pixels, and the other wins. (The same frame is
    :func:`_requantized`'s; a turn hides no lattice in the source, a re-save keeps the source's.)"""
    if x.lattice is None or y.lattice is None:
        return 0
    made_y, made_x = turned_from(x.lattice, y.lattice), turned_from(y.lattice, x.lattice)
    return 1 if made_y - made_x > margin and made_y > min_score else (-1 if made_x - made_y > margin and made_x > min_score else 0)


def tone_distance(x: Version, y: Version) -> float:
    """The mean difference of the two tones (:func:`dedup.ops.quality.tone_levels`), 0-1."""
    return float(np.abs(x.tone - y.tone).mean() / 255.0) if x.tone is not None and y.tone is not None else 0.0


def set_spread(versions: list[Version], sims: np.ndarray | None, same_sim: float = 0.98, same_tone: float = 0.005) -> None:
    """Each version's ``spread`` where a cluster holds three or more distinct versions: its mean distance
    to the others, a distance being the descriptor's (1 - similarity, ``sims``) plus the tone distance
    (:func:`tone_distance`). The source of a cluster's copies is one edit from each of them and two copies
    are two edits apart, so the source is the most central. Versions that are nearly one image
    (similarity ``same_sim`` or more, tones within ``same_tone``: re-encodes of one version; the
    thresholds' trade is in ``dedup bench --canonical-study``) count as one group, so that re-posts of one edited copy do not make it the centre:
    the distance to a group is the mean over its members, and with fewer than three groups there is no
    spread (two versions are equally central)."""
    n = len(versions)
    for v in versions:
        v.f.pop("spread", None)
    if sims is None or n < 3:
        return
    tone = np.array([[tone_distance(x, y) for y in versions] for x in versions])
    d = 1.0 - np.asarray(sims, np.float64) + tone
    np.fill_diagonal(d, 0.0)
    group = np.arange(n)
    for i in range(n):
        for j in range(i + 1, n):
            if sims[i, j] >= same_sim and tone[i, j] <= same_tone:
                group[group == group[j]] = group[i]
    labels = np.unique(group)
    if len(labels) < 3:
        return
    for i, v in enumerate(versions):
        v.f["spread"] = round(float(np.mean([d[i, group == g].mean() for g in labels if g != group[i]])), 5)


def _central(x: Version, y: Version, margin: float = 0.01) -> int:
    """The version clearly closer to all the others (a smaller ``spread``, :func:`set_spread`) wins."""
    if "spread" not in x.f or "spread" not in y.f:
        return 0
    d = y.f["spread"] - x.f["spread"]
    return 1 if d > margin else (-1 if d < -margin else 0)


def _same_pixels(x: Version, y: Version) -> int:
    """The same decoded pixels in a lossless file and a JPEG: the lossless file was saved from the JPEG."""
    return (y.f["lossless"] - x.f["lossless"]) if x.f["digest"] == y.f["digest"] else 0


def jpeg_kept_in(src: Version, other: Version) -> float | None:
    """How much ``other`` (a file of another format, of ``src``'s size) keeps the JPEG ``src``'s
    quantisation lattice in its luma (:func:`lattice_coherence` on ``src``'s square); None where the two
    cannot be compared."""
    from dedup.ops.quality import block_dct

    if src.lattice is None or other.luma is None or src.lattice.luma is None:
        return None
    own = src.lattice.luma[:LATTICE_SIDE, :LATTICE_SIDE]
    if src.lattice.size != (other.f["width"], other.f["height"]) or other.luma.shape != own.shape:
        return None
    coef = _memo(other, "luma_dct", lambda: block_dct(other.luma.astype(np.float32)))
    return None if coef is None else lattice_coherence(src.lattice, coef)


def _saved_from_jpeg(x: Version, y: Version, min_score: float = 0.5) -> int:
    """A JPEG and a file of another format (PNG, WebP...) of its size whose luma keeps the JPEG's lattice
    (:func:`jpeg_kept_in` over ``min_score``): that file was saved from the JPEG's decoded pixels (by
    another decoder, or lossily at a high quality), and the JPEG wins. A JPEG made from the other file has
    its own lattice, which the other file's unquantised coefficients do not keep: they give about what
    phases spread by chance give (0.00-0.09 measured for JPEGs at quality 75-95 made from PNGs and WebPs;
    0.6-0.86 for PNGs saved from a JPEG's pixels with +-1 decoder noise, 0.2-0.7 for WebPs at quality 95).
    ``min_score`` is also above what a JPEG made from a PNG that was itself a decoded JPEG of another
    quality finds (their lattices share points: 0.37 for 95 from 92); a lossy WebP it leaves undecided
    falls to :func:`_jpeg_format`."""
    for src, other, sign in ((x, y, 1), (y, x, -1)):
        score = jpeg_kept_in(src, other)
        if score is not None and score > min_score:
            return sign
    return 0


def _is_jpeg(v: Version) -> bool:
    return not v.f.get("lossless", 0) and not v.f.get("lossy", 0)


def _jpeg_format(x: Version, y: Version) -> int:
    """A JPEG over a lossy file of another format (a lossy WebP): when no evidence told them apart, the
    lossy re-encode for the web was made from the JPEG, the original format (its ``jpeg_quality`` of 100
    says nothing: it is not a JPEG)."""
    jx, jy = _is_jpeg(x), _is_jpeg(y)
    return (1 if jx else -1) if jx != jy and (x.f.get("lossy") or y.f.get("lossy")) else 0


def reencode_close(a: np.ndarray, b: np.ndarray, mean: float = 4.0, tail: float = 20.0, share: float = 0.001) -> bool:
    """Two grey views of one size differ as a lossy re-encode of one image differs from it: by ``mean``
    grey levels or less on average and by more than ``tail`` at under ``share`` of the pixels. Measured
    on detail views of 50 photos against their WebP re-saves at quality 75 and 95: mean 0.5-3.9, the
    99.9th percentile 2-18; a blur of 1 px: 20-118, of 1.5 px 32-138; 10 % brighter or 20 % more
    contrast: 21-31; a caption: up to 186."""
    if a.shape != b.shape:
        return False
    d = np.abs(a.astype(np.int16) - b.astype(np.int16)).ravel()
    counts = np.bincount(d, minlength=256)
    return float(counts @ np.arange(len(counts))) / d.size <= mean and counts[int(tail) + 1:].sum() <= share * d.size


def _lossy_copy(x: Version, y: Version) -> int:
    """A JPEG and a lossy file of another format (a WebP) of one size whose pixels differ only as a lossy
    re-encode does (:func:`reencode_close`): the other file is a re-encode of the JPEG, which wins (before
    the rules that read compression's side effects, the flat blocks a JPEG makes of faint texture, as
    edits)."""
    r = _jpeg_format(x, y)
    if not r or x.detail is None or y.detail is None or (x.f["width"], x.f["height"]) != (y.f["width"], y.f["height"]):
        return 0
    return r if reencode_close(x.detail, y.detail) else 0


def _framed(x: Version, y: Version) -> int:
    """Two versions whose pictures register (:mod:`dedup.ops.lineage`), one of them the other's picture with
    something added around it or put in a new frame (pad, letterbox, meme card, caption bar, canvas,
    screenshot, the filled corners of a rotation or a perspective warp): the edge of the other's frame in it
    is a step the picture does not make (:func:`dedup.ops.lineage.added_to`), and the other wins. Versions
    closely aligned (:func:`aligned` within 0.1 standard deviations at the median pixel: re-encodes, tone
    edits, overlays; a 20 degree turn of a photo with a plain sky gives 0.17) have no extra and are not
    registered (the cost)."""
    from dedup.ops.lineage import added_to

    if x.detail is None or y.detail is None or x.f.get("digest") == y.f.get("digest") or aligned(x, y, 0.1):
        return 0
    return added_to(x, y)


def _recompressed(x: Version, y: Version, step: int = 10) -> int:
    """Two JPEGs of one size whose pixels differ only as a re-encode does (:func:`reencode_close`), one
    saved at a clearly lower quality (``step`` below, :func:`_poor_jpeg`'s) and not re-saved from the
    other at that quality (:func:`_requantized` finds no lattice): the lower one is a re-save of the other,
    which wins (before :func:`_central`: a re-save is as close to the others as its source)."""
    if not (_is_jpeg(x) and _is_jpeg(y)) or x.detail is None or y.detail is None or \
            (x.f["width"], x.f["height"]) != (y.f["width"], y.f["height"]) or abs(x.f["jpeg_quality"] - y.f["jpeg_quality"]) < step:
        return 0
    if _requantized(x, y) or not reencode_close(x.detail, y.detail):
        return 0
    return 1 if x.f["jpeg_quality"] > y.f["jpeg_quality"] else -1


Rule = tuple[str, Callable[[Version, Version], int]]
# +1: the first version is better, -1: the second, 0: no clear difference (the next rule decides). In order of
# how sure each is: a contradiction between two decisions is settled for the rule higher in the list.
RULES: list[Rule] = [
    ("same_pixels", _same_pixels),  # a lossless re-save of the JPEG: the JPEG is the source
    ("saved_from_jpeg", _saved_from_jpeg),  # a PNG or WebP whose luma keeps a JPEG's lattice was saved from it
    ("lossy_copy", _lossy_copy),  # a lossy WebP with the JPEG's pixels but for compression noise: made from it
    ("framed", _framed),  # the other's picture with a frame, pad, card, canvas or fill added around it
    ("local_edit", _local_edit),  # alike but in one region, drawn on in one of them (caption, watermark, patch)
    ("drawn_on", _drawn_on),  # alike but in one region, which in one of them does not continue its surroundings
    ("recompressed", _recompressed),  # a JPEG re-saved at a clearly lower quality, nothing else changed
    ("central", _central),  # three or more distinct versions: the one closest to all the others is their source
    ("reoriented", _reoriented),  # a mirrored or turned JPEG that keeps the other's lattice was made from it
    ("clipped_detail", _clip_rule),  # aligned pairs: lost highlights or shadows (brightened, captioned)
    ("resampled", _resampled),  # same size, less native detail (zoomed re-framing, rotation, blur)
    ("stretched", _stretched),  # longer along one axis, interpolated along it
    ("enlarged", _enlarged),  # more pixels, but interpolated ones
    ("picture", lambda x, y: _more(x.f["picture_pixels"], y.f["picture_pixels"], 1.04)),  # more picture (crops, downscales, borders)
    ("colour", _colour),  # colour over a grey version
    ("requantized", _requantized),  # a finer JPEG that keeps a coarser one's lattice was re-saved from it
    ("jpeg_quality", _poor_jpeg),  # a heavily compressed JPEG loses
    ("flat", _flat),  # more textureless area: a pasted patch or box
    ("sharpness", lambda x, y: _more(x.f["sharpness"], y.f["sharpness"], 1.5)),  # blurred
    ("camera", lambda x, y: int(np.sign(x.f["camera"] - y.f["camera"]))),  # the camera's EXIF kept
    ("jpeg_format", _jpeg_format),  # a JPEG over a lossy re-encode in another format (WebP)
    ("jpeg_quality_exact", lambda x, y: int(np.sign(x.f["jpeg_quality"] - y.f["jpeg_quality"]))),
]
RULE_NAMES = tuple(name for name, _ in RULES)

# What each rule says about the kept image, in plain words (the manifest's ``kept_because``; ``kept_rule``
# keeps the names). ``{other}``: "the other" in a cluster of two, else "another".
PLAIN = {
    "same_pixels": "{other} is a lossless re-save of it",
    "saved_from_jpeg": "{other} was saved from it in another format (its pixels keep this JPEG's compression)",
    "lossy_copy": "{other} is a lossy re-encode of it in another format (WebP)",
    "jpeg_format": "it is the JPEG and {other} a lossy re-encode in another format (WebP)",
    "framed": "{other} is this picture put in a frame, with a pad, a card, a caption bar or a canvas added around it, or warped with filled corners",
    "local_edit": "{other} has something drawn on it (caption, watermark, patch)",
    "drawn_on": "{other} has something drawn on it (caption, watermark, patch)",
    "recompressed": "{other} is a re-save of it at a lower JPEG quality",
    "central": "it is the version closest to all the others (they are edits of it)",
    "reoriented": "{other} is a mirrored or turned re-save of it",
    "clipped_detail": "{other} lost highlights or shadows (brightened, more contrast or a pasted box)",
    "resampled": "{other} is resampled (zoomed, rotated or blurred)",
    "stretched": "{other} is stretched",
    "enlarged": "{other} is an enlargement of it",
    "picture": "{other} is a crop or a smaller version of it",
    "colour": "{other} is greyscale",
    "requantized": "{other} is a re-save of it at a higher JPEG quality",
    "jpeg_quality": "{other} is a more compressed JPEG",
    "flat": "{other} has flat areas added (a border or a box)",
    "sharpness": "{other} is blurred",
    "camera": "it keeps the camera's EXIF",
    "grain": "{other}'s grain differs (smoothed by a resize or a re-save, or noise added)",
    "hues": "{other}'s hues differ (a colour filter or a tint)",
    "detail": "{other}'s detail differs (blurred, sharpened or resampled)",
    "colourfulness": "{other}'s colours are weaker or stronger (a saturation or colour edit)",
    "format": "{other} is a re-save in another file format",
    "jpeg_quality_exact": "{other} is a more compressed JPEG",
    "largest": "largest (no evidence told them apart)",
    "largest (versions unreadable)": "largest (the other versions could not be read)",
    "byte-identical": "identical files: the oldest (then the shallowest path, then the name)",
}


def in_words(why: str, cluster_size: int = 2) -> str:
    """``why`` (rule names, most used first, as :func:`choose` gives them) in plain words."""
    other = "the other" if cluster_size <= 2 else "another"
    words = []
    for name in (w.strip() for w in why.split(",") if w.strip()):
        text = PLAIN.get(name, name).format(other=other)
        if text not in words:
            words.append(text)
    return "; ".join(words) if words else why


def compare(x: Version, y: Version, rules: list[Rule] | None = None) -> tuple[int, str | None]:
    """(+1 / -1 / 0, the rule that decided) for two versions of one image, by ``rules`` (:data:`RULES`)."""
    for name, rule in RULES if rules is None else rules:
        r = rule(x, y)
        if r:
            return int(r), name
    return 0, None


def choose(versions: list[Version], sims: np.ndarray | None = None, rules: list[Rule] | None = None,
           spread: dict | None = None, model: dict | None = None) -> tuple[int, str]:
    """(index of the version kept, why), by ranked pairs: every two versions compared, the decisions taken
    surest first, each one kept unless it contradicts those already kept (a cycle: A over B, B over C, C
    over A). With ``model`` (by default :func:`dedup.ops.evidence.load_model`'s): the forensic rules and
    the rules of direct evidence first (:func:`_by_model`), then the model's decisions, the largest scores first;
    with ``rules`` (such as :data:`RULES`; the canonical study passes others): their decisions, in their order.
    ``sims``: the versions' descriptor similarities, n x n, for :func:`set_spread` (with ``spread``'s
    keywords). The kept version is one that no kept decision puts another over; of several, the first in
    the largest order. Why: the rules of the decisions it won, most used first (``largest`` when none)."""
    if rules is None and model is None:
        from dedup.ops.evidence import load_model

        model = load_model()
    set_spread(versions, sims, **(spread or {}))
    decided = _by_model(versions, model) if model is not None else _by_rules(versions, rules)
    n = len(versions)
    over = np.zeros((n, n), bool)  # over[w, l]: w is kept over l, directly or through others
    by: list[Counter] = [Counter() for _ in versions]
    for _, (w, lose), name in sorted(decided, key=lambda d: d[0]):
        if over[lose, w]:
            continue  # contradicts surer decisions
        over[w, lose] = True
        by[w][name] += 1
        into, out_of = over[:, w].copy(), over[lose].copy()
        into[w], out_of[lose] = True, True
        over[np.ix_(into, out_of)] = True  # everything over w is now over everything lose is over
    free = [i for i in range(n) if not over[:, i].any()]
    best = min(free, key=lambda i: versions[i].rank)
    why = ", ".join(name for name, _ in by[best].most_common()) or "largest"
    return best, why


def _by_rules(versions: list[Version], rules: list[Rule]) -> list[tuple]:
    """(strength key, (winner, loser), rule) for every two versions a rule of ``rules`` decides."""
    names = [name for name, _ in rules]
    decided = []
    for i in range(len(versions)):
        for j in range(i + 1, len(versions)):
            r, name = compare(versions[i], versions[j], rules)
            if r:
                decided.append(((names.index(name),), (i, j) if r > 0 else (j, i), name))
    return decided


def _by_model(versions: list[Version], model: dict) -> list[tuple]:
    """(strength key, (winner, loser), evidence) for every two versions: the decision of a forensic rule or
    a rule of direct evidence where one holds (:data:`dedup.ops.evidence.FORENSIC`, then
    :data:`dedup.ops.evidence.SURE`, in order), else the model's (:func:`dedup.ops.evidence.score`), surer
    for a larger score."""
    from dedup.ops.evidence import FORENSIC, SURE, score

    rules = dict(RULES)
    sure = [(name, rules[name]) for name in FORENSIC + SURE]
    decided = []
    for i in range(len(versions)):
        for j in range(i + 1, len(versions)):
            r, name = compare(versions[i], versions[j], sure)
            if r:
                decided.append(((0, (FORENSIC + SURE).index(name)), (i, j) if r > 0 else (j, i), name))
                continue
            s, name = score(versions[i], versions[j], model, known=dict.fromkeys(SURE, 0))  # none of them decided
            if s:
                decided.append(((1, -abs(s)), (i, j) if s > 0 else (j, i), name))
    return decided
