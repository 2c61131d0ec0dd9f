"""Decode stage: every odd input either decodes correctly or fails with a reason a person understands."""
import io

import numpy as np
import pytest
from PIL import Image

from dedup.ops.decode import DecodeError, decode_image
from dedup.synth import base_image, encode

SIZE = 224
BIG = 10**8


def test_jpeg_decodes_to_square_rgb_and_keeps_original_size():
    pixels, w, h, mode, fmt = decode_image(encode(base_image(1, (640, 480))), SIZE, BIG)
    assert pixels.shape == (SIZE, SIZE, 3) and pixels.dtype == np.uint8
    assert (w, h, mode, fmt) == (640, 480, "RGB", "JPEG")


def test_draft_mode_matches_full_decode_closely():
    img = base_image(2, (1200, 900))
    data = encode(img, quality=95)
    fast, *_ = decode_image(data, SIZE, BIG)
    full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((299, 224)).crop((37, 0, 261, 224)), np.float32)
    assert np.abs(fast.astype(np.float32) - full).mean() < 8


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"hello, I am a text file pretending to be a JPEG\n" * 3, "not a recognised image"),
    ],
)
def test_garbage_is_an_error(data, reason):
    with pytest.raises(DecodeError, match=reason):
        decode_image(data, SIZE, BIG)


def test_truncated_jpeg_is_an_error():
    data = encode(base_image(3, (640, 480)))
    with pytest.raises(DecodeError, match="truncated|corrupt"):
        decode_image(data[: len(data) // 2], SIZE, BIG)


def test_decompression_bomb_guard():
    data = encode(Image.new("L", (4000, 3000), 7), "PNG")  # tiny file, 12 megapixels
    with pytest.raises(DecodeError, match="too large"):
        decode_image(data, SIZE, max_pixels=1_000_000)
    # and PIL's own guard (twice MAX_IMAGE_PIXELS) is reported the same way
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 1_000_000
    try:
        with pytest.raises(DecodeError, match="too large"):
            decode_image(data, SIZE, BIG)
    finally:
        Image.MAX_IMAGE_PIXELS = old


def test_one_pixel_image():
    pixels, w, h, *_ = decode_image(encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"), SIZE, BIG)
    assert (w, h) == (1, 1)
    assert tuple(pixels[100, 100]) == (10, 200, 30)


def test_16bit_png_is_rescaled_not_clipped():
    ramp = (np.linspace(0, 65535, 256)[None, :].repeat(256, 0)).astype(np.uint16)
    img = Image.fromarray(ramp)  # uint16 -> mode I;16
    pixels, _, _, mode, fmt = decode_image(encode(img, "PNG"), SIZE, BIG)
    assert fmt == "PNG" and mode.startswith("I")
    grey = pixels[..., 0].astype(int)
    assert grey.min() < 40 and grey.max() > 215  # clipping would make most of it 255
    assert np.all(pixels[..., 0] == pixels[..., 1])


def test_cmyk_jpeg():
    img = Image.new("CMYK", (300, 200), (0, 255, 255, 0))  # pure red in CMYK
    pixels, w, h, mode, fmt = decode_image(encode(img, "JPEG"), SIZE, BIG)
    assert (mode, fmt, w, h) == ("CMYK", "JPEG", 300, 200)
    r, g, b = pixels[112, 112].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_palette_gif_with_transparency_composites_on_white():
    img = Image.new("P", (120, 80), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (0, 0, 60, 80))  # left half red, right half index 0 = transparent
    data = encode(img, "GIF", transparency=0)
    pixels, _, _, mode, fmt = decode_image(data, SIZE, BIG)
    assert (mode, fmt) == ("P", "GIF")
    assert tuple(pixels[112, 10]) == (255, 0, 0)
    assert tuple(pixels[112, 213]) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "1", "I", "F"])
def test_every_mode_becomes_rgb(mode):
    base = base_image(4, (200, 150)).convert(mode if mode not in ("I", "F") else "L")
    if mode in ("I", "F"):
        base = base.convert(mode)
    fmt = "TIFF" if mode in ("I", "F") else "PNG"
    pixels, w, h, got_mode, _ = decode_image(encode(base, fmt), SIZE, BIG)
    assert pixels.shape == (SIZE, SIZE, 3) and (w, h) == (200, 150)
    assert pixels.std() > 5


def test_exif_rotation_is_applied():
    img = Image.new("RGB", (400, 200), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 200, 200))  # stored: left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: red ends up on top
    pixels, w, h, *_ = decode_image(encode(img, "JPEG", exif=exif.tobytes()), SIZE, BIG)
    assert (w, h) == (200, 400)
    top, bottom = pixels[5, 112].astype(int), pixels[218, 112].astype(int)
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_png_named_jpg_is_decoded_by_content():
    pixels, *_, fmt = decode_image(encode(base_image(5), "PNG"), SIZE, BIG)
    assert fmt == "PNG"


def test_file_changed_after_hashing_is_not_embedded_under_the_old_hash(tmp_path):
    from dedup.ops.decode import decode_units
    from dedup.ops.hashing import hash_bytes

    path = tmp_path / "a.jpg"
    old = encode(base_image(6))
    path.write_bytes(encode(base_image(7)))  # replaced between hashing and decoding
    batch = {"kind": ["file"], "unit": [str(path)], "items": [[str(path)]], "vids": [[0]], "shas": [[hash_bytes(old)]]}
    out = decode_units(batch, SIZE, BIG)
    assert "changed during the run" in out["error"][0]
    batch["shas"] = [[hash_bytes(path.read_bytes())]]
    out = decode_units(batch, SIZE, BIG)
    assert out["error"][0] is None and out["width"][0] == 320


@pytest.mark.parametrize("name", ["multihash", "phash", "colorhash"])
def test_hash_models_get_grey_or_colour_images_as_their_hash_needs(name, monkeypatch):
    """The grey hashes are handed a grey image (a colour JPEG decoded to its luma alone), the colour-aware
    ones an RGB image; the grey route's hash stays within a few bits of hashing the RGB decode."""
    from dedup.ops import hashes as H

    data = encode(base_image(3, (640, 480)), "JPEG")
    spec = H.HASHES[name]
    seen = []
    monkeypatch.setitem(H.HASHES, name, H.HashSpec(name, spec.bits, lambda img: seen.append(img.mode) or spec.fn(img), spec.doc, spec.colour))
    signs, w, h, _, _ = decode_image(data, SIZE, BIG, hash_name=name)
    assert seen == (["RGB"] if spec.colour else ["L"]) and (w, h) == (640, 480)
    rgb = Image.open(io.BytesIO(data))
    rgb.draft("RGB", (128, 128))
    assert H.hamming(signs, spec.fn(rgb.convert("RGB"))) <= spec.bits // 32
