"""How good a version of an image is: the evidence the canonical policy compares copies by (no Ray).

Measured once per image that has a copy (stage `canonical`, :func:`measure`), from the decoded image and
what its file says about itself:

* ``picture_pixels``: width x height after trimming uniform rows and columns at the edges
  (:func:`trimmed_fraction`): a border, a letterbox or a pasted canvas adds pixels, not picture;
* ``colourfulness``: Hasler and Suesstrunk's measure (0 for grey; a grey or sepia version is below the
  colour photo it was made from);
* ``jpeg_quality``: the quality a JPEG's quantisation tables were made with (IJG scaling, 1-100); 100
  for any other file; ``lossless``: PNG, TIFF, BMP, GIF, PPM, lossless WebP; ``lossy``: a lossy file that
  is not a JPEG (a lossy WebP: the usual re-encode of a JPEG for the web);
* ``native_x``, ``native_y``: how much of the detail is at the image's own pixel scale along each axis
  (:func:`native_steps`): an enlarged or stretched copy, or a rotated one (resampled), has less;
* ``digest``: a hash of the decoded pixels, so that a lossless re-save of a JPEG (the same pixels) is seen;
* ``clipped``: the share of pixels at pure black or white (brightening, a contrast boost and pasted
  captions clip);
* ``flat``: the share of 8 x 8 blocks with no texture at all (a pasted patch or caption box);
* ``sharpness``: the variance of the Laplacian of the view over the variance of the view (blur lowers it;
  brightness and contrast do not move it);
* ``camera``: the file carries a camera's EXIF (make, model or the time the photo was taken): editors and
  re-encoders usually drop it;
* ``width``, ``height``: the upright image's size (a stretched copy is longer along one axis only).

Three more measures are not fields (they are arrays, kept for the comparisons, not written to the table):
the ``tone`` of the view (:func:`tone_levels`: where a tone or colour edit moved the copy); for a JPEG,
its luma DCT coefficients on a central square with its quantisation table (:class:`Lattice`: a copy
re-saved at a finer quality from a coarser JPEG keeps the coarser file's lattice); for any other file, its
luma on the square a JPEG of its size would have (:func:`square_luma`: a PNG or WebP saved from a JPEG's
decoded pixels keeps that JPEG's lattice in it).

The image is decoded at full resolution (no JPEG draft: ``native_*`` and ``digest`` need its own pixels);
the other pixel measures are taken on one view, the upright image with its longer side at :data:`VIEW`
px, so that copies at other resolutions are measured alike. :mod:`dedup.ops.canonical` compares them, and
compares two versions of one size pixel by pixel on their grey detail views (the longer side at most
:data:`DETAIL` px: a watermark's one-pixel strokes are still there).
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

VIEW = 256  # px, the longer side of the view the pixel measures are taken on
DETAIL = 768  # px, at most, the longer side of the grey detail view (local edits are found on it)
FIELDS = ("picture_pixels", "native_x", "native_y", "colourfulness", "jpeg_quality", "lossless", "lossy", "clipped", "flat",
          "sharpness", "camera", "digest", "width", "height", "noise", "hues", "combed")
TONE_LEVELS = (2, 10, 25, 50, 75, 90, 98)  # percentiles of each colour channel (:func:`tone_levels`)
LATTICE_SIDE = 512  # px, the central square (on the JPEG's 8 x 8 grid) whose luma coefficients are kept
LATTICE_MARGIN = 16  # px kept past the square's far edges: a mirrored or turned copy's square is within them
LATTICE_FREQS = np.arange(1, 64)  # the AC frequencies kept (row-major 8 x 8 index; the DC is left out)
# IJG's standard luminance table (JPEG Annex K), to estimate the quality a file's tables were scaled from.
_STD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float64)
_CAMERA_TAGS = (0x010F, 0x0110)  # Make, Model
_EXIF_IFD, _DATE_TAKEN = 0x8769, 0x9003  # ExifIFD, DateTimeOriginal
_LOSSLESS = ("PNG", "TIFF", "BMP", "PPM", "WEBP", "GIF")  # WebP only where its bitstream is VP8L (:func:`webp_lossless`)


@dataclass(frozen=True)
class Lattice:
    """A JPEG's luma DCT coefficients (orthonormal 8 x 8 DCT of the decoded luma, level-shifted), at
    :data:`LATTICE_FREQS`, for the 8 x 8 blocks of the central :data:`LATTICE_SIDE` square, in 1/16 units
    (int16); ``q``: the luma quantisation table at those frequencies; ``size``: the file's own (not
    EXIF-rotated) width and height, so that only two files of one size and grid are compared; ``luma``:
    the decoded luma of the square and :data:`LATTICE_MARGIN` px past its far edges, from ``origin``, so
    that a mirrored or turned copy can be brought back into this file's frame
    (:func:`dedup.ops.lattices.turned_from`)."""

    size: tuple[int, int]
    q: np.ndarray
    coef: np.ndarray  # (blocks, len(LATTICE_FREQS)) int16, coefficient x 16
    luma: np.ndarray | None = None  # uint8, the decoded luma from ``origin``: the square and LATTICE_MARGIN more
    origin: tuple[int, int] = (0, 0)  # (top, left) of ``luma`` and of the square in the file's own pixels


def measure(data: bytes, want_lattice: bool = True) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray, Lattice | None, np.ndarray | None]:
    """:data:`FIELDS` of one image (its file's bytes), its grey view and its grey detail view (uint8), its
    tone (:func:`tone_levels`), for a JPEG its :class:`Lattice` (:func:`luma_lattice`) and for any other
    file its luma on a JPEG's square (:func:`square_luma`), for the pairwise checks of
    :mod:`dedup.ops.canonical`; without ``want_lattice`` neither (None: no other version of its size to compare
    them with, and a JPEG's lattice costs a second decode, of its luma). Raises what PIL raises on a file it cannot decode."""
    from dedup.ops.decode import load_rgb

    opened = Image.open(io.BytesIO(data))
    upright = load_rgb(Image.open(io.BytesIO(data)), 1 << 30)  # full resolution: no JPEG draft
    view = np.asarray(_view(upright), np.uint8)
    grey = np.asarray(Image.fromarray(view).convert("L"), np.float32)
    trim_w, trim_h = trimmed_fraction(view)
    full_grey = upright.convert("L")
    centre = np.asarray(_centre(full_grey, 512), np.float32)
    sx, sy = native_steps(centre)
    w, h = upright.size
    lossless = opened.format in _LOSSLESS and (opened.format != "WEBP" or webp_lossless(data))
    lattice = luma_lattice(data) if want_lattice else None
    return {
        "picture_pixels": int(round(w * trim_w) * round(h * trim_h)),
        "native_x": round(sx, 4), "native_y": round(sy, 4),
        "colourfulness": round(colourfulness(view.astype(np.float32)), 3),
        "jpeg_quality": int(jpeg_quality(opened)),
        "lossless": int(lossless),
        "lossy": int(not lossless and opened.format != "JPEG"),
        "clipped": round(float(np.mean((grey <= 1) | (grey >= 254))), 5),
        "flat": round(flat_share(grey), 5),
        "sharpness": round(float(_laplacian(grey).var() / max(float(grey.var()), 1e-6)), 5),
        "camera": int(has_camera_exif(opened)),
        "digest": hashlib.sha1(upright.tobytes()).hexdigest()[:16],  # RGB: the bytes np.asarray(upright) holds
        "width": w, "height": h,
        "noise": round(noise_floor(centre), 4), "hues": round(hue_spread(view), 4),
        # a palette file's histogram is combed by its format, not by an edit: -1, not measured
        "combed": -1.0 if opened.mode in ("P", "PA", "1") else round(tone_comb(np.asarray(_centre(upright, 512), np.uint8)), 4),
    }, grey.astype(np.uint8), np.asarray(_view(full_grey, DETAIL, "L"), np.uint8), tone_levels(view), lattice, \
        (None if opened.format == "JPEG" or not want_lattice else square_luma(full_grey))


def tone_levels(rgb: np.ndarray) -> np.ndarray:
    """The :data:`TONE_LEVELS` percentiles of each channel of an RGB view (float32): a brightness,
    contrast, grey or colour edit moves them; a crop, a mirror image, a resize or a re-encode hardly does."""
    flat = rgb.reshape(-1, 3)
    return np.stack([percentiles_u8(flat[:, c], TONE_LEVELS) for c in range(3)], axis=1).astype(np.float32).ravel()


def percentiles_u8(values: np.ndarray, q) -> np.ndarray:
    """``np.percentile(values.astype(np.float32), q)`` (linear interpolation) of uint8 ``values``, the same
    numbers read off their histogram instead of a partial sort (a tenth of the time): the order statistics
    either side of each virtual index, interpolated by numpy's own rule (its ``_lerp``: from the upper one
    where the weight is 0.5 or more)."""
    v = np.asarray(values, np.uint8).ravel()
    n = v.size
    index = (n - 1) * np.true_divide(np.asarray(q), 100)
    below = np.floor(index)
    above = np.minimum(below + 1, n - 1)
    cum = np.cumsum(np.bincount(v, minlength=256))
    a = np.searchsorted(cum, np.minimum(below, n - 1), side="right").astype(np.float32)
    b = np.searchsorted(cum, above, side="right").astype(np.float32)
    t = index - below
    return np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)


def luma_lattice(data: bytes) -> Lattice | None:
    """The :class:`Lattice` of a JPEG file; None for another format, a CMYK JPEG, one with an EXIF
    rotation (its grid is not the upright image's) or one whose coefficients cannot be read (a lattice is
    optional evidence: the version is still measured)."""
    try:
        return _lattice(Image.open(io.BytesIO(data)), data)
    except Exception:  # noqa: BLE001 - truncated data, broken EXIF: no lattice, not an unreadable version
        return None


def _lattice(img: Image.Image, data: bytes) -> Lattice | None:
    tables = getattr(img, "quantization", None)
    if img.format != "JPEG" or not tables or img.mode not in ("L", "RGB", "YCbCr") or img.getexif().get(0x0112, 1) != 1:
        return None
    w, h = img.size
    top, left = _square_origin(w, h)
    far = LATTICE_SIDE + LATTICE_MARGIN
    luma = jpeg_luma(img, data)[top:top + far, left:left + far]  # on the 8 x 8 grid
    coef = block_dct(luma[:LATTICE_SIDE, :LATTICE_SIDE].astype(np.float32))
    if coef is None:
        return None
    q = np.asarray(tables[min(tables)], np.float32)[:64][LATTICE_FREQS]
    return Lattice(img.size, q, np.round(coef * 16).astype(np.int16), np.ascontiguousarray(luma, np.uint8), (top, left))


def jpeg_luma(img: Image.Image, data: bytes) -> np.ndarray:
    """A JPEG's luma as decoded (its Y channel, not luma recomputed from RGB), in its stored orientation
    (``img``: the file opened, not loaded). OpenCV's decoder decodes the luma alone (the chroma is never
    decoded nor converted: half the work of PIL's YCbCr decode, with the same libjpeg-turbo IDCT, so the
    same values); PIL decodes a file OpenCV cannot, or one without its end marker (PIL refuses a truncated
    file, OpenCV would fill it in)."""
    import cv2

    w, h = img.size
    if data.rstrip(b"\0")[-2:] == b"\xff\xd9":
        luma = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
        if luma is not None and luma.shape == (h, w):
            return luma
    if img.mode == "RGB":
        img.draft("YCbCr", (w, h))
    luma = np.asarray(img)
    return luma[..., 0] if luma.ndim == 3 else luma


def square_luma(grey: Image.Image) -> np.ndarray | None:
    """The luma (PIL's "L": ITU-R 601, as a JPEG's Y) of the central :data:`LATTICE_SIDE` square a JPEG
    of this size would keep (:func:`_lattice`), uint8; None for an image smaller than one 8 x 8 block."""
    w, h = grey.size
    if w < 8 or h < 8:
        return None
    top, left = _square_origin(w, h)
    return np.asarray(grey.crop((left, top, min(w, left + LATTICE_SIDE), min(h, top + LATTICE_SIDE))), np.uint8)


def _square_origin(w: int, h: int) -> tuple[int, int]:
    """(top, left) of the central square, on the 8 x 8 grid."""
    return (max(0, (h - LATTICE_SIDE) // 2) // 8) * 8, (max(0, (w - LATTICE_SIDE) // 2) // 8) * 8


def webp_lossless(data: bytes) -> bool:
    """A WebP file whose image is a VP8L (lossless) bitstream rather than VP8 (lossy): the first of the two
    chunks found, walking the RIFF chunks (an extended file puts VP8X, ICC or animation chunks first)."""
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if kind in (b"VP8L", b"VP8 "):
            return kind == b"VP8L"
        if kind == b"ANMF":  # an animation frame holds its bitstream's chunk after a 16-byte header
            pos += 8 + 16
            continue
        pos += 8 + size + (size & 1)
    return False


def block_dct(y: np.ndarray) -> np.ndarray | None:
    """The orthonormal DCT of each whole 8 x 8 block of a luma array (level-shifted), at
    :data:`LATTICE_FREQS`: (blocks, frequencies), row-major blocks; None when it holds no whole block. One
    matrix product (each kept frequency's 8 x 8 basis as a column of 64) in float64."""
    bh, bw = y.shape[0] // 8, y.shape[1] // 8
    if not bh or not bw:
        return None
    blocks = (y[:bh * 8, :bw * 8] - 128.0).reshape(bh, 8, bw, 8).transpose(0, 2, 1, 3).reshape(-1, 64)
    return blocks @ _DCT_BASIS


def _dct_basis() -> np.ndarray:
    """(64, len(LATTICE_FREQS)): column f is the orthonormal 8 x 8 DCT-II basis of frequency f (row-major
    u * 8 + v), flattened as the block's pixels are (x * 8 + y)."""
    n = np.arange(8)
    d = np.sqrt(2 / 8) * np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / 16)
    d[0] /= np.sqrt(2)
    return np.ascontiguousarray(np.kron(d, d)[LATTICE_FREQS].T)


_DCT_BASIS = _dct_basis()


def _view(img: Image.Image, side: int = VIEW, mode: str = "RGB") -> Image.Image:
    scale = side / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BILINEAR)
    return img if img.mode == mode else img.convert(mode)


def trimmed_fraction(rgb: np.ndarray, tol: float = 10.0, rounds: int = 3) -> tuple[float, float]:
    """(kept share of the width, kept share of the height) after removing uniform rows and columns at the
    edges: a row or column belongs to a border when all its pixels are within ``tol`` of the edge's colour
    (wide enough for JPEG's ringing in the rows next to the picture).
    Trimmed again (up to ``rounds`` times) with the new edges' colour, so that a border added around a
    photo whose own edges are uniform (a studio background) trims to the same picture as the photo."""
    h, w = rgb.shape[:2]
    top = bottom = left = right = 0
    for _ in range(rounds):
        view = rgb[top:h - bottom, left:w - right]
        if min(view.shape[:2]) < 2:
            return 1.0, 1.0  # all of it uniform: nothing to trim it against
        cols = view.transpose(1, 0, 2)
        cut = (_run(view, tol), _run(view[::-1], tol), _run(cols, tol), _run(cols[::-1], tol))
        if not any(cut) or cut[0] + cut[1] >= view.shape[0] or cut[2] + cut[3] >= view.shape[1]:
            break
        top, bottom, left, right = top + cut[0], bottom + cut[1], left + cut[2], right + cut[3]
    return (w - left - right) / w, (h - top - bottom) / h


def _run(lines: np.ndarray, tol: float = 10.0, chunk: int = 16) -> int:
    """How many leading lines (rows) are uniform and of the first line's colour (read a chunk at a time:
    most images stop at the first line)."""
    ref = np.median(lines[0], axis=0)
    for start in range(0, len(lines), chunk):
        dev = np.abs(lines[start:start + chunk].astype(np.int16) - ref).max(axis=(1, 2))
        bad = np.flatnonzero(dev > tol)
        if len(bad):
            return start + int(bad[0])
    return len(lines)


def _centre(img: Image.Image, side: int) -> Image.Image:
    """The central ``side`` x ``side`` crop :func:`native_steps` reads (the rest need not become floats)."""
    w, h = img.size
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return img.crop((x0, y0, min(w, x0 + side), min(h, y0 + side)))


def native_steps(grey: np.ndarray, side: int = 512) -> tuple[float, float]:
    """How much of an image's detail is at its own pixel scale, along x and along y: the mean step between
    neighbouring pixels over the mean step two pixels apart, on a central crop at full resolution. About
    0.6-0.8 for a photo at its own resolution; an image enlarged along an axis (interpolated pixels) has
    smooth neighbours there, towards 0.5."""
    h, w = grey.shape
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    g = grey[y0:y0 + side, x0:x0 + side]
    if min(g.shape) < 8:
        return 1.0, 1.0

    def ratio(a: np.ndarray) -> float:
        return float(np.abs(a[:, 1:] - a[:, :-1]).mean() / max(float(np.abs(a[:, 2:] - a[:, :-2]).mean()), 1e-6))

    return ratio(g), ratio(g.T)


def noise_floor(grey: np.ndarray, block: int = 16, share: float = 0.1) -> float:
    """The noise in an image's smoothest areas, in grey levels: Immerkaer's (1996) estimate (a 3 x 3 mask
    that cancels planes and ramps) per ``block`` x ``block`` tile of a full-resolution crop, at the
    ``share`` quantile of the tiles. Grain or noise added to a copy raises it everywhere, also in its sky
    and walls; a blur, a downscale or a JPEG save lowers it."""
    import cv2

    if min(grey.shape) < 3 * block:
        return 0.0
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    r = np.abs(cv2.filter2D(grey, -1, mask, borderType=cv2.BORDER_REFLECT))[1:-1, 1:-1]
    h, w = (r.shape[0] // block) * block, (r.shape[1] // block) * block
    tiles = r[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3))
    return float(np.quantile(tiles, share) * np.sqrt(np.pi / 2) / 6)


def hue_spread(rgb: np.ndarray, bins: int = 24, min_chroma: float = 12.0) -> float:
    """How many hues the picture holds: the entropy (bits) of its hue histogram over the pixels with some
    colour (chroma ``min_chroma`` or more), each weighted by its chroma; 0 for a grey picture. A filter
    that casts one tone over the picture (sepia, a warm or cool tint) narrows it; more or less saturation
    does not change it (every weight scales alike)."""
    import cv2

    rgb = np.ascontiguousarray(rgb, np.uint8)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)
    r, g, b = cv2.split(rgb)  # OpenCV's per-pixel max and min: numpy's over a 3-wide last axis cost most of this
    chroma = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b)).astype(np.float32)
    keep = chroma >= min_chroma
    if keep.sum() < 64:
        return 0.0
    hist = np.bincount((hsv[..., 0][keep].astype(np.int32) * bins) // 256, weights=chroma[keep], minlength=bins)
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum())


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk (2003): spread and mean of the opponent colour channels."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def jpeg_quality(opened: Image.Image) -> int:
    """IJG quality of a JPEG's luminance table (1-100); 100 for any other format."""
    tables = getattr(opened, "quantization", None)
    if opened.format == "JPEG" and tables:
        luma = np.asarray(tables[min(tables)], np.float64)[:64]
        scale = float(np.median(luma / _STD_LUMA)) * 100.0  # percent of the standard table
        q = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
        return int(np.clip(round(q), 1, 100))
    return 100


