"""Perceptual hashes (dedup.ops.hashes): known values, +1/-1 encoding, bits <-> cosine, invariances."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from dedup.ops import hashes as H


def photo(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A fixed photo-like RGB image: smooth random colour blobs (6x8 upsampled) plus fine noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small, "RGB").resize(size, Image.Resampling.BICUBIC)
    noise = rng.integers(-12, 13, (size[1], size[0], 3))
    return Image.fromarray(np.clip(np.asarray(img, int) + noise, 0, 255).astype(np.uint8), "RGB")


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


# Values computed once and cross-checked against imagehash 4.3.2 (phash, dhash, whash(image_scale=64)).
KNOWN = {
    1: {"phash": "8ce3d8b83acbc534", "dhash": "1986c6663f35317a", "whash": "cdfef233071f1808",
        "multihash": "8ce3d8b83acbc5348ce1d8bc32da329e1986c6663f35317a72320507ddf82006"},
    2: {"phash": "fc6c8d47db2420da", "dhash": "7227a69619c6e633", "whash": "3893d3c2ec22339f",
        "multihash": "fc6c8d47db2420daac7c8d43db25db017227a69619c6e633c7c7caac3d339d9d"},
}


@pytest.mark.parametrize("seed", sorted(KNOWN))
@pytest.mark.parametrize("name", ["phash", "dhash", "whash", "multihash"])
def test_known_values(seed, name):
    assert H.to_hex(H.HASHES[name].fn(photo(seed))) == KNOWN[seed][name]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_matches_imagehash(seed):
    imagehash = pytest.importorskip("imagehash")
    img = photo(seed, (200 + 10 * seed, 150))
    assert H.to_hex(H.HASHES["phash"].fn(img)) == str(imagehash.phash(img))
    assert H.to_hex(H.HASHES["dhash"].fn(img)) == str(imagehash.dhash(img))
    assert H.to_hex(H.HASHES["whash"].fn(img)) == str(imagehash.whash(img, image_scale=64))


def test_dct_low_matches_scipy():
    from scipy.fftpack import dct

    a = np.random.default_rng(0).random((32, 32)) * 255
    np.testing.assert_allclose(H.dct_low(a), dct(dct(a, axis=0), axis=1)[:8, :8], rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("shape", [(94, 125), (128, 96), (20, 9), (8, 9), (32, 32), (300, 31), (7, 200)])
@pytest.mark.parametrize("size", [(32, 32), (9, 8), (8, 9)])
def test_resize_array_is_pils_lanczos(shape, size):
    """The robust hashes resize with numpy matrices: they must give what PIL's float-mode LANCZOS gives
    (down- and upscaling, unchanged axes)."""
    a = np.random.default_rng(sum(shape)).integers(0, 256, shape).astype(np.float64)
    pil = np.asarray(Image.fromarray(a.astype(np.float32), "F").resize(size, Image.Resampling.LANCZOS), np.float64)
    got = H.resize_array(a, size)
    assert got.shape == (size[1], size[0])
    np.testing.assert_allclose(got, pil, atol=1e-3)


@pytest.mark.parametrize("name", sorted(H.HASHES))
def test_every_hash_is_a_fixed_length_plus_minus_one_vector(name):
    spec = H.HASHES[name]
    assert spec.name == name
    for img in (photo(7), photo(8, (64, 300)), Image.new("RGB", (80, 64), (128, 128, 128))):
        v = spec.fn(img)
        assert v.dtype == np.float32 and v.shape == (spec.bits,)
        assert set(np.unique(v).tolist()) <= {-1.0, 1.0}
        assert np.array_equal(v, spec.fn(img.copy()))  # deterministic


def test_hash_images_batches():
    imgs = [photo(1), photo(2)]
    out = H.hash_images("multihash", imgs)
    assert out.shape == (2, 256) and out.dtype == np.float32
    assert np.array_equal(out[1], H.HASHES["multihash"].fn(imgs[1]))
    assert H.hash_images("phash", []).shape == (0, 64)


def test_encoding_round_trip_and_hex():
    bits = np.array([1, 0, 0, 0, 0, 0, 0, 1] + [0] * 7 + [1], bool)
    v = H.to_signs(bits)
    assert v.tolist() == [1.0 if b else -1.0 for b in bits]
    assert np.array_equal(H.to_bits(v), bits)
    assert H.to_hex(v) == "8101"


def test_inner_product_is_hamming_and_cosine_mapping_is_exact():
    rng = np.random.default_rng(0)
    for dim in (64, 128, 256):
        a = H.to_signs(rng.random(dim) < 0.5)
        for h in (0, 1, 7, dim // 4, dim):
            b = a.copy()
            b[rng.choice(dim, h, replace=False)] *= -1
            assert H.hamming(a, b) == h
            assert float(a @ b) == dim - 2 * h
            cos = float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b))
            assert cos == pytest.approx(H.bits_to_cosine(h, dim), abs=1e-7)
            assert H.cosine_to_bits(H.bits_to_cosine(h, dim), dim) == pytest.approx(h, abs=1e-9)
    assert H.bits_to_cosine(64, 256) == 0.5
    assert H.cosine_to_bits(0.5, 256) == 64.0
    with pytest.raises(ValueError):
        H.bits_to_cosine(65, 64)
    with pytest.raises(ValueError):
        H.cosine_to_bits(1.5, 64)


def test_search_cosine_separates_neighbouring_distances_in_float32():
    dim, t = 256, H.DEFAULT_MAX_BITS
    c = np.float32(H.search_cosine(t, dim))
    assert np.float32(H.bits_to_cosine(t, dim)) >= c > np.float32(H.bits_to_cosine(t + 1, dim))


def _edits(img: Image.Image) -> dict[str, Image.Image]:
    w, h = img.size
    padded = Image.new("RGB", (w, h + 30), (0, 0, 0))
    padded.paste(img, (0, 15))
    return {
        "jpeg q30": jpeg(img, 30),
        "downscale 0.4": img.resize((round(w * 0.4), round(h * 0.4)), Image.Resampling.LANCZOS),
        "brightness 1.3": ImageEnhance.Brightness(img).enhance(1.3),
        "contrast 0.7": ImageEnhance.Contrast(img).enhance(0.7),
        "grayscale": ImageOps.grayscale(img).convert("RGB"),
        "crop 95%": img.crop((4, 3, w - 4, h - 3)),
        "letterbox": padded,
        "rotate 2 deg": img.rotate(2, resample=Image.Resampling.BILINEAR),
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_default_hash_keeps_copies_within_the_threshold(seed):
    fn = H.HASHES[H.DEFAULT_HASH].fn
    img = photo(seed, (240, 180))
    ref = fn(img)
    far = {k: H.hamming(ref, fn(e)) for k, e in _edits(img).items()}
    assert all(d <= H.DEFAULT_MAX_BITS for d in far.values()), far


def test_default_hash_tells_different_images_apart():
    fn = H.HASHES[H.DEFAULT_HASH].fn
    vs = [fn(photo(s, (240, 180))) for s in range(1, 9)]
    d = [H.hamming(vs[i], vs[j]) for i in range(len(vs)) for j in range(i + 1, len(vs))]
    assert min(d) > H.DEFAULT_MAX_BITS, d


def test_letterbox_is_trimmed():
    img = photo(4, (200, 150))
    padded = Image.new("RGB", (200, 210), (0, 0, 0))
    padded.paste(img, (0, 30))
    assert H.hamming(H.phash_robust(img), H.phash_robust(padded)) <= 6
    assert H.hamming(H.phash(img), H.phash(padded)) > 10  # plain phash is moved by the bars


def test_mirror_variant_matches_mirror_images_and_the_default_does_not():
    img = photo(5, (240, 180))
    mirrored = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert H.hamming(H.multihash_mirror(img), H.multihash_mirror(mirrored)) <= 4  # resampling rounding only
    assert H.hamming(H.multihash_mirror(img), H.multihash_mirror(jpeg(mirrored, 40))) <= H.DEFAULT_MAX_BITS
    assert H.hamming(H.multihash(img), H.multihash(mirrored)) > H.DEFAULT_MAX_BITS


def test_colorhash_sees_colour_that_phash_does_not():
    img = photo(6)
    arr = np.asarray(img)
    swapped = Image.fromarray(arr[:, :, ::-1].copy(), "RGB")  # RGB -> BGR: other colours, similar luma
    grey_same = H.hamming(H.phash(img), H.phash(swapped))
    colour = H.hamming(H.colorhash(img)[64:], H.colorhash(swapped)[64:])
    assert colour > 16 and colour > grey_same
