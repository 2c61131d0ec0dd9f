"""Stage `decode`: bytes -> an RGB uint8 image at the model's input size, on CPU tasks.

In:  decode work list from `plan` (``kind``, ``unit``, ``items``, ``vids``, ``shas``); bytes whose hash no
     longer matches (the file changed since `hashing`) are an error, never embedded under the old hash.
Out: one row per representative: ``vid``, ``pixels`` (H x W x 3 uint8 as ``resize`` makes it, zeros of
     size x size x 3 on error; an object array when shapes differ; for the hash models the image's
     perceptual hash instead, see :func:`decode_image`), ``width``,
     ``height`` (as displayed, after EXIF orientation), ``mode``, ``format`` (as found by content, not by
     extension), ``error``, ``decode_s`` (CPU seconds spent).

What it does to each image, in order:
* identify by content (a PNG named .jpg is a PNG; a text file named .jpg is "not an image");
* refuse images over ``max_pixels`` before decoding them (decompression-bomb guard);
* JPEG draft mode: let libjpeg decode at 1/2, 1/4 or 1/8 scale when the image is at least twice the
  target size, which is most of the decode cost saved;
* apply the EXIF orientation;
* bring every PIL mode to RGB: 16-bit and 32-bit grey are rescaled (not clipped), alpha and palette
  transparency are composited on white, CMYK/YCbCr/LAB are converted;
* resize for the model (``resize``, :func:`model_input`): ``center-crop`` (shorter side to ``size``, then the
  central square: ResNet-50's), ``square`` (the whole image squeezed to ``size`` x ``size``, aspect not kept:
  SSCD's), or ``short-side`` (shorter side to ``size``, the longer to a multiple of 32 px, at most twice
  ``size``, so that batches fall into few shapes).
"""
from __future__ import annotations

import io
import time
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from dedup.sources import read_unit, split_item
from dedup.ops.hashes import HASHES
from dedup.ops.hashing import hash_bytes

# JPEG draft size for the hash models. A smaller draft saves little (Huffman decoding, not the IDCT, is most
# of a draft decode) and gives the hashes less to see (docs/benchmarks.md).
HASH_DRAFT = 128