def tone_comb(rgb: np.ndarray, spread: float = 2.0, tail: float = 0.01) -> float:
    """How combed the image's tones are: the mean over its colour channels of how far each channel's
    histogram (of a full-resolution crop; between its ``tail`` and ``1 - tail`` quantiles) lies from itself
    smoothed (a Gaussian of ``spread`` levels), beyond what chance puts there, as a share of its pixels. A
    camera's JPEG has smooth histograms; an 8-bit tone or colour edit (levels, a curve, a filter, posterize,
    a palette) maps many levels onto one and skips others, and the gaps and peaks it leaves outlive a JPEG
    save (Stamm & Liu's contrast-enhancement forensics): a copy is more combed than its source, one edit
    after another."""
    import cv2

    rgb = np.ascontiguousarray(rgb if rgb.ndim == 3 else rgb[..., None], np.uint8)
    x = np.arange(-int(3 * spread), int(3 * spread) + 1)
    kernel = np.exp(-0.5 * (x / spread) ** 2)
    kernel /= kernel.sum()
    out = []
    for c in range(rgb.shape[2]):  # OpenCV's histogram: numpy's bincount over a strided channel costs 5 times as much
        h = cv2.calcHist([rgb], [c], None, [256], [0, 256]).ravel().astype(np.float64)
        cum = np.cumsum(h) / max(h.sum(), 1.0)
        lo, hi = int(np.searchsorted(cum, tail)), int(np.searchsorted(cum, 1 - tail))
        if hi - lo < 8:  # a few levels only: a graphic, or a channel all but flat
            out.append(1.0)
            continue
        smooth = np.convolve(np.pad(h, len(x) // 2, mode="reflect"), kernel, mode="valid")[lo:hi + 1]
        # less what chance alone puts between a bin and its mean (a Poisson count's mean deviation, about
        # sqrt(2 mean / pi)): a small image's histogram is not rougher for having fewer pixels
        chance = np.sqrt(2 * smooth / np.pi).sum()
        out.append(max(0.0, float(np.abs(h[lo:hi + 1] - smooth).sum() - chance) / max(h[lo:hi + 1].sum(), 1.0)))
    return float(np.mean(out)) if out else 0.0


def flat_share(grey: np.ndarray, block: int = 8, std: float = 1.0) -> float:
    """The share of ``block`` x ``block`` tiles whose grey levels hardly vary (standard deviation < ``std``)."""
    h, w = (grey.shape[0] // block) * block, (grey.shape[1] // block) * block
    if not h or not w:
        return 0.0
    tiles = grey[:h, :w].reshape(h // block, block, w // block, block)
    return float(np.mean(tiles.std(axis=(1, 3)) < std))


def has_camera_exif(opened: Image.Image) -> bool:
    try:
        exif = opened.getexif()
    except Exception:  # noqa: BLE001 - broken EXIF says nothing
        return False
    if any(exif.get(t) for t in _CAMERA_TAGS):
        return True
    try:
        return bool(exif.get_ifd(_EXIF_IFD).get(_DATE_TAKEN))
    except Exception:  # noqa: BLE001
        return False


def _laplacian(g: np.ndarray) -> np.ndarray:
    return g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
