"""The kept-image model (dedup.ops.evidence) and the per-image measures it added (noise floor, hue spread,
combed tones), on images made here."""
import io
import json

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from dedup.ops import evidence
from dedup.ops.canonical import RULES, choose, in_words
from dedup.ops.quality import hue_spread, noise_floor, tone_comb
from tests.ops.test_canonical import jpeg, photo, version


def _sepia(im: Image.Image) -> Image.Image:
    m = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)
    return Image.fromarray(np.clip(np.asarray(im, np.float32) @ m.T, 0, 255).astype(np.uint8))


def _noisy(im: Image.Image, sigma: float = 12.0) -> Image.Image:
    a = np.asarray(im, np.float32) + np.random.default_rng(0).normal(0, sigma, (im.height, im.width, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def test_noise_floor_rises_with_added_noise_and_falls_with_blur():
    grey = np.asarray(photo().convert("L"), np.float32)
    noisy = np.asarray(_noisy(photo()).convert("L"), np.float32)
    blurred = np.asarray(photo().filter(ImageFilter.GaussianBlur(2)).convert("L"), np.float32)
    assert noise_floor(noisy) > 3 * noise_floor(grey)
    assert noise_floor(blurred) <= noise_floor(grey)
    assert noise_floor(np.zeros((8, 8), np.float32)) == 0.0  # too small to tell


def test_hue_spread_narrows_under_a_tint_not_under_saturation():
    rgb = np.asarray(photo(), np.uint8)
    base = hue_spread(rgb)
    assert hue_spread(np.asarray(_sepia(photo()), np.uint8)) < base - 0.5
    assert hue_spread(np.asarray(photo().convert("L").convert("RGB"), np.uint8)) == 0.0
    more = np.asarray(ImageEnhance.Color(photo()).enhance(1.6), np.uint8)
    assert abs(hue_spread(more) - base) < 0.3


@pytest.mark.parametrize("edit, survives_jpeg", [
    (lambda im: ImageOps.posterize(im, 4), True),
    (lambda im: ImageEnhance.Contrast(im).enhance(1.4), True),
    (lambda im: ImageOps.autocontrast(im, cutoff=2), False),
    (lambda im: im.point([int(round(255 * (i / 255) ** 0.7)) for i in range(256)] * 3), False),  # a gamma curve
])
def test_tone_edits_comb_the_histogram(edit, survives_jpeg):
    src = photo()
    base = tone_comb(np.asarray(src, np.uint8))
    assert tone_comb(np.asarray(edit(src), np.uint8)) > base + 0.05  # as saved losslessly
    if survives_jpeg:  # a strong edit's gaps and peaks outlive a JPEG save; a mild one's are filled in by it
        copy = Image.open(io.BytesIO(jpeg(edit(src), 90))).convert("RGB")
        assert tone_comb(np.asarray(copy, np.uint8)) > base + 0.05
    assert tone_comb(np.asarray(src.convert("L"), np.uint8)) < 0.2  # one channel: its own histogram
    assert tone_comb(np.full((64, 64, 3), 200, np.uint8)) == 1.0  # a flat picture: no histogram to read


def test_a_palette_file_gives_no_evidence_of_combed_tones():
    """A GIF or PNG-8's histogram is combed by its format: neither it nor its JPEG re-save says anything by
    their tones."""
    im = photo()
    buf = io.BytesIO()
    im.quantize(colors=64).save(buf, "PNG")
    gif, copy = version(buf.getvalue(), 1), version(jpeg(im.quantize(colors=64).convert("RGB"), 92), 0)
    assert gif.f["combed"] == -1.0 and copy.f["combed"] >= 0
    assert evidence.features(gif, copy)[evidence.NAMES.index("combed")] == 0.0


@pytest.fixture(scope="module")
def versions():
    im = photo()
    return {
        "original": version(jpeg(im, 92), 1),
        "blurred": version(jpeg(im.filter(ImageFilter.GaussianBlur(2.5)), 92), 0),
        "noisy": version(jpeg(_noisy(im), 92), 0),
        "sepia": version(jpeg(_sepia(im), 92), 0),
        "downscaled": version(jpeg(im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS), 92), 0),
        "posterized": version(jpeg(ImageOps.posterize(im, 4), 92), 0),
        "more contrast": version(jpeg(ImageEnhance.Contrast(im).enhance(1.4), 92), 0),
    }


def test_features_are_antisymmetric(versions):
    o = versions["original"]
    for name, c in versions.items():
        if name != "original":
            assert np.allclose(evidence.features(o, c), -evidence.features(c, o)), name
    assert len(evidence.features(o, versions["blurred"])) == len(evidence.NAMES)


# added noise: see docs/how-it-decides.md; the photo wins over a tone edit by the copy's combed tones (not yet
# over a mild autocontrast, whose gaps the JPEG save fills in)
@pytest.mark.parametrize("edit", ["blurred", "sepia", "downscaled", "posterized", "more contrast"])
def test_the_model_keeps_the_original(versions, edit):
    o, c = versions["original"], versions[edit]
    s, why = evidence.score(o, c)
    assert s > 0, (edit, s, why)
    assert evidence.score(c, o)[0] == pytest.approx(-s)
    best, reason = choose([c, o])  # the copy first in the tie-break order
    assert best == 1, (edit, reason)
    assert "largest" not in in_words(reason)


@pytest.mark.parametrize("sigma", [20, 30])
def test_strong_added_noise_loses_by_noise_added(sigma):
    """Noise of 20 grey levels or more over the whole picture (AugLy's random_noise at its default is about
    25): the two differ by white noise that does not follow the photo's edges. Milder noise is left to the model
    (:func:`test_detail_added_above_a_photos_own_loses`)."""
    im = photo()
    o, c = version(jpeg(im, 92), 1), version(jpeg(_noisy(im, sigma), 92), 0)
    best, why = choose([c, o])
    assert best == 1 and "noise_added" in why


@pytest.mark.parametrize("edit", [lambda im: _noisy(im, 8), lambda im: _noisy(im, 12),
                                  lambda im: ImageEnhance.Sharpness(im).enhance(5.0)])
def test_detail_added_above_a_photos_own_loses(edit):
    """Milder noise than ``noise_added`` takes, or strong sharpening, puts the copy's detail at the pixel scale
    above what a photo at its own resolution has (``native_excess``): the photo is kept. A blurred copy has
    less, but neither of the two is above the ceiling: the level, not the difference, says added."""
    im = photo()
    o, c = version(jpeg(im, 92), 1), version(jpeg(edit(im), 92), 0)
    k = evidence.NAMES.index("native_excess")
    assert evidence.features(o, c)[k] < 0 < evidence.features(c, o)[k]
    assert choose([c, o])[0] == 1
    blurred = version(jpeg(im.filter(ImageFilter.GaussianBlur(2)), 92), 0)
    assert evidence.features(o, blurred)[k] == 0.0


@pytest.mark.parametrize("edit", [lambda im: jpeg(ImageOps.posterize(im, 3), 90), lambda im: jpeg(im, 15),
                                  lambda im: jpeg(im.filter(ImageFilter.GaussianBlur(2)), 92)])
def test_quantised_re_encoded_or_blurred_copies_are_not_the_photo_plus_noise(edit):
    """Quantising takes away an error as white as noise (and combs the tones); a heavy JPEG or a blur takes
    away the finest detail (neighbours anti-correlated, or following the edges): the photo is never the
    copy "with noise added"."""
    im = photo()
    o, c = version(jpeg(im, 92), 1), version(edit(im), 0)
    assert dict(RULES)["noise_added"](o, c) >= 0


def test_all_copies_in_one_cluster(versions):
    names = ["blurred", "original", "sepia", "downscaled", "posterized"]
    best, _ = choose([versions[n] for n in names], np.full((5, 5), 0.9) + 0.1 * np.eye(5))
    assert names[best] == "original"


def test_the_rule_list_is_still_there_on_request(versions):
    best, why = choose([versions["downscaled"], versions["original"]], rules=RULES)
    assert best == 1 and why == "picture"


def test_a_model_fitted_on_other_evidence_is_refused(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"names": ["something_else"], "weights": [1.0]}))
    with pytest.raises(ValueError, match="other evidence"):
        evidence.load_model(str(path))


