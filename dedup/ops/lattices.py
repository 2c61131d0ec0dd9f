"""Evidence from JPEG compression (no Ray; rules of :mod:`dedup.ops.canonical`): a file that keeps another
JPEG's own decoded pixels or quantisation lattice was made from it (a lossless or lossy re-save in another
format, a re-save at another quality, a mirrored or turned re-save), and a clearly lower-quality re-save of
the same pixels loses."""
from __future__ import annotations

import numpy as np

from dedup.ops.quality import LATTICE_SIDE, Lattice
from dedup.ops.versions import Version, _memo, _pair_memo


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
    coef, q = coarse.coef[:, sel], coarse.q[sel]
    rows, cols = np.nonzero(np.abs(coef.astype(np.int32)) >= 8 * q)  # |x| >= step / 2, in 1/16 units
    if len(rows) < min_count:
        return None
    x, y = coef[rows, cols] / 16.0, fine.coef[:, sel][rows, cols] / 16.0
    step, fine_step = q[cols], fine.q[sel][cols]
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

    def vote() -> int:
        coarse, fine, sign = (x, y, 1) if x.f["jpeg_quality"] < y.f["jpeg_quality"] else (y, x, -1)
        score = lattice_score(coarse.lattice, fine.lattice)
        return sign if score is not None and score > min_score else 0

    # asked by this rule, by recompressed and by resaved for one pair: computed once
    return _pair_memo(x, y, ("requantized", min_score), vote)


def requantized_from(src: Lattice, copy: Lattice, min_step: float = 4.0, edge: float = 0.15,
                     min_count: int = 200) -> float | None:
    """How much ``copy``'s luma coefficients are ``src``'s quantised again with ``copy``'s own table: the
    share of them within a quarter step (1 at least: the decoders' rounding) of ``src``'s rounded to
    ``copy``'s lattice. About 1 where ``copy`` was saved from ``src``'s pixels (a re-save at another quality,
    or after an edit that left most of the luma: a caption, a grey version); low for an edit that moves
    every coefficient (blur, sharpening, a contrast change) or for ``src`` made from ``copy`` at a finer
    quality (its coefficients sit off ``copy``'s lattice by its own rounding). Counted where ``copy``'s step
    is ``min_step`` or more, on the coefficients not zero in either, and not where ``src``'s lies within
    ``edge`` of a rounding boundary (decoder noise rounds it either way). None where the two cannot be
    compared (other sizes or grids, too few coefficients)."""
    if src.size != copy.size or src.coef.shape != copy.coef.shape:
        return None
    sel = copy.q >= min_step
    # in the coefficients' own 1/16 units, as integers (a step is a whole number): the rounding to the copy's
    # lattice is exact, and no float copies of the 4,096 x 63 arrays are made
    q16 = (16 * copy.q[sel]).astype(np.int32)
    x, y = src.coef[:, sel].astype(np.int32), copy.coef[:, sel].astype(np.int32)
    below = np.floor(x / q16.astype(np.float64)).astype(np.int32)  # exact: |x| < 2**15 (numpy's divmod is slower)
    rest = x - below * q16
    k = below + (2 * rest > q16)  # x / step rounded (a tie lies on a rounding boundary: never used)
    use = (np.abs(2 * rest - q16) > 2 * edge * q16) & ((k != 0) | (2 * np.abs(y) >= q16))
    n = np.count_nonzero(use)
    if n < min_count:
        return None
    return np.count_nonzero(use & (np.abs(y - k * q16) <= np.maximum(16, q16 // 4))) / n


def _resaved(x: Version, y: Version, min_share: float = 0.8, margin: float = 0.3) -> int:
    """Two JPEGs of one size where neither is a finer re-save that keeps the other's lattice
    (:func:`_requantized` decides those): the one whose coefficients are the other's quantised again with
    its own table (:func:`requantized_from` over ``min_share``, and ``margin`` more than the other way
    round) was saved from the other's pixels, which wins. Both thresholds were chosen on the tune part of
    the AugLy edit-chain corpora only (``python -m bench --kept-model``)."""
    if x.lattice is None or y.lattice is None or _requantized(x, y):
        return 0
    made_y = requantized_from(x.lattice, y.lattice) or 0.0
    made_x = requantized_from(y.lattice, x.lattice) or 0.0
    if made_y > min_share and made_y - made_x > margin:
        return 1
    return -1 if made_x > min_share and made_x - made_y > margin else 0


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

    if src.luma is None:
        return 0.0
    own = src.luma[:LATTICE_SIDE, :LATTICE_SIDE]
    a = _centred(own)  # once for the eight turns
    best, square = min_corr, None
    for turn in ((False, False, False), *TURNS):
        t = turned_square(src, other, turn)
        if t is not None and t.shape == own.shape:
            c = _centred_correlation(a, _centred(t))
            if c > best:
                best, square = c, (t if turn in TURNS else None)
    if square is None:
        return 0.0  # no turn matches, or leaving it matches best (a symmetric picture, not a turned copy)
    return lattice_coherence(src, block_dct(square.astype(np.float32))) or 0.0


def _centred(square: np.ndarray) -> np.ndarray:
    """Every third pixel of ``square`` (a sample is enough to tell which turn matches), less their mean."""
    v = square.ravel()[::3].astype(np.float64)
    return v - v.mean()


def _centred_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's correlation of two centred samples (:func:`_centred`, float64; the agreement checks' OpenCV
    one takes float32 views); 0.0 where either is flat."""
    norm = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b) / norm if norm > 0 else 0.0


def _reoriented(x: Version, y: Version, margin: float = 0.2, min_score: float = 0.3) -> int:
    """Two JPEGs, one a mirror image or a quarter or half turn of the other: the one whose pixels, turned
    back, keep the other's quantisation lattice (:func:`turned_from`, over ``min_score`` and ``margin``
    more than the other way) was made from its decoded pixels, and the other wins. (The same frame is
    :func:`_requantized`'s; a turn hides no lattice in the source, a re-save keeps the source's.)"""
    if x.lattice is None or y.lattice is None:
        return 0
    made_y, made_x = turned_from(x.lattice, y.lattice), turned_from(y.lattice, x.lattice)
    return 1 if made_y - made_x > margin and made_y > min_score else (-1 if made_x - made_y > margin and made_x > min_score else 0)


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
