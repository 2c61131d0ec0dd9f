"""The content check (dedup.ops.verify): pairs that share content pass (a crop, a rotation, a mirror image, a
re-encode), pairs with different content from one photo fail (its two halves, two quadrants), with images
the tests make."""
import numpy as np
import pytest
from PIL import Image, ImageOps

from dedup.ops import verify
from dedup.synth import encode, textured_image, write

P = verify.VerifyParams()


def _features(img: Image.Image) -> verify.Features:
    return verify.Features(verify.grey_view(encode(img.convert("RGB")), P.size), P)


def _check(x: Image.Image, y: Image.Image):
    return verify.check_pair(_features(x), _features(y), P)


@pytest.fixture(scope="module")
def photo():
    return textured_image(11)


@pytest.mark.parametrize("edit", [
    lambda im: im.crop((60, 40, 380, 290)),                                               # a crop to 46 % of the area
    lambda im: im.crop((150, 100, 470, 350)).resize((480, 375)),                          # an off-centre zoomed crop
    lambda im: im.rotate(15, resample=Image.Resampling.BICUBIC).crop((40, 30, 440, 330)),  # a tilt
    lambda im: im.transpose(Image.Transpose.ROTATE_90),                                   # a quarter turn
    lambda im: Image.open(__import__("io").BytesIO(encode(im.resize((240, 180)), quality=30))),  # small, low quality
    ImageOps.mirror,                                                                       # a mirror image
])
def test_copies_share_content(photo, edit):
    ok, inliers, mirrored, scale = _check(photo, edit(photo))
    assert ok, (inliers, mirrored, scale)
    assert inliers >= P.min_inliers


def test_mirror_images_need_the_mirrored_match(photo):
    ok, inliers, mirrored, _ = _check(photo, ImageOps.mirror(photo))
    assert ok and mirrored and inliers >= P.min_inliers_mirrored


@pytest.mark.parametrize("parts", [
    lambda im: (im.crop((0, 0, 240, 360)), im.crop((240, 0, 480, 360))),       # the two halves
    lambda im: (im.crop((0, 0, 240, 180)), im.crop((240, 180, 480, 360))),     # two quadrants
])
def test_different_content_from_one_photo_fails(photo, parts):
    x, y = parts(photo)
    ok, inliers, _, _ = _check(x, y)
    assert not ok, inliers


def test_a_symmetric_scene_is_not_its_own_mirror_copy(photo):
    """Two halves of a symmetric scene: the mirrored match finds the symmetric part (here the upper 60 %),
    but the rest of the picture differs, so the pixels do not agree once the match is applied."""
    other = textured_image(12)
    half = photo.crop((0, 0, 240, 360))
    twin = ImageOps.mirror(half)
    twin.paste(other.crop((0, 216, 240, 360)), (0, 216))  # the lower 40 %: something else
    n, _, _, moved = verify._match(_features(half).plain, _features(twin).mirrored, P, (_features(half).shape,) * 2)
    assert n >= P.min_inliers_mirrored  # the ORB match alone would pass it
    ok, _, mirrored, _ = _check(half, twin)
    assert mirrored and not ok
    assert _check(half, ImageOps.mirror(half))[0]  # the true mirror image still passes


def test_agreement_of_moved_images(photo):
    g = np.asarray(photo.convert("L"), np.uint8)
    same = np.float64([[1, 0, 0], [0, 1, 0]])
    assert verify.agreement(g, g, same) > 0.99
    shifted = np.float64([[1, 0, 40], [0, 1, 0]])  # b's pixel (x + 40, y) is a's (x, y)
    assert verify.agreement(g, np.roll(g, 40, axis=1), shifted) > 0.99
    assert verify.agreement(g, np.asarray(textured_image(12).convert("L"), np.uint8), same) < 0.2


def test_small_images_are_enlarged_for_the_keypoints(photo):
    small = encode(photo.resize((120, 90)))
    assert verify.grey_view(small, P.size).shape == (300, 400)
    assert verify.grey_view(small, P.size, enlarge=False).shape == (90, 120)
    assert _check(photo, Image.open(__import__("io").BytesIO(small)))[0]  # a thumbnail of the photo


def test_different_photos_fail(photo):
    assert not _check(photo, textured_image(12))[0]


def test_plan_tasks_keeps_components_together():
    a = np.array([0, 1, 5, 6, 7, 20])
    b = np.array([1, 2, 6, 7, 8, 21])
    tasks = verify.plan_tasks(a, b, edges_per_task=3)
    assert sorted(np.concatenate(tasks).tolist()) == list(range(6))
    for t in tasks:  # no component split across tasks when it fits in one
        comps = {0 if a[i] < 5 else 1 if a[i] < 20 else 2 for i in t}
        for c in comps:
            members = [i for i in range(6) if (0 if a[i] < 5 else 1 if a[i] < 20 else 2) == c]
            assert set(members) <= set(t.tolist())
    big = verify.plan_tasks(np.arange(10), np.arange(1, 11), edges_per_task=4)  # one chain of 10 edges: cut
    assert [len(t) for t in big] == [4, 4, 2]


def test_unreadable_images_fail_their_pairs(tmp_path, photo):
    good = write(tmp_path / "a.jpg", encode(photo))
    bad = write(tmp_path / "b.jpg", b"not an image")
    out = verify.check_edges(np.array([0]), np.array([1]), {0: ("file", str(good), str(good)), 1: ("file", str(bad), str(bad))}, P)
    assert not out["ok"][0] and out["error"][0] and out["images_decoded"] == 2
