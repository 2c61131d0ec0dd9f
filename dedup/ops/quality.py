"""How good a version of an image is: the evidence the canonical policy ranks copies by (no Ray).

Computed once per image by the decode workers (:func:`measure`), from the decoded image and what its file
says about itself, and stored beside its vector:

* ``trimmed_pixels``: width x height after trimming uniform borders (a letterbox, a frame, a pasted
  canvas): a bordered copy has more pixels than the photo it was made from, not more picture;
* ``colourfulness``: Hasler and Suesstrunk's measure on a small view (0 for grey; a grey or sepia version
  is below the colour photo it was made from);
* ``jpeg_quality``: the quality a JPEG's quantisation tables were made with (IJG scaling, 1-100), 100 for
  a lossless file, except a lossless file that shows JPEG's 8x8 blocks (a decoded JPEG saved again): that
  one gets the quality its blocks suggest, never more than the JPEG it came from;
* ``sharpness``: the variance of the Laplacian of a 256 px grey view over the variance of the view itself
  (blur lowers it; a brightness or contrast change does not move it);
* ``clipped``: the share of pixels at pure black or white (brightness and contrast edits clip);
* ``camera``: the file carries a camera's EXIF (make, model or the time the photo was taken): editors and
  re-encoders usually drop it.

Each is a number per image; :mod:`dedup.ops.canonical` turns them into a ranking.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

VIEW = 256  # px, the longer side of the view the pixel measures are taken on
FIELDS = ("trimmed_pixels", "colourfulness", "jpeg_quality", "sharpness", "clipped", "camera")
# IJG's standard luminance table (JPEG Annex K), to estimate the quality a file's tables were scaled from.
_STD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float64)
_CAMERA_TAGS = (0x010F, 0x0110)  # Make, Model
_EXIF_IFD, _DATE_TAKEN = 0x8769, 0x9003  # ExifIFD, DateTimeOriginal


def measure(opened: Image.Image, upright_rgb: Image.Image, width: int, height: int) -> dict:
    """All of :data:`FIELDS` for one image: ``opened`` is the file as PIL opened it (its format, tables and
    EXIF), ``upright_rgb`` the decoded image (any size, EXIF orientation applied), ``width`` x ``height``
    its size as displayed."""
    view = _view(upright_rgb)
    g = np.asarray(view.convert("L"), np.float32)
    trim_w, trim_h = trimmed_fraction(np.asarray(view, np.int16))
    corner = upright_rgb.crop((0, 0, min(512, upright_rgb.width), min(512, upright_rgb.height))).convert("L")
    return {
        "trimmed_pixels": int(round(width * trim_w) * round(height * trim_h)),
        "colourfulness": round(colourfulness(np.asarray(view, np.float32)), 3),
        "jpeg_quality": int(jpeg_quality(opened, np.asarray(corner, np.float32))),
        "sharpness": round(float(_laplacian(g).var() / max(float(g.var()), 1e-6)), 5),
        "clipped": round(float(np.mean((g <= 1) | (g >= 254))), 5),
        "camera": int(has_camera_exif(opened)),
    }


def empty() -> dict:
    return {"trimmed_pixels": 0, "colourfulness": 0.0, "jpeg_quality": 0, "sharpness": 0.0, "clipped": 1.0, "camera": 0}


def _view(img: Image.Image) -> Image.Image:
    scale = VIEW / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BILINEAR)
    return img if img.mode == "RGB" else img.convert("RGB")


def trimmed_fraction(rgb: np.ndarray, tol: float = 6.0) -> tuple[float, float]:
    """(kept share of the width, kept share of the height) after removing uniform rows and columns at the
    edges: a row or column belongs to a border when all its pixels are within ``tol`` of the edge's colour."""
    h, w = rgb.shape[:2]

    def run(lines: np.ndarray) -> int:  # how many leading lines are uniform and of the first line's colour
        ref = np.median(lines[0], axis=0)
        dev = np.abs(lines - ref).max(axis=2).max(axis=1)
        bad = np.flatnonzero(dev > tol)
        return int(bad[0]) if len(bad) else len(lines)

    top, bottom = run(rgb), run(rgb[::-1])
    left, right = run(rgb.transpose(1, 0, 2)), run(rgb.transpose(1, 0, 2)[::-1])
    kept_h = max(0, h - top - bottom) if top + bottom < h else h
    kept_w = max(0, w - left - right) if left + right < w else w
    return kept_w / w, kept_h / h


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk (2003): spread and mean of the opponent colour channels."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def jpeg_quality(opened: Image.Image, grey: np.ndarray) -> int:
    """IJG quality of a JPEG's luminance table; 100 for a lossless file without JPEG's blocks; 90 for one
    with them (a decoded JPEG saved losslessly: :func:`blockiness` of ``grey``, a full-resolution crop)."""
    tables = getattr(opened, "quantization", None)
    if opened.format == "JPEG" and tables:
        luma = np.asarray(tables[min(tables)], np.float64)[:64]
        scale = float(np.median(luma / _STD_LUMA)) * 100.0  # percent of the standard table
        q = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
        return int(np.clip(round(q), 1, 100))
    if opened.format in ("PNG", "TIFF", "BMP", "PPM", "WEBP", "GIF") and blockiness(grey) > 1.15:
        return 90  # looks like a decoded JPEG: no better than a good JPEG of the same picture
    return 100


def blockiness(grey: np.ndarray) -> float:
    """Mean step across 8-pixel column and row boundaries over the mean step elsewhere (about 1 for natural
    images; JPEG's 8x8 blocks raise it), on a full-resolution crop where the block grid is intact."""
    g = grey.astype(np.float32)
    if min(g.shape) < 32:
        return 1.0
    dx = np.abs(np.diff(g, axis=1)).mean(axis=0)
    dy = np.abs(np.diff(g, axis=0)).mean(axis=1)
    on = np.concatenate([dx[7::8], dy[7::8]])
    off = np.concatenate([np.delete(dx, np.s_[7::8]), np.delete(dy, np.s_[7::8])])
    return float(on.mean() / max(off.mean(), 1e-6))


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
