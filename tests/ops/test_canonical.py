"""The quality policy (dedup.ops.canonical, dedup.ops.quality): for each signal, an original made here and a
copy with the edit that signal is for; the original must win, by that signal. Then the ranked-pairs choice."""
import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from dedup.ops import canonical, lattices, regions
from dedup.ops.canonical import Version, choose, compare
from dedup.ops.quality import measure
from dedup.synth import encode, textured_image


def photo(seed: int = 3) -> Image.Image:
    """A photo-like image: smooth colour regions, edges, fine noise (textured_image), saved as a good JPEG."""
    return Image.open(io.BytesIO(encode(textured_image(seed), "JPEG", quality=92))).convert("RGB")


def version(data: bytes, rank: int = 0) -> Version:
    f, *rest = measure(data)
    w, h = Image.open(io.BytesIO(data)).size
    return Version({**f, "pixels": w * h, "bytes": len(data)}, rank, *rest)


def jpeg(img: Image.Image, q: int = 90, **kw) -> bytes:
    return encode(img, "JPEG", quality=q, **kw)


@pytest.fixture(scope="module")
def original() -> bytes:
    return encode(textured_image(3), "JPEG", quality=92)


def _img(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


EDITS = {  # edit -> (the copy's bytes from the original's image, the rule that must decide)
    "lossless re-save": (lambda im: encode(im, "PNG"), "same_pixels"),
    "brightened until it clips": (lambda im: jpeg(ImageEnhance.Brightness(im).enhance(1.6)), "clipped_detail"),
    "caption box": (lambda im: jpeg(_caption(im)), "local_edit"),
    "watermark text": (lambda im: jpeg(_watermark(im)), "local_edit"),
    "opaque patch": (lambda im: jpeg(_patch(im)), "local_edit"),
    "zoomed re-framing": (lambda im: jpeg(im.crop((80, 60, 400, 300)).resize(im.size, Image.Resampling.BICUBIC)), "contains"),
    "rotated 4 degrees": (lambda im: jpeg(im.rotate(4, resample=Image.Resampling.BILINEAR)), "framed"),  # black corners, filled
    "enlarged": (lambda im: jpeg(im.resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC)), "enlarged"),
    "stretched": (lambda im: jpeg(im.resize((im.width * 7 // 5, im.height), Image.Resampling.BICUBIC)), "stretched"),
    "downscaled": (lambda im: jpeg(im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)), "picture"),
    "cropped": (lambda im: jpeg(im.crop((0, 0, im.width * 4 // 5, im.height * 4 // 5))), "contains"),  # picture too, where the two do not register
    "border": (lambda im: jpeg(ImageOps.expand(im, border=60, fill=(30, 120, 200))), "framed"),  # a pad around the picture
    "grey": (lambda im: jpeg(ImageOps.grayscale(im).convert("RGB")), "colour"),
    "heavy JPEG": (lambda im: jpeg(im, 30), None),  # resampled or jpeg_quality: both say the same
    "vignette": (lambda im: jpeg(_vignette(im, 0.7)), "vignetted"),
}


def _vignette(im: Image.Image, strength: float) -> Image.Image:
    """Darkened toward its corners as photo filters do: each pixel times 1 - strength * r^2 (r 1 at a corner)."""
    a = np.asarray(im, np.float32)
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = (((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2) / 2
    return Image.fromarray(np.clip(a * (1 - strength * r2)[..., None], 0, 255).astype(np.uint8))


def _caption(im: Image.Image) -> Image.Image:
    from PIL import ImageDraw

    im = im.copy()
    d = ImageDraw.Draw(im)
    d.rectangle([40, 40, 240, 80], fill=(0, 0, 0))
    d.text((48, 52), "do not share", fill=(255, 255, 255))
    return im


def _watermark(im: Image.Image) -> Image.Image:
    from PIL import ImageDraw

    im = im.copy()
    d = ImageDraw.Draw(im)
    for y in range(10, im.height, 60):  # bold white lines of text
        d.text((5, y), "WATERMARK  " * 8, fill=(255, 255, 255), stroke_width=1, stroke_fill=(255, 255, 255))
    return im


def _patch(im: Image.Image) -> Image.Image:
    from PIL import ImageDraw

    im = im.copy()
    ImageDraw.Draw(im).rectangle([100, 80, 260, 200], fill=(20, 40, 90))
    return im


@pytest.mark.parametrize("edit", list(EDITS))
def test_the_original_wins_by_its_signal(original, edit):
    make, rule = EDITS[edit]
    o, c = version(original, 1), version(make(_img(original)), 0)  # the copy first in the tie-break order
    result, name = compare(o, c)
    assert result == 1, (edit, name)
    assert rule is None or name == rule, (edit, name)
    assert compare(c, o) == (-1, name)  # symmetric
    assert choose([c, o])[0] == 1


def test_each_rule_alone():
    """The rules that the edits above do not reach first, each on its own evidence."""
    base = {"picture_pixels": 1000, "native_x": 0.7, "native_y": 0.7, "colourfulness": 30.0, "jpeg_quality": 92,
            "lossless": 0, "clipped": 0.0, "flat": 0.02, "sharpness": 0.3, "camera": 0, "digest": "a", "pixels": 1000, "bytes": 10, "width": 40, "height": 25}

    def v(**kw):
        return Version({**base, **kw}, 0, None)

    rules = dict(canonical.RULES)
    assert rules["jpeg_quality"](v(), v(jpeg_quality=40)) == 1
    assert rules["jpeg_quality"](v(jpeg_quality=95), v(jpeg_quality=88)) == 0  # two good JPEGs: no evidence
    assert rules["flat"](v(), v(flat=0.2)) == 1  # a pasted patch
    assert rules["sharpness"](v(), v(sharpness=0.05)) == 1  # blurred
    assert rules["camera"](v(camera=1), v()) == 1
    assert rules["jpeg_quality_exact"](v(jpeg_quality=95), v(jpeg_quality=90)) == 1
    assert rules["same_pixels"](v(), v(lossless=1)) == 1 and rules["same_pixels"](v(), v(lossless=1, digest="b")) == 0
    assert compare(v(), v()) == (0, None)


@pytest.mark.parametrize("edit", ["darker", "flatter", "JPEG 40", "hue"])
def test_whole_image_edits_are_not_local_edits(original, edit):
    """A tone edit or a re-encode changes every pixel a little, not one region: the local rule says nothing."""
    im = _img(original)
    make = {"darker": lambda: ImageEnhance.Brightness(im).enhance(0.8), "flatter": lambda: ImageEnhance.Contrast(im).enhance(0.7),
            "JPEG 40": lambda: _img(jpeg(im, 40)), "hue": lambda: ImageEnhance.Color(im).enhance(1.4)}[edit]
    assert dict(canonical.RULES)["local_edit"](version(original), version(jpeg(make()))) == 0


@pytest.mark.parametrize("edit", ["darker", "more contrast", "brighter, clipped", "mirrored and vignetted", "cropped"])
def test_vignetted_reads_only_a_darkening_toward_the_corners(original, edit):
    """A global tone edit is no vignette (the tone fit takes it), nor is a crop (its cells do not correspond to
    the photo's); a mirrored copy's vignette is read on the mirror image."""
    im = _img(original)
    make = {"darker": lambda: ImageEnhance.Brightness(im).enhance(0.7), "more contrast": lambda: ImageEnhance.Contrast(im).enhance(1.5),
            "brighter, clipped": lambda: ImageEnhance.Brightness(im).enhance(1.5), "mirrored and vignetted": lambda: ImageOps.mirror(_vignette(im, 0.6)),
            "cropped": lambda: im.crop((60, 40, im.width - 20, im.height - 30)).resize(im.size)}[edit]
    expected = 1 if edit == "mirrored and vignetted" else 0
    o, c = version(original), version(jpeg(make()))
    assert regions._vignetted(o, c) == expected and regions._vignetted(c, o) == -expected, edit


def test_measured_signals_on_made_images():
    im = photo()
    f, view, detail, tone, lattice, _ = measure(jpeg(ImageOps.expand(im, border=(40, 0, 40, 0), fill=(250, 250, 250))))
    assert (f["width"], f["height"]) == (im.width + 80, im.height) and tone.shape == (21,) and lattice.size == (im.width + 80, im.height)
    assert measure(encode(im, "PNG"))[4] is None  # a lattice for JPEGs only
    assert abs(f["picture_pixels"] - im.width * im.height) / (im.width * im.height) < 0.03  # the letterbox trimmed
    assert measure(jpeg(ImageOps.grayscale(im).convert("RGB")))[0]["colourfulness"] < 3
    assert measure(jpeg(im, 30))[0]["jpeg_quality"] == 30 and measure(encode(im, "PNG"))[0]["jpeg_quality"] == 100
    blurred = measure(jpeg(im.filter(ImageFilter.GaussianBlur(3))))[0]
    assert blurred["sharpness"] < measure(jpeg(im))[0]["sharpness"] / 2
    stretched = measure(jpeg(im.resize((im.width * 3 // 2, im.height), Image.Resampling.BICUBIC)))[0]
    assert stretched["native_x"] < stretched["native_y"] - 0.04  # interpolated along x only
    exif = Image.Exif()
    exif[0x010F] = "Camera Maker"
    assert measure(jpeg(im, exif=exif.tobytes()))[0]["camera"] == 1 and measure(jpeg(im))[0]["camera"] == 0
    assert view.dtype == np.uint8 and max(view.shape) == 256
    assert detail.dtype == np.uint8 and detail.shape == (im.height + 0, im.width + 80)  # no larger than DETAIL: its own size


def test_ranked_pairs_settle_a_cycle_for_the_stronger_rule():
    """A over B by a weak rule, B over C and C over A by stronger ones: the weak decision is dropped."""
    base = {"picture_pixels": 1000, "native_x": 0.7, "native_y": 0.7, "colourfulness": 30.0, "jpeg_quality": 90,
            "lossless": 0, "clipped": 0.0, "flat": 0.02, "sharpness": 0.3, "camera": 0, "digest": "x", "pixels": 1000, "bytes": 10, "width": 40, "height": 25}
    a = Version({**base, "jpeg_quality": 95, "digest": "p"}, 0)  # the best JPEG quality: beats c only by the weakest rule
    b = Version({**base, "lossless": 1, "digest": "p", "jpeg_quality": 100}, 1)  # a's pixels saved losslessly
    c = Version({**base, "picture_pixels": 2000, "pixels": 2000, "jpeg_quality": 94}, 2)  # more picture than a and b
    assert compare(a, b)[1] == "same_pixels" and compare(c, a)[1] == "picture"
    kept, why = choose([a, b, c], rules=canonical.RULES)
    assert kept == 2 and "picture" in why


def test_no_evidence_keeps_the_largest_order():
    base = {"picture_pixels": 1000, "native_x": 0.7, "native_y": 0.7, "colourfulness": 30.0, "jpeg_quality": 90,
            "lossless": 0, "clipped": 0.0, "flat": 0.02, "sharpness": 0.3, "camera": 0, "digest": "x", "pixels": 1000, "bytes": 10, "width": 40, "height": 25}
    assert choose([Version(dict(base), 1), Version(dict(base), 0)]) == (1, "largest")


def test_a_finer_resave_of_a_coarser_jpeg_loses_to_it():
    """A JPEG at quality 75 and a copy made from it (tone edited, or not) re-saved at 90: the copy keeps the
    coarser lattice and loses, though its quality setting is higher. The other way round (a copy saved
    coarser than its source) and two saves of one source (siblings) leave no trace: the rule says nothing."""
    src = photo(5)
    coarse = jpeg(src, 75)
    for edit in (lambda im: im, lambda im: ImageEnhance.Contrast(im).enhance(1.2), lambda im: ImageEnhance.Brightness(im).enhance(0.8)):
        fine = version(jpeg(edit(_img(coarse)), 90), 0)
        assert compare(version(coarse, 1), fine) == (1, "requantized")
    rules = dict(canonical.RULES)
    grey = version(jpeg(ImageOps.grayscale(_img(coarse)).convert("RGB"), 90))  # the colour rule decides it first
    assert rules["requantized"](version(coarse), grey) == 1 and rules["requantized"](grey, version(coarse)) == -1
    assert rules["requantized"](version(jpeg(src, 95)), version(jpeg(_img(jpeg(src, 95)), 75))) == 0  # coarser copy: no trace
    assert rules["requantized"](version(jpeg(src, 75)), version(jpeg(src, 90))) == 0  # siblings from one source
    mirrored = jpeg(ImageOps.mirror(_img(coarse)), 90)
    assert rules["requantized"](version(coarse), version(mirrored)) == 0  # another grid: not compared


def test_the_source_of_three_versions_is_the_central_one():
    """An original and two copies with different edits (brighter, mirror image): each copy is one edit from
    the original and two from the other copy, so the original has the smallest spread and is kept, though
    no pairwise rule could tell it from either copy."""
    im = photo(7)
    o = jpeg(im, 90)
    bright, mirror = jpeg(ImageEnhance.Brightness(im).enhance(1.15), 90), jpeg(ImageOps.mirror(im), 90)
    versions = [version(bright, 0), version(mirror, 1), version(o, 2)]
    sims = np.array([[1, 0.90, 0.95], [0.90, 1, 0.95], [0.95, 0.95, 1]])  # descriptor similarities as a model gives them
    kept, why = choose(versions, sims, rules=canonical.RULES)
    assert kept == 2 and why.startswith("central"), why
    assert versions[2].f["spread"] < min(versions[0].f["spread"], versions[1].f["spread"])
    assert choose(versions[:2] + versions[2:], None, rules=canonical.RULES)[1] != "central"  # no similarities: no spread
    two = [version(bright, 0), version(o, 1)]
    choose(two, np.array([[1, 0.95], [0.95, 1]]))
    assert "spread" not in two[0].f  # two versions are equally central: no evidence


def test_the_stretch_rule_leaves_crops_along_one_axis_alone():
    im = photo(9)
    o, crop = version(jpeg(im), 1), version(jpeg(im.crop((0, 0, im.width * 3 // 4, im.height))), 0)
    assert dict(canonical.RULES)["stretched"](o, crop) == 0


def test_reposts_of_one_edited_copy_do_not_make_it_the_centre(original):
    """The photo and three re-encodes of its captioned copy: the re-encodes are nearly one image (similarity
    0.99, same tones), so they count as one group, there is no centre to find in two groups, and the
    caption loses on `local_edit`. Counted one by one, the captioned copy would be the most central."""
    cap = _caption(_img(original))
    versions = [version(jpeg(cap, 95), 0), version(jpeg(_img(jpeg(cap, 95)), 85), 1), version(jpeg(_img(jpeg(cap, 95)), 70), 2),
                version(original, 3)]
    sims = np.full((4, 4), 0.99)
    sims[3, :3] = sims[:3, 3] = 0.96
    np.fill_diagonal(sims, 1.0)
    kept, why = choose(versions, sims)
    assert kept == 3 and "central" not in why, why
    assert all("spread" not in v.f for v in versions)
    canonical.set_spread(versions, sims, same_sim=1.01)  # every re-encode its own group: the caption is central
    assert versions[0].f["spread"] < versions[3].f["spread"]


def test_a_lattice_is_optional_evidence():
    """A truncated JPEG, an EXIF-rotated one and a PNG have no lattice (and no error: it is optional evidence)."""
    from dedup.ops.quality import LATTICE_SIDE, luma_lattice

    data = jpeg(photo(11), 80)
    assert luma_lattice(data[: len(data) // 2]) is None
    exif = Image.Exif()
    exif[0x0112] = 6
    assert luma_lattice(jpeg(photo(11), 80, exif=exif.tobytes())) is None and luma_lattice(encode(photo(11), "PNG")) is None
    big = luma_lattice(jpeg(photo(11).resize((1000, 700)), 80))
    assert big.coef.shape == ((LATTICE_SIDE // 8) ** 2, 63) and big.size == (1000, 700)


@pytest.mark.parametrize("subsampling", [0, 2])
def test_the_lattice_reads_the_luma_as_decoded(subsampling):
    """The lattice's luma is the JPEG's Y channel as PIL's YCbCr decode gives it (OpenCV decodes it alone),
    for a colour JPEG with and without chroma subsampling and a grey one; its coefficients are the
    orthonormal 8 x 8 DCT's (scipy's, at the kept frequencies)."""
    from scipy.fft import dctn

    from dedup.ops.quality import LATTICE_FREQS, LATTICE_SIDE, luma_lattice

    for img in (photo(12).resize((700, 600)), photo(12).resize((700, 600)).convert("L")):
        data = jpeg(img, 85, subsampling=subsampling) if img.mode == "RGB" else jpeg(img, 85)
        pil = Image.open(io.BytesIO(data))
        pil.draft("YCbCr", pil.size)
        y = np.asarray(pil)
        y = y[..., 0] if y.ndim == 3 else y
        lat = luma_lattice(data)
        top, left = lat.origin
        assert np.array_equal(lat.luma, y[top:top + lat.luma.shape[0], left:left + lat.luma.shape[1]])
        square = y[top:top + LATTICE_SIDE, left:left + LATTICE_SIDE].astype(np.float64) - 128
        blocks = square.reshape(LATTICE_SIDE // 8, 8, -1, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
        ref = dctn(blocks, axes=(1, 2), norm="ortho").reshape(-1, 64)[:, LATTICE_FREQS]
        assert np.abs(lat.coef / 16 - ref).max() <= 1 / 32 + 1e-9


@pytest.mark.parametrize("turn", [ImageOps.mirror, ImageOps.flip, lambda im: im.transpose(Image.Transpose.ROTATE_90),
                                  lambda im: im.transpose(Image.Transpose.ROTATE_180)])
def test_a_mirrored_or_turned_copy_keeps_its_source_lattice(turn):
    """A JPEG at quality 75 and a mirror image or a turn of it saved at 90 (the grid moved): the copy,
    turned back, keeps the source's lattice and loses, whatever the quality settings say. Two turns of
    one source (siblings) and a copy saved from the source's pixels before any JPEG leave no trace."""
    rules = dict(canonical.RULES)
    src = photo(7).resize((437, 300))  # sides that are not multiples of 8: a mirror moves the grid
    coarse = jpeg(src, 75)
    copy = version(jpeg(turn(_img(coarse)), 90))
    assert lattices.turned_from(version(coarse).lattice, copy.lattice) > 0.3
    assert rules["reoriented"](version(coarse), copy) == 1 and rules["reoriented"](copy, version(coarse)) == -1
    assert rules["reoriented"](version(jpeg(src, 75)), version(jpeg(turn(src), 75))) == 0  # both from the pixels
    assert rules["reoriented"](version(coarse), version(jpeg(_img(coarse), 90))) == 0  # the same frame: requantized's


def test_turned_square_maps_every_turn():
    """Each of the seven turns brings a turned image's pixels back into the source's frame."""
    from dedup.ops.quality import luma_lattice

    a = np.asarray(photo(4).resize((437, 300)).convert("L"))
    src = luma_lattice(jpeg(Image.fromarray(a).convert("RGB"), 95))
    for transpose, rows, cols in lattices.TURNS:
        z = a.T if transpose else a
        z = np.ascontiguousarray(z[::-1] if rows else z)
        z = z[:, ::-1] if cols else z
        other = luma_lattice(jpeg(Image.fromarray(np.ascontiguousarray(z)).convert("RGB"), 95))
        back = lattices.turned_square(other, src, (transpose, rows, cols))
        assert back is not None and np.abs(back.astype(int) - other.luma[:back.shape[0], :back.shape[1]]).mean() < 3


def natural(seed: int, lo: int, hi: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A photo-like image without drawn shapes: smooth shading between grey levels ``lo`` and ``hi`` and a
    fine texture (so that nothing in it looks drawn, unlike textured_image's boxes and text)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    w, h = size
    shade = gaussian_filter(rng.normal(0, 1, (h, w)), 25)
    shade = (shade - shade.min()) / np.ptp(shade)
    texture = gaussian_filter(rng.normal(0, 1, (h, w)), 1.2)
    g = lo + (hi - lo) * (shade + 0.08 * texture / texture.std())
    return Image.fromarray(np.clip(np.stack([g * 1.05, g, g * 0.9], -1), 0, 255).astype(np.uint8))


def _thin_watermark(im: Image.Image) -> Image.Image:
    """The bench corpus's overlay: lines of one-pixel white text across the photo."""
    from PIL import ImageDraw

    im = im.copy()
    d = ImageDraw.Draw(im)
    for y in range(im.height // 16, im.height, im.height // 8):
        d.text((7, y), "WATERMARK  " * 12, fill=(255, 255, 255))
    return im


@pytest.mark.parametrize("shade", [(0, 70), (20, 120), (60, 200)])
def test_thin_white_text_does_not_continue_its_surroundings(shade):
    """One-pixel white text over a dark or mid-grey photo: its pixels, after JPEG's ringing, look drawn no
    more than a dark photo's near-black does (local_edit says nothing, or would pick the watermarked copy),
    but they do not continue their surroundings: drawn_on keeps the photo."""
    rules = dict(canonical.RULES)
    o = jpeg(natural(1, *shade), 85)
    x, y = version(o, 1), version(jpeg(_thin_watermark(_img(o))), 0)
    assert rules["local_edit"](x, y) == 0
    assert compare(x, y) == (1, "drawn_on") and compare(y, x) == (-1, "drawn_on")


def test_a_blurred_copy_is_not_drawn_on():
    """A photo with one spot of black-and-white texture, and a blurred copy: they differ mostly at the spot,
    where the photo's pure black and white look drawn; the copy is smoother everywhere else too, so neither
    local rule decides (unguarded, local_edit would keep the blurred copy) and the photo wins on detail."""
    im = np.asarray(natural(2, 60, 200)).copy()
    im[100:160, 200:290] = ((np.random.default_rng(2).random((60, 90)) > 0.5) * 255)[..., None]
    o = jpeg(Image.fromarray(im))
    x, y = version(o, 1), version(jpeg(_img(o).filter(ImageFilter.GaussianBlur(1.5))), 0)
    assert regions._region(x, y) is not None and canonical._local_edit(x, y, blur=0) == -1
    rules = dict(canonical.RULES)
    assert rules["local_edit"](x, y) == 0 and rules["drawn_on"](x, y) == 0
    assert compare(x, y)[0] == 1


def test_a_symmetric_picture_is_not_a_turned_copy():
    """A mirror-symmetric picture (its width on the 8 px grid) at JPEG 75 and a re-save of it at 90: the
    mirror turn matches as well as leaving it does, so no turn is taken (its lattice would say the re-save
    is a mirrored copy) and the same-frame rule is left to decide."""
    half = np.asarray(natural(3, 30, 220, (240, 360)))
    src = jpeg(Image.fromarray(np.concatenate([half, half[:, ::-1]], 1)), 75)
    x, y = version(src), version(jpeg(_img(src), 90))
    mirrored = lattices.turned_square(x.lattice, y.lattice, (False, False, True))
    assert np.corrcoef(mirrored.ravel().astype(float), x.lattice.luma[:360, :480].ravel().astype(float))[0, 1] > 0.9
    assert lattices.turned_from(x.lattice, y.lattice) == 0 and lattices.turned_from(y.lattice, x.lattice) == 0
    assert dict(canonical.RULES)["reoriented"](x, y) == 0


# ---- re-encodes across formats (issue 25): the JPEG they were made from is kept ------------------------


def _noisy(im: Image.Image, seed: int = 0) -> Image.Image:
    """Another decoder's pixels: +-1 level here and there."""
    a = np.asarray(im).astype(np.int16) + np.random.default_rng(seed).integers(-1, 2, np.asarray(im).shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("quality", [75, 90])
@pytest.mark.parametrize("made", ["PNG from another decoder", "lossless WebP"])
def test_a_file_saved_from_a_jpeg_keeps_its_lattice_and_loses(made, quality):
    src = jpeg(textured_image(11), quality)
    im = _img(src)
    data = {"PNG from another decoder": lambda: encode(_noisy(im), "PNG"),
            "lossless WebP": lambda: encode(_noisy(im), "WEBP", lossless=True)}[made]()
    o, c = version(src, 1), version(data, 0)
    assert lattices.jpeg_kept_in(o, c) > 0.3
    assert compare(o, c) == (1, "saved_from_jpeg") and compare(c, o) == (-1, "saved_from_jpeg")


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_a_jpeg_made_from_another_format_does_not_win_by_lattice(fmt):
    """The other way: the PNG (or WebP) is the original and the JPEG was saved from it: the JPEG's lattice is
    not in the original's pixels (chance level), so the rule says nothing; nor where the original's pixels
    are themselves a decoded JPEG of another quality (``photo``: quality 92; the lattices share points)."""
    for im, chance in ((textured_image(12), True), (photo(12), False)):
        src = encode(im, fmt, **({"quality": 90} if fmt == "WEBP" else {}))
        for q in (75, 95):
            o, c = version(src, 1), version(jpeg(_img(src), q), 0)
            assert not chance or lattices.jpeg_kept_in(c, o) < 0.15
            assert dict(canonical.RULES)["saved_from_jpeg"](o, c) == 0


@pytest.mark.parametrize("quality", [50, 80, 95])
def test_a_lossy_webp_re_save_loses_to_its_jpeg(quality):
    """The issue's case: a lossy WebP of a JPEG won on jpeg_quality_exact (100 for any file not a JPEG)."""
    src = jpeg(textured_image(13), 92)
    webp = encode(_img(src), "WEBP", quality=quality)
    f = measure(webp)[0]
    assert f["lossy"] == 1 and f["lossless"] == 0
    assert measure(encode(_img(src), "WEBP", lossless=True))[0]["lossless"] == 1
    o, c = version(src, 1), version(webp, 0)
    assert compare(o, c)[0] == 1 and choose([c, o])[0] == 1
    assert dict(canonical.RULES)["jpeg_format"](c, o) == -1  # the tie-break alone, either order
    assert dict(canonical.RULES)["jpeg_format"](version(encode(_img(src), "PNG")), o) == 0  # a lossless file: no format rule
    poor = version(jpeg(_img(src), 50), 1)
    assert dict(canonical.RULES)["jpeg_quality"](poor, c) == 0  # a WebP's "quality 100" is no evidence
    assert compare(poor, version(encode(_img(jpeg(_img(src), 50)), "WEBP", quality=quality), 0))[0] == 1


def test_webp_lossless_reads_the_bitstream_behind_extended_chunks():
    from dedup.ops.quality import webp_lossless

    im = photo(14)
    assert not webp_lossless(encode(im, "WEBP", quality=80, icc_profile=b"x" * 301))  # VP8X, ICCP, then VP8
    assert webp_lossless(encode(im, "WEBP", lossless=True, icc_profile=b"x" * 301))
    assert not webp_lossless(b"RIFF\x00\x00\x00\x00WEBP")  # truncated


def test_lossy_copy_needs_pixels_that_differ_only_by_compression():
    """A WebP re-save at quality 80 is close to its JPEG (lossy_copy decides before rules that read
    compression's side effects as edits); a blurred or brightened WebP is not a re-encode, and the rules
    for those edits decide."""
    src = jpeg(textured_image(15), 92)
    im = _img(src)
    o = version(src, 1)
    assert compare(o, version(encode(im, "WEBP", quality=80), 0)) == (1, "lossy_copy")
    rule = dict(canonical.RULES)["lossy_copy"]
    for edited in (im.filter(ImageFilter.GaussianBlur(1.5)), ImageEnhance.Brightness(im).enhance(1.15), _caption(im)):
        c = version(encode(edited, "WEBP", quality=90), 0)
        assert rule(o, c) == 0 and compare(o, c)[0] == 1


# ---- copies that must never be kept (issue 25) ----------------------------------------------------------


def _with_highlights(seed: int) -> Image.Image:
    """A photo with blown-out highlights: thin pure white streaks (glints, wires against the sky) in
    textured surroundings."""
    from PIL import ImageDraw

    im = _img(jpeg(textured_image(seed), 95))
    d = ImageDraw.Draw(im)
    rng = np.random.default_rng(seed)
    for _ in range(14):
        x, y = int(rng.integers(0, im.width)), int(rng.integers(0, im.height))
        d.line([x, y, x + int(rng.integers(-120, 120)), y + int(rng.integers(-80, 80))], fill=(255, 255, 255), width=8)
    return im


@pytest.mark.parametrize("radius", [1.5, 3.0])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_blurred_copy_loses_even_where_it_spreads_the_highlights(radius, fmt):
    """A blur spreads the photo's pure white into its surroundings, where the photo is clipped: that looked
    like detail the photo lost (clipped_detail kept the blur of 3 px, at any file quality)."""
    src = jpeg(_with_highlights(16), 90)
    blurred = encode(_img(src).filter(ImageFilter.GaussianBlur(radius)), fmt, **({"quality": 98} if fmt == "JPEG" else {}))
    o, c = version(src, 1), version(blurred, 0)
    clip = dict(canonical.RULES)["clipped_detail"]
    assert clip(o, c) >= 0 and clip(c, o) <= 0  # never for the blur
    assert compare(o, c)[0] == 1 and choose([c, o])[0] == 1
    if radius == 3.0:
        assert canonical._clip_rule(o, c, blur=0.0) == -1  # without the guard: the blur wins


def test_a_brightened_copy_still_loses_on_clipped_detail(original):
    """The guard leaves clipped_detail's own case: a brightened copy is not blurred."""
    im = _img(original)
    o, c = version(original, 1), version(jpeg(ImageEnhance.Brightness(im).enhance(1.6), 95), 0)
    assert dict(canonical.RULES)["clipped_detail"](o, c) == 1


# ---- framed (dedup.ops.lineage): content added around the picture, or the picture put in a new frame -----


def _canvas(size: tuple[int, int], seed: int = 9) -> Image.Image:
    """A textured background, not a uniform one (a gradient, soft noise and a grid, as a made canvas)."""
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    noise = np.kron(rng.normal(0, 18, (h // 16 + 1, w // 16 + 1)), np.ones((16, 16)))[:h, :w]
    base = np.stack([90 + 80 * xx / w + noise, 110 + 60 * yy / h + noise, 150 - 50 * (xx + yy) / (w + h) + noise], -1)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(4))
    draw = ImageDraw.Draw(img)
    for x in range(0, w, 64):
        draw.line([(x, 0), (x, h)], fill=(235, 235, 235))
    return img


def _meme(im: Image.Image) -> Image.Image:
    from PIL import ImageDraw

    out = Image.new("RGB", (im.width, im.height + 120), "white")
    out.paste(im, (0, 120))
    ImageDraw.Draw(out).text((20, 40), "WHEN THE CODE WORKS ON THE FIRST TRY", fill="black")
    return out


def _pasted(im: Image.Image) -> Image.Image:
    out = _canvas((im.width * 2, im.height * 2))
    out.paste(im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.Resampling.LANCZOS), (im.width // 3, im.height // 2))
    return out


def _letterbox(im: Image.Image) -> Image.Image:
    out = Image.new("RGB", (im.width, im.width * 9 // 8), (0, 0, 0))
    out.paste(im, (0, (out.height - im.height) // 2))
    return out


FRAMES = {  # the copy's bytes from the original's image: all made from it by adding content around it
    "meme card": lambda im: jpeg(_meme(im), 95),
    "pasted small on a textured canvas": lambda im: jpeg(_pasted(im), 95),
    "letterbox bars": lambda im: jpeg(_letterbox(im), 95),
    "rotated 20 degrees in its frame, grey corners": lambda im: jpeg(im.rotate(20, Image.Resampling.BICUBIC, fillcolor=(128, 128, 128)), 95),
    "perspective warp in its frame": lambda im: jpeg(im.transform(im.size, Image.Transform.PERSPECTIVE,
                                                                  (1.05, 0.08, -20, 0.03, 1.1, -25, 0.0002, 0.0001), Image.Resampling.BICUBIC), 95),
    # pads that continue the picture across its edges, as torchvision's Pad and albumentations' borders make
    "reflect pad": lambda im: jpeg(_padded(im, "reflect"), 95),
    "edge pad": lambda im: jpeg(_padded(im, "edge"), 95),
    "turned and sheared in its frame, corners reflected": lambda im: jpeg(_reflected_warp(im), 95),
}


def _reflected_warp(im: Image.Image) -> Image.Image:
    """Turned 10 degrees and sheared 12, in the same frame, its corners filled by OpenCV's reflected border (as
    albumentations' and OpenCV's warps fill them by default)."""
    import cv2

    w, h = im.size
    turn = np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), 10, 0.95), [0, 0, 1]])
    shear = np.array([[1, np.tan(np.radians(12)), -np.tan(np.radians(12)) * h / 2], [0, 1, 0], [0, 0, 1]])
    return Image.fromarray(cv2.warpAffine(np.asarray(im), (turn @ shear)[:2], (w, h), borderMode=cv2.BORDER_REFLECT_101))


def _padded(im: Image.Image, mode: str) -> Image.Image:
    """The picture padded by numpy in ``mode`` (reflect: mirrored past its edges; edge: its edge pixels repeated)."""
    return Image.fromarray(np.pad(np.asarray(im), ((36, 48), (60, 24), (0, 0)), mode=mode))


@pytest.mark.parametrize("edit", list(FRAMES))
def test_a_copy_with_content_added_around_the_picture_loses_by_framed(edit):
    """The copy is saved at a higher JPEG quality than the original and is larger (or as large): only
    the evidence of the added frame keeps the original."""
    original = jpeg(photo(5), 80)
    o, c = version(original, 1), version(FRAMES[edit](_img(original)), 0)
    assert dict(canonical.RULES)["framed"](o, c) == 1, edit
    assert compare(o, c) == (1, "framed") and compare(c, o) == (-1, "framed")


@pytest.mark.parametrize("box", [(0, 0, 400, 300), (60, 40, 420, 330), (100, 0, 480, 360)])
def test_a_crop_is_not_framed(box):
    """A crop's source has picture around the crop, which goes on across the crop's edges: no decision
    (``picture`` keeps the source)."""
    src = photo(7).resize((480, 360))
    o, c = version(jpeg(src, 90), 1), version(jpeg(src.crop(box), 95), 0)
    assert dict(canonical.RULES)["framed"](o, c) == 0
    assert compare(o, c)[0] == 1


@pytest.mark.parametrize("mode", ["reflect", "symmetric", "edge"])
def test_a_pad_that_repeats_the_picture_is_a_fill_the_scene_around_a_crop_is_not(mode):
    """:func:`dedup.ops.lineage.self_fill`: the padded copy's extra is the picture mirrored or repeated; the
    source's extra around a crop of it is the scene going on, and not a fill."""
    from dedup.ops import lineage

    src = photo(7).resize((480, 360))
    for a, b, fill in ((jpeg(src, 90), jpeg(_padded(src, mode), 90), (False, True)),
                       (jpeg(src, 90), jpeg(src.crop((60, 40, 420, 330)), 90), (False, False))):
        x, y = version(a, 1), version(b, 0)
        assert lineage.fills(x, y) == fill, mode


def _checked(a: bytes, b: bytes):
    """The content check's result for (a, b): (passed, its transform a -> b in unit coordinates)."""
    from dedup.ops import verify

    p = verify.VerifyParams()
    fa, fb = (verify.Features(verify.grey_view(d, p.size, p.enlarge), p) for d in (a, b))
    r = verify.check(fa, fb, p)
    return r[0], r[5]


@pytest.mark.parametrize("edit", list(FRAMES))
def test_framed_registers_with_the_content_checks_transform(edit):
    """Where the content check matched the pair, ``framed`` takes its transform (``links``) and finds the
    same frame without keypoints of its own, whichever of the two holds it."""
    original = jpeg(photo(5), 80)
    copy = FRAMES[edit](_img(original))
    ok, t = _checked(original, copy)
    assert ok and t is not None
    for holder in ("source", "copy"):
        o, c = version(original, 1), version(copy, 0)
        o.vid, c.vid = 1, 2
        if holder == "source":
            o.links[2] = t  # source -> copy
        else:
            c.links[1] = np.linalg.inv(t)  # copy -> source
        framed = dict(canonical.RULES)["framed"]
        assert framed(o, c) == 1 and framed(c, o) == -1, (edit, holder)
        assert o.reg[1] is None and c.reg[1] is None  # no keypoints were described


@pytest.mark.parametrize("box", [(0, 0, 400, 300), (60, 40, 420, 330)])
def test_a_crop_is_not_framed_under_the_content_checks_transform(box):
    src = photo(7).resize((480, 360))
    a, b = jpeg(src, 90), jpeg(src.crop(box), 95)
    ok, t = _checked(a, b)
    o, c = version(a, 1), version(b, 0)
    o.vid, c.vid, o.links[2] = 1, 2, t
    assert ok and dict(canonical.RULES)["framed"](o, c) == 0


def test_a_mirror_copys_transform_is_the_mirror_in_unit_coordinates():
    """A mirrored match is kept to the other image's own frame: u -> 1 - u (any view size of either)."""
    from dedup.ops.verify import from_unit

    src = photo(5)
    ok, t = _checked(jpeg(src, 90), jpeg(ImageOps.mirror(src).resize((src.width // 2, src.height // 2)), 90))
    assert ok
    np.testing.assert_allclose(t, [[-1, 0, 1], [0, 1, 0], [0, 0, 1]], atol=0.02)
    px = from_unit(t, (360, 480), (180, 240))  # pixels of a 480 x 360 view -> a 240 x 180 one
    np.testing.assert_allclose(px @ [0, 0, 1], [239 - 0.5 * 0 - 0.0, 0, 1], atol=1.5)  # the left edge goes right


def test_edge_step_tells_a_pasted_edge_from_a_cut_one():
    from dedup.ops.lineage import edge_step

    g = np.asarray(photo(5).convert("L"), np.float32)  # 480 x 360 or so
    h, w = g.shape
    inner = np.array([[60, 50], [w - 60, 50], [w - 60, h - 50], [60, h - 50]], np.float64)
    assert edge_step(g, inner) < 2.0  # the picture goes on across a crop's edges
    im = photo(5)
    framed = np.asarray(_pasted(im).convert("L"), np.float32)
    x0, y0, pw, ph = im.width // 3, im.height // 2, im.width * 3 // 4, im.height * 3 // 4
    pasted = np.array([[x0, y0], [x0 + pw - 1, y0], [x0 + pw - 1, y0 + ph - 1], [x0, y0 + ph - 1]], np.float64)
    assert edge_step(framed, pasted) > 2.0  # every edge of the pasted picture is a step
    assert edge_step(g, np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)) is None  # no edge inside


def test_recompressed_a_lower_quality_re_save_loses():
    src = jpeg(natural(6, 40, 200), 95)
    o, c = version(src, 1), version(jpeg(_img(src), 75), 0)
    assert dict(canonical.RULES)["recompressed"](o, c) == 1
    assert compare(o, c) == (1, "recompressed")
    brighter = version(jpeg(ImageEnhance.Brightness(_img(src)).enhance(1.3), 70), 0)
    assert dict(canonical.RULES)["recompressed"](o, brighter) == 0  # not only compression: not this rule's


def test_resaved_a_jpeg_saved_again_from_another_loses_to_it():
    """A JPEG at quality 96 and a re-save of its pixels at 70 (or a caption drawn on it first): the re-save's
    luma coefficients are the source's quantised again with its own table, and the source wins by that,
    where the two are too far apart in pixels for ``recompressed``. The other way round (a finer re-save of
    a coarser JPEG) is ``requantized``'s; a blurred re-save moves every coefficient."""
    from PIL import ImageDraw

    src = jpeg(photo(7), 96)
    rules = dict(canonical.RULES)
    o, c = version(src, 1), version(jpeg(_img(src), 70), 0)
    assert rules["resaved"](o, c) == 1 and rules["resaved"](c, o) == -1
    captioned = _img(src)
    ImageDraw.Draw(captioned).rectangle((0, 0, captioned.width, 40), fill=(255, 255, 255))
    assert rules["resaved"](o, version(jpeg(captioned, 70))) == 1
    assert lattices.requantized_from(o.lattice, c.lattice) > 0.9 > 0.5 > lattices.requantized_from(c.lattice, o.lattice)
    coarse = jpeg(photo(7), 70)
    assert rules["resaved"](version(coarse), version(jpeg(_img(coarse), 96))) == 0  # requantized decides it
    assert rules["resaved"](o, version(jpeg(_img(src).filter(ImageFilter.GaussianBlur(1.5)), 70))) == 0


def test_pasted_the_version_inside_the_others_picture_outline_wins():
    """The content check put x's whole frame where an outline was found inside y (a page, a canvas): y is x
    pasted there. Elsewhere in y (a crop of a detail that happens to lie in y), no decision."""
    from dedup.ops.canonical import PLAIN, Version, _pasted

    into_box = np.array([[0.3, 0, 0.3], [0, 0.3, 0.4], [0, 0, 1.0]])  # x's unit frame -> (0.3, 0.4, 0.6, 0.7) in y
    x = Version({}, 0, vid=0, links={1: into_box})
    y = Version({}, 1, vid=1, box=(0.31, 0.41, 0.6, 0.69))
    assert _pasted(x, y) == 1 and _pasted(y, x) == -1  # the link is read either way
    y.box = (0.0, 0.0, 0.5, 0.5)
    assert _pasted(x, y) == 0
    y.box = (0.3, 0.4, 0.6, 0.7)
    x.links[1] = np.array([[0, -0.3, 0.6], [0.3, 0, 0.4], [0, 0, 1.0]])  # turned a quarter into the box: a sibling's frame
    assert _pasted(x, y) == 0
    assert "pasted into a larger image" in PLAIN["pasted"]


@pytest.mark.parametrize("box", [(60, 40, 420, 310), (0, 0, 360, 270), (120, 90, 480, 360)])
def test_a_crop_enlarged_back_to_the_photos_size_loses_by_contains(box):
    """A crop resized back up to the photo's size has as many pixels as the photo (``picture`` cannot tell
    them apart), and is saved at a higher quality: the photo holds all of the crop's picture and the scene
    around it."""
    src = photo(7).resize((480, 360))
    o, c = version(jpeg(src, 80), 1), version(jpeg(src.crop(box).resize(src.size, Image.Resampling.BICUBIC), 95), 0)
    contains = dict(canonical.RULES)["contains"]
    assert contains(o, c) == 1 and contains(c, o) == -1
    assert compare(o, c) == (1, "contains")
    best, why = choose([c, o])
    assert best == 1 and "crop" in canonical.in_words(why)


@pytest.mark.parametrize("edit", list(FRAMES))
def test_content_added_around_the_picture_is_not_more_of_the_scene(edit):
    """A pad, a card, a canvas or a caption bar around the photo is not the photo going on: ``contains``
    does not take the framed copy for the source (``framed`` keeps the photo)."""
    original = jpeg(photo(5), 80)
    o, c = version(original, 1), version(FRAMES[edit](_img(original)), 0)
    assert dict(canonical.RULES)["contains"](o, c) >= 0, edit


@pytest.mark.parametrize("colour", ["black", (40, 90, 160)])
def test_a_caption_bar_is_not_more_of_the_scene(colour):
    """A bar of one colour with a line of text added below the photo: the text has detail, but most of the
    bar is flat, as the photo is not."""
    from PIL import ImageDraw

    src = photo(5)
    out = Image.new("RGB", (src.width, src.height + 40), colour)
    out.paste(src, (0, 0))
    ImageDraw.Draw(out).text((10, src.height + 12), "A CAPTION LINE, AND SOME MORE WORDS IN IT", fill="white")
    o, c = version(jpeg(src, 80), 1), version(jpeg(out, 95), 0)
    assert dict(canonical.RULES)["contains"](o, c) >= 0


def test_the_photo_on_its_own_blurred_enlargement_does_not_contain_it():
    """The photo pasted over a blurred enlargement of itself (a square post's fill): the fill goes on with
    the picture's colours but not its detail, so it is not more of the scene."""
    src = photo(5)
    side = max(src.size)
    back = src.resize((side, side), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(side / 30))
    back.paste(src, ((side - src.width) // 2, (side - src.height) // 2))
    o, c = version(jpeg(src, 80), 1), version(jpeg(back, 95), 0)
    assert dict(canonical.RULES)["contains"](o, c) >= 0


def test_thin_pads_around_a_small_copy_are_not_more_of_the_scene():
    """A thumbnail of the photo in nested pads a few pixels wide, re-saved lossily: the copy must not take
    the photo for a crop of itself (with the content check's transform, as a run hands it over: too few
    keypoints on so small a copy to register it here). These made pads keep sharp edges, which the frame
    step alone refuses; the AugLy copy that went wrong had them softened by a resize after the first pad,
    so the margin itself is pinned by the next test."""
    from PIL import ImageOps

    src = photo(5).resize((170, 160))
    small = ImageOps.expand(src, border=12, fill=(128, 128, 128)).resize((66, 62), Image.Resampling.BICUBIC)
    for _ in range(2):
        small = _img(jpeg(ImageOps.expand(small, border=4, fill=(255, 255, 255)), 80))
    o, c = version(jpeg(src, 90), 1), version(jpeg(small, 77), 0)
    inset = (8 + 12 * 66 / 194, 8 + 12 * 62 / 184)  # the photo's corner in the copy, px
    o.vid, c.vid = 1, 0
    c.links = {1: np.array([[82 / 57.8, 0, -inset[0] / 57.8], [0, 78 / 54.3, -inset[1] / 54.3], [0, 0, 1.0]])}
    contains = dict(canonical.RULES)["contains"]
    assert contains(o, c) >= 0 and contains(c, o) <= 0


def test_contains_reads_the_texture_beyond_away_from_its_edges():
    """What lies beyond the other's frame is read ``margin`` px from its edges: a strip a few pixels wide (a
    pad on a small copy, whose texture windows all straddle its edges) leaves nothing to read, and nothing
    is decided on it; a wide part keeps its inside."""
    from dedup.ops.lineage import _away, _texture

    beyond = np.zeros((80, 80), bool)
    beyond[:, :4] = beyond[:, -4:] = True  # pads 4 px wide on either side
    assert not _away(beyond, 5).any()
    lap = np.full((80, 80), 30.0, np.float32)  # the strips' windows straddle the pad's edge: textured
    assert _texture((lap, np.zeros((80, 80), bool)), _away(beyond, 5)) == (0.0, 0.0)
    wide = np.zeros((80, 80), bool)
    wide[:, 40:] = True
    inside = _away(wide, 5)
    assert inside[5:-5, 45:-5].all() and not inside[:, :45].any() and not inside[:5].any()


def test_edge_profiles_sample_as_scipy_would_and_the_drawn_on_filter_is_scipys():
    """The profiles' one gather over all edges gives scipy's linear interpolation, and the drawn-on check's
    Gaussian (OpenCV's) scipy's filter, on frames of any size: the kept-image decisions do not move."""
    import cv2
    from scipy.ndimage import gaussian_filter, map_coordinates

    from dedup.ops.lineage import _bilinear

    rng = np.random.default_rng(3)
    for h, w in [(2, 2), (17, 40), (288, 384)]:
        g = cv2.GaussianBlur((rng.random((h, w)) * 255).astype(np.uint8), (0, 0), 1.0)
        x, y = rng.uniform(0, w - 1, 500), rng.uniform(0, h - 1, 500)
        x[:2], y[:2] = w - 1, h - 1  # the far edges themselves
        want = map_coordinates(g.astype(np.float32), [y, x], order=1)
        np.testing.assert_allclose(_bilinear(g, x, y), want, atol=1e-4)
        a = (rng.random((h, w)) * 255).astype(np.float32)
        np.testing.assert_allclose(regions._gaussian(a, 3.0), gaussian_filter(a, 3.0), atol=1e-3)
