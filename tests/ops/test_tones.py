"""Evidence of a tone edit over the whole picture (dedup.ops.tones): an equalized copy, a tone map that folds or
merges levels (solarize), on images made here."""
import numpy as np
import pytest
from PIL import ImageDraw, ImageEnhance, ImageFilter, ImageOps

from dedup.ops.canonical import choose, in_words
from dedup.ops.tones import _equalized, _tone_mapped, _uneven
from tests.ops.test_canonical import jpeg, photo, version


def _equalize_each_channel(im):
    return ImageOps.equalize(im)  # PIL equalizes each band of an RGB image by its own histogram


def _photo(seed: int = 3):
    """The test photo with its tones pressed toward the shadows, as most photos' are (the made one's are
    spread almost evenly already)."""
    return photo(seed).point(lambda i: int(255 * (i / 255) ** 1.8))


@pytest.mark.parametrize("seed", [3, 5])
def test_an_equalized_copy_loses_to_its_photo(seed):
    im = _photo(seed)
    o, c = version(jpeg(im, 92), 1), version(jpeg(_equalize_each_channel(im), 90), 0)
    assert _uneven(c) <= 8.0 < 16.0 <= _uneven(o)
    assert _equalized(o, c) == 1 and _equalized(c, o) == -1
    best, why = choose([c, o])  # the copy first in the tie-break order
    assert best == 1 and "equalized" in why
    assert "equalized" in in_words(why)


def test_other_tone_edits_and_grey_versions_are_not_read_as_equalized():
    im = _photo()
    o = version(jpeg(im, 92), 1)
    for edit in (lambda i: ImageEnhance.Contrast(i).enhance(1.5), lambda i: ImageOps.autocontrast(i, cutoff=2),
                 lambda i: ImageEnhance.Brightness(i).enhance(0.7)):
        assert _equalized(o, version(jpeg(edit(im), 90), 0)) == 0
    grey = im.convert("L").convert("RGB")
    grey_eq = version(jpeg(ImageOps.equalize(grey), 90), 0)
    assert _uneven(grey_eq) is None  # a grey photo may have been equalized before it was published
    assert _equalized(version(jpeg(grey, 92), 1), grey_eq) == 0
    assert _equalized(grey_eq, version(jpeg(_equalize_each_channel(im), 90), 0)) == 0


def test_uneven_reads_an_even_spread_as_zero():
    levels = np.repeat(np.asarray([2, 10, 25, 50, 75, 90, 98], np.float32)[:, None] * 2.55, 3, axis=1).ravel()
    v = version(jpeg(photo(), 92))
    v.tone = levels
    assert _uneven(v) == pytest.approx(0.0, abs=1e-4)


def _grey_photo(seed: int):
    """A grey photo: its luma through a tone curve is the curve of its luma (a colour photo's channels go
    through it apart, and its luma follows only as far as its colours allow)."""
    return photo(seed).convert("L").convert("RGB")


@pytest.mark.parametrize("base", [_grey_photo, lambda seed: ImageEnhance.Color(photo(seed)).enhance(0.3)])
@pytest.mark.parametrize("seed", [3, 5])
def test_a_solarized_copy_loses_by_its_folded_tones(base, seed):
    im = base(seed)
    o, c = version(jpeg(im, 92), 1), version(jpeg(ImageOps.solarize(im, 128), 85), 0)
    assert _tone_mapped(o, c) == 1 and _tone_mapped(c, o) == -1
    best, why = choose([c, o])
    assert best == 1 and "tone_mapped" in why


def _captioned(im):
    im = im.copy()
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, im.width, im.height // 5), fill=(255, 255, 255))
    draw.text((10, 10), "A CAPTION OVER THE TOP", fill=(0, 0, 0))
    return im


@pytest.mark.parametrize("edit", [_captioned, ImageOps.mirror, lambda im: im, lambda im: im.filter(ImageFilter.GaussianBlur(2))])
def test_no_tone_map_read_where_one_region_changed_or_nothing_lines_up(edit):
    """A caption changes one region only (each quarter must say the same); a mirror image is not aligned; a
    re-save or a blur maps no level onto several."""
    im = _grey_photo(3)
    o, c = version(jpeg(im, 92), 1), version(jpeg(edit(im), 85), 0)
    assert _tone_mapped(o, c) == 0 == _tone_mapped(c, o)


def test_views_too_small_to_read_say_nothing():
    """A strip a few pixels high (its quarters nearly empty) is never read as a tone map."""
    strip = photo(3).resize((256, 6))
    o, c = version(jpeg(strip, 92), 1), version(jpeg(ImageOps.solarize(strip, 128), 85), 0)
    assert _tone_mapped(o, c) == 0 == _tone_mapped(c, o)