# A truncated file is an error, not a half-grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class DecodeError(Exception):
    pass


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img).astype(np.float64)
        lo, hi = (0.0, 65535.0) if mode.startswith("I;16") else (float(arr.min()), float(arr.max()))
        if hi <= lo:
            hi = lo + 1.0
        grey = np.clip((arr - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "1":
        return img.convert("L").convert("RGB")
    return img.convert("RGB")  # L, CMYK, YCbCr, LAB, HSV, ...


_ORIENT_SWAPS = {5, 6, 7, 8}


def load_rgb(img: Image.Image, draft: int, grey: bool = False) -> Image.Image:
    """Load an opened image as RGB, upright: JPEG draft mode to at least ``draft`` px, EXIF orientation
    applied (a malformed tag keeps the stored orientation), every mode converted (:func:`_to_rgb`).

    ``grey``: return mode L instead (what the grey hashes use); a colour JPEG is then decoded to its luma
    alone (libjpeg skips the chroma planes' IDCT and the colour conversion)."""
    if img.format == "JPEG":
        img.draft("L" if grey and img.mode == "RGB" else ("RGB" if img.mode == "RGB" else None), (draft, draft))
    img.load()
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a malformed orientation tag: keep the stored orientation
        pass
    if grey:
        return img if img.mode == "L" else _to_rgb(img).convert("L")
    return _to_rgb(img)


SHORT_SIDE_STEP = 32  # short-side mode: the longer side is rounded to this, so that batches share few shapes


def model_input(img: Image.Image, size: int, resize: str = "center-crop") -> Image.Image:
    """The model's view of an (upright, RGB) image: see the module docstring for the three ``resize`` modes."""
    if resize == "center-crop":
        return ImageOps.fit(img, (size, size), method=Image.Resampling.BILINEAR)
    if resize == "square":
        return img.resize((size, size), Image.Resampling.BILINEAR)
    w, h = img.size
    long = max(w, h) * size / max(1, min(w, h))
    long = int(min(2 * size, max(size, round(long / SHORT_SIDE_STEP) * SHORT_SIDE_STEP)))
    return img.resize((long, size) if w >= h else (size, long), Image.Resampling.BILINEAR)


def decode_image(data: bytes, size: int, max_pixels: int, hash_name: str | None = None,
                 resize: str = "center-crop") -> tuple[np.ndarray, int, int, str, str]:
    """Decode and preprocess one image. Returns (pixels, width, height, mode, format); raises DecodeError.

    With ``hash_name`` (a perceptual hash of :mod:`dedup.ops.hashes`), the first value is that hash of
    the whole image (a +1/-1 float32 vector) instead of the model's pixels: hashes are computed here, on
    the CPU decode workers, from a JPEG draft of at least 128 px (the hashes' normalised view is 128 px),
    decoded to grey for the hashes that need no colour (a colour JPEG: its luma plane alone).
    """
    pixels, signs, w, h, mode, fmt, _, _ = decode_both(data, size, max_pixels, hash_name, pixels=hash_name is None, resize=resize)
    return (pixels if hash_name is None else signs), w, h, mode, fmt


def decode_both(data: bytes, size: int, max_pixels: int, hash_name: str | None, pixels: bool = True,
                resize: str = "center-crop", inner: bool = False):
    """Decode once; return (model pixels or None, the image's hash or None, width, height, mode, format,
    the model pixels of the picture inside it as bytes and where it is, (left, top, right, bottom) in unit
    coordinates of the upright image (``inner``; b"" and None where there is none or it was not asked)).

    The hash is taken from the whole image (before the model's centre crop); with both, the JPEG draft is
    the model's size (at least 224 px), which the hashes' 128 px view is made from. The inner picture
    (:func:`dedup.ops.pictures.inner_picture`) is looked for on the same draft.
    """
    if not data:
        raise DecodeError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        head = data[:16]
        raise DecodeError(f"not a recognised image format (content starts with {head!r})") from None
    except Image.DecompressionBombError as e:
        raise DecodeError(f"image too large (decompression-bomb guard): {e}") from None
    except Image.DecompressionBombWarning as e:
        raise DecodeError(f"image too large (decompression-bomb guard): {e}") from None
    w, h = img.size
    if w * h > max_pixels:
        raise DecodeError(f"image too large: {w}x{h} = {w * h} pixels exceeds the limit of {max_pixels} (--max-pixels)")
    if w < 1 or h < 1:
        raise DecodeError(f"image has no pixels ({w}x{h})")
    fmt = img.format or "unknown"
    mode = img.mode
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - broken EXIF must not lose the image
        orientation = 1
    if orientation in _ORIENT_SWAPS:
        w, h = h, w
    try:
        grey = bool(hash_name) and not pixels and not HASHES[hash_name].colour
        img = load_rgb(img, size if pixels else HASH_DRAFT, grey=grey)
        signs = HASHES[hash_name].fn(img) if hash_name else None
        if not pixels:
            return None, signs, w, h, mode, fmt, b"", None
        picture, box = inner_input(img, size, resize) if inner else (b"", None)
        img = model_input(img, size, resize)
    except (OSError, SyntaxError, ValueError) as e:
        msg = str(e)
        if "truncated" in msg.lower() or "premature end" in msg.lower():
            raise DecodeError(f"truncated or corrupt image data ({fmt}): {msg}") from None
        raise DecodeError(f"corrupt image data ({fmt}): {msg}") from None
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) != size:  # pragma: no cover - model_input guarantees it
        raise DecodeError(f"unexpected decoded shape {arr.shape}")
    return arr, signs, w, h, mode, fmt, picture, box


def inner_input(img: Image.Image, size: int, resize: str) -> tuple[bytes, tuple | None]:
    """The model's input (uint8, ``size`` x ``size`` x 3, as bytes) of the picture inside ``img``
    (:func:`dedup.ops.pictures.inner_picture`) and its box in unit coordinates, or (b"", None) where it has
    none. Always square: the short-side resize would give each picture its own shape. A failure here loses
    the picture, never the image (it decoded)."""
    from dedup.ops.pictures import inner_picture

    try:
        box = inner_picture(np.asarray(img))
    except Exception:  # noqa: BLE001 - an odd mode or size the outline search cannot take: no picture
        return b"", None
    if box is None:
        return b"", None
    crop = model_input(img.crop(box), size, "square" if resize == "short-side" else resize)
    w, h = img.size
    return np.asarray(crop, dtype=np.uint8).tobytes(), (box[0] / w, box[1] / h, box[2] / w, box[3] / h)


def decode_units(batch: dict[str, np.ndarray], size: int, max_pixels: int, image_column: str | None = None,
                 hash_name: str | None = None, with_pixels: bool = True, resize: str = "center-crop",
                 inner: bool = False) -> dict:
    """Ray Data batch function: decode work units in, one row per representative out.

    With ``hash_name`` and not ``with_pixels`` (a hash model), ``pixels`` holds each image's perceptual hash
    (+1/-1 float32) instead of pixels; with both (resnet50+hash), the hash comes in an extra ``hash`` column.
    With ``inner``, an ``inner`` column holds the model input of the picture inside each image
    (:func:`inner_input`: bytes, b"" for none).
    """
    keys = (("vid", "pixels", "width", "height", "mode", "format", "error", "decode_s") + (("hash",) if hash_name and with_pixels else ())
            + (("inner", "inner_box") if inner and with_pixels else ()))
    out = {k: [] for k in keys}
    blank_hash = np.zeros(HASHES[hash_name].bits, np.float32) if hash_name else None
    blank = np.zeros((size, size, 3), np.uint8) if with_pixels else blank_hash
    for kind, unit, items, vids, shas in zip(batch["kind"], batch["unit"], batch["items"], batch["vids"], batch["shas"]):
        kind, unit = str(kind), str(unit)
        vid_of = {str(p): int(v) for p, v in zip(items, vids)}
        sha_of = {str(p): str(h) for p, h in zip(items, shas)}
        members = None if kind == "file" else {split_item(p)[1] for p in vid_of}
        seen = set()

        def add(vid, arr, signs, meta, error, seconds, picture=b"", box=None):
            _append(out, vid, arr, meta, error, seconds)
            if "hash" in out:
                out["hash"].append(blank_hash if signs is None else signs)
            if "inner" in out:
                out["inner"].append(picture)
                out["inner_box"].append((np.nan,) * 4 if box is None else box)

        for path, data, error in read_unit(kind, unit, image_column, members):
            t0 = time.process_time()
            vid = vid_of.get(path)
            if vid is None:  # a whole-unit failure names the unit: it applies to all its items
                for p, v in vid_of.items():
                    if p not in seen:
                        seen.add(p)
                        add(v, blank, None, None, error or "could not read", 0.0)
                continue
            seen.add(path)
            if error is not None:
                add(vid, blank, None, None, error, 0.0)
                continue
            if hash_bytes(data) != sha_of[path]:  # the vector must belong to the bytes the manifest names
                add(vid, blank, None, None, "input changed during the run (bytes differ from the hashed ones)", 0.0)
                continue
            try:
                arr, signs, w, h, mode, fmt, picture, box = decode_both(data, size, max_pixels, hash_name, pixels=with_pixels,
                                                                        resize=resize, inner="inner" in out)
                add(vid, arr if with_pixels else signs, signs, (w, h, mode, fmt), None, time.process_time() - t0, picture, box)
            except DecodeError as e:
                add(vid, blank, None, None, str(e), time.process_time() - t0)
            except Exception as e:  # noqa: BLE001 - one bad image never stops the job
                add(vid, blank, None, None, f"could not decode: {type(e).__name__}: {e}", time.process_time() - t0)
        for p, v in vid_of.items():  # items that vanished between hashing and decoding
            if p not in seen:
                add(v, blank, None, None, "input changed or disappeared during the run", 0.0)
    result = {
        "vid": np.asarray(out["vid"], np.int64),
        "pixels": _stack(out["pixels"], blank),
        "width": np.asarray(out["width"], np.int64),
        "height": np.asarray(out["height"], np.int64),
        "mode": np.asarray(out["mode"], object),
        "format": np.asarray(out["format"], object),
        "error": np.asarray(out["error"], object),
        "decode_s": np.asarray(out["decode_s"], np.float64),
    }
    if "hash" in out:
        result["hash"] = np.stack(out["hash"]) if out["hash"] else np.zeros((0, blank_hash.size), np.float32)
    if "inner" in out:
        result["inner"] = np.array(out["inner"], dtype=object)  # bytes objects, not numpy's fixed-width bytes
        result["inner_box"] = np.asarray(out["inner_box"], np.float32).reshape(-1, 4)  # NaN: none
    return result


def _stack(arrays: list[np.ndarray], blank: np.ndarray) -> np.ndarray:
    """One array of equal-shaped images, or an object array of arrays when their shapes differ."""
    if not arrays:
        return np.zeros((0, *blank.shape), blank.dtype)
    if all(a.shape == arrays[0].shape for a in arrays):
        return np.stack(arrays)
    out = np.empty(len(arrays), object)
    for i, a in enumerate(arrays):  # one by one: numpy would try to broadcast a list of arrays
        out[i] = a
    return out


def _append(out, vid, pixels, meta, error, seconds):
    w, h, mode, fmt = meta if meta else (0, 0, None, None)
    out["vid"].append(vid)
    out["pixels"].append(pixels)
    out["width"].append(w)
    out["height"].append(h)
    out["mode"].append(mode)
    out["format"].append(fmt)
    out["error"].append(error)
    out["decode_s"].append(seconds)


__all__ = ["decode_image", "decode_units", "DecodeError"]