def test_the_shipped_model_matches_the_evidence():
    model = evidence.load_model()
    assert len(model["w"]) == len(evidence.NAMES) and np.isfinite(model["w"]).all()


def test_logistic_fit_recovers_a_direction():
    from bench.kept_model import fit

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = (X @ np.array([2.0, -1.0, 0.0]) + rng.normal(0, 0.3, 400) > 0).astype(float)
    w = fit(X, y, 0.01)
    assert w[0] > 1 and w[1] < -0.5 and abs(w[2]) < 0.1 * abs(w[0])


def test_boosted_trees_are_antisymmetric_and_learn_the_direction():
    from bench.kept_model import boost

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] - 0.5 * X[:, 2] > 0).astype(float)
    trees = boost(X, y, rounds=30, depth=2)
    for row in X[:20]:
        s, credit = evidence.tree_score(trees, row)
        assert s == pytest.approx(-evidence.tree_score(trees, -row)[0])
        assert credit.sum() == pytest.approx(s)
    z = np.array([evidence.tree_score(trees, row)[0] for row in X])
    assert np.mean((z > 0) == (y == 1)) > 0.85


def test_ancestors_follow_chains_of_copies():
    import pandas as pd

    from bench.kept_model import ancestors

    truth = pd.DataFrame({"path": ["o", "a", "b", "c"], "parent": ["", "o", "a", "o"]})
    anc = ancestors(truth)
    assert anc["b"] == {"a", "o"} and anc["c"] == {"o"} and anc["o"] == set()
