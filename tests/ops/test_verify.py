"""The content check (dedup.ops.verify): pairs that share content pass (a crop, a rotation, a mirror image, a
re-encode), pairs with different content from one photo fail (its two halves, two quadrants), with images
the tests make."""
import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from dedup.ops import agreement, features, verify
from dedup.synth import encode, textured_image, write

P = verify.VerifyParams()
KEYPOINTS = verify.VerifyParams(identity_detail=0)  # no identity pass: what the keypoints alone find


def _features(img: Image.Image, params: verify.VerifyParams = P) -> verify.Features:
    return verify.Features(verify.grey_view(encode(img.convert("RGB")), params.size), params)


def _check(x: Image.Image, y: Image.Image, params: verify.VerifyParams = P):
    return verify.check_pair(_features(x, params), _features(y, params), params)


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
    ok, inliers, mirrored, scale = _check(photo, edit(photo), KEYPOINTS)
    assert ok, (inliers, mirrored, scale)
    assert inliers >= P.min_inliers
    assert _check(photo, edit(photo))[0]  # and with the identity pass first


@pytest.mark.parametrize("edit", [
    lambda im: Image.open(__import__("io").BytesIO(encode(im, quality=40))),       # a re-save
    lambda im: ImageOps.grayscale(im).point(lambda v: min(255, int(v * 1.3))),     # grey, brighter
    lambda im: im.resize((240, 180)),                                              # a downscale
    lambda im: im.rotate(0.3, resample=Image.Resampling.BICUBIC),                  # a tilt too small to matter
])
def test_one_frame_passes_without_keypoints(photo, edit):
    """Two images of one frame whose detail lies in the same places pass by their pixels under the
    identity: no keypoints described, none matched (inliers 0), the identity recorded."""
    fa, fb = _features(photo), _features(edit(photo))
    ok, inliers, mirrored, _, _, transform = verify.check(fa, fb, P)
    assert ok and inliers == 0 and not mirrored
    np.testing.assert_array_equal(transform, np.eye(3))
    assert fa._plain is fb._plain is None and fa.coarse._plain is fb.coarse._plain is None


@pytest.mark.parametrize("other, copy", [
    (lambda im: im.rotate(2, resample=Image.Resampling.BICUBIC), True),             # a tilt of 2 degrees
    (lambda im: im.crop((10, 8, 470, 353)).resize((480, 360)), True),               # a 2 % crop, enlarged back
    (lambda im: textured_image(12), False),                                         # another photo, one shape
])
def test_the_identity_pass_leaves_moved_content_to_the_keypoints(photo, other, copy):
    """A tilt or a crop that keeps the frame's shape moves the detail: the keypoints match it and record
    its transform (the kept-image stage reads it); another photo of the same shape is not matched at all."""
    fa, fb = _features(photo), _features(other(photo))
    assert verify._identity(fa, fb, P) is None
    if not copy:  # the coarse views told: the full size's views were not made
        assert fa._view is None and fb._view is None
    ok, inliers, _, _, _, transform = verify.check(fa, fb, P)
    assert ok == copy
    if copy:
        assert inliers >= P.min_inliers and np.abs(transform - np.eye(3)).max() > 0.01


def test_a_blurred_copy_passes_by_its_coarser_bands(photo):
    """Blurred this much, ORB matches nothing and the finest detail is gone; the coarser bands still agree
    under the identity: it passes with no inliers, the identity recorded (off: it fails)."""
    blurred = photo.filter(ImageFilter.GaussianBlur(10))
    off = verify.VerifyParams(blurred=0)
    assert not verify.check(_features(photo, off), _features(blurred, off), off)[0]
    ok, inliers, mirrored, _, _, transform = verify.check(_features(photo), _features(blurred), P)
    assert ok and inliers == 0 and not mirrored
    np.testing.assert_array_equal(transform, np.eye(3))


@pytest.mark.parametrize("pair", [
    lambda im: (im.crop((0, 0, 240, 180)), im.crop((240, 180, 480, 360))),            # two quadrants
    lambda im: (im, textured_image(12).filter(ImageFilter.GaussianBlur(10))),          # another photo
    lambda im: (im, _pasted(im, textured_image(12).filter(ImageFilter.GaussianBlur(10)))),  # another in its middle
])
def test_blurred_images_of_other_content_do_not_pass_by_their_bands(photo, pair):
    """Blurred images the keypoints cannot match: where their bands differ, as a whole or in a part of the
    frame (a template's picture), they are not copies."""
    x, y = pair(photo.filter(ImageFilter.GaussianBlur(10)))
    fx, fy = _features(x), _features(y)
    assert verify._blurred(fx, fy, P) is None
    assert not verify.check(fx, fy, P)[0]


def _pasted(frame: Image.Image, other: Image.Image) -> Image.Image:
    out = frame.copy()
    out.paste(other.crop((160, 120, 320, 240)), (160, 120))  # the middle ninth
    return out


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
    view = agreement.View(g)
    same = np.float64([[1, 0, 0], [0, 1, 0]])
    whole, share, grid = verify.agreements(view, view, same)
    assert whole > 0.99 and share > 0.99 and grid == 0
    shifted = np.float64([[1, 0, 40], [0, 1, 0]])  # b's pixel (x + 40, y) is a's (x, y)
    assert verify.agreements(view, agreement.View(np.roll(g, 40, axis=1)), shifted)[:2] > (0.99, 0.95)
    whole, share, grid = verify.agreements(view, agreement.View(np.asarray(textured_image(12).convert("L"), np.uint8)), same)
    assert whole < 0.2 and share < 0.3 and grid != 0


def test_inverted_regions_agree_scattered_anti_correlation_does_not(photo):
    """A negative, or the inverted bright tones of a solarized copy, is the same content: its detail correlates
    at -1 region by region. Windows anti-correlating here and there, as unrelated content does, count for nothing."""
    g = np.asarray(photo.convert("L"), np.float32)
    same = np.float64([[1, 0, 0], [0, 1, 0]])
    view = agreement.View(g.astype(np.uint8))
    whole, share, grid = verify.agreements(view, agreement.View((255 - g).astype(np.uint8)), same)
    assert whole > 0.99 and share > 0.95 and grid == 0
    solarized = g.copy()
    solarized[:, : g.shape[1] * 3 // 5] = 255 - solarized[:, : g.shape[1] * 3 // 5]  # three fifths turned over
    assert verify.agreements(view, agreement.View(solarized.astype(np.uint8)), same)[1] > 0.8  # 0.43 by its rest alone
    yy, xx = np.mgrid[: g.shape[0], : g.shape[1]]
    checker = ((yy // 40 + xx // 40) % 2).astype(bool)  # every other 40 px block turned over: no cell is
    assert verify.agreements(view, agreement.View(np.where(checker, 255 - g, g).astype(np.uint8)), same)[1] < 0.2


def test_small_images_are_enlarged_for_the_keypoints(photo):
    small = encode(photo.resize((120, 90)))
    assert verify.grey_view(small, P.size).shape == (300, 400)
    assert verify.grey_view(small, P.size, enlarge=False).shape == (90, 120)
    assert _check(photo, Image.open(__import__("io").BytesIO(small)), KEYPOINTS)[0]  # a thumbnail of the photo


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


# ---- templates, fills, warps ---------------------------------------------------------------------------


def _app_frame(picture: Image.Image) -> Image.Image:
    """A made 'screenshot': a page of text, icons and bars around a picture in a fixed slot."""
    from PIL import ImageDraw

    page = Image.new("RGB", (640, 900), (246, 246, 246))
    d = ImageDraw.Draw(page)
    d.rectangle([0, 0, 640, 56], fill=(28, 40, 96))
    for i in range(7):
        d.text((14 + 88 * i, 20), f"Tab {i}", fill=(255, 255, 255))
        d.ellipse([20 + 88 * i, 680, 70 + 88 * i, 730], outline=(40, 40, 40), width=3)
    for j in range(7):
        d.text((20, 750 + 20 * j), f"comment {j}: what a lovely picture, where was it taken?", fill=(30, 30, 30))
    page.paste(picture.resize((600, 450)), (20, 80))
    return page


def _checks(images: list[Image.Image]):
    feats = [_features(im) for im in images]
    pairs = [(i, j) for i in range(len(images)) for j in range(i + 1, len(images))]
    res = [verify.check(feats[i], feats[j], P) for i, j in pairs]
    a, b = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    ok, grid = np.array([r[0] for r in res]), np.array([r[4] for r in res], np.int64)
    return ok, ok & ~verify.templates(a, b, ok, grid)


def test_different_pictures_in_one_frame_are_not_copies():
    """Four different photos in one app's screenshot frame: the frame matches under the identity, so each
    pair can pass alone; together they are a template (each two disagree in the same place)."""
    frames = [_app_frame(textured_image(s)) for s in (21, 22, 23, 24)]
    _, final = _checks(frames)
    assert not final.any()


def test_a_coarse_fit_a_little_off_one_frame_is_fitted_again():
    """Portrait photos pillarboxed in one app frame: the bars and the page match, and on the coarse views one
    pair's first fit is 1.3 % off the identity, so it would pass without saying where the two differ and
    escape the template; fitted again within 1.5 px it is one frame, and every pair is a template's."""
    frames = [_app_frame(ImageOps.pad(textured_image(s).rotate(90, expand=True), (600, 450), color=(0, 0, 0)))
              for s in range(21, 29)]
    first_fit_only = verify.VerifyParams(near_frame=0)
    fa, fb = (_features(frames[k], first_fit_only) for k in (4, 7))
    ok, _, _, scale, grid, _ = verify.check(fa, fb, first_fit_only)
    assert ok and grid == 0 and abs(scale - 1) > 0.01
    ok, _, _, _, grid, _ = verify.check(_features(frames[4]), _features(frames[7]), P)
    assert ok and grid != 0
    _, final = _checks(frames)
    assert not final.any()


def test_tighter_fit_keeps_the_matches_of_one_frame():
    from dedup.ops.matching import _tighter

    rng = np.random.default_rng(0)
    src = rng.uniform(0, 256, (120, 2)).astype(np.float32)
    dst = src + rng.normal(0, 0.3, src.shape).astype(np.float32)  # one frame: the identity, within a pixel
    dst[80:] = rng.uniform(0, 256, (40, 2))  # and matches that are noise (the pictures differ)
    loose = np.array([[0.975, 0, 3.0], [0, 0.975, 2.0]])
    tight = _tighter((src, dst), loose, 15)
    np.testing.assert_allclose(tight[:, :2], np.eye(2), atol=0.01)  # no scale, no turn
    assert np.abs(tight[:, 2]).max() < 0.5  # and under half a pixel of shift
    assert _tighter((src[:10], dst[:10]), loose, 15) is loose  # too few matches to fit again: the first fit stands


def _grid(cells) -> int:
    return int(sum(1 << c for c in cells))


def test_a_template_is_one_region_for_all_three_pairs_not_regions_inside_each_other():
    """Three different pictures in one frame (0, 1, 2) disagree in one region, the slot (pairs alike, give or
    take a cell): a template. A photo (3), its copy under stripes over the whole frame (4) and that copy
    captioned (5) disagree in the stripes, in the stripes and the caption, and in the caption: the caption's
    cells lie inside the stripes', but the three regions are not one, so the three copies stay copies."""
    slot, stripes, caption = list(range(18, 42)), list(range(0, 62, 2)), [48, 49, 50, 51]
    a, b = np.array([0, 0, 1, 3, 3, 4]), np.array([1, 2, 2, 4, 5, 5])
    grid = np.array([_grid(slot), _grid(slot[1:]), _grid(slot[:-2]), _grid(stripes),
                     _grid(sorted(set(stripes) | set(caption))), _grid(caption)], np.int64)
    out = verify.templates(a, b, np.ones(6, bool), grid)
    assert out.tolist() == [True, True, True, False, False, False]


def test_open_wedges_are_the_pairs_that_would_close_one_region():
    """Image 0 matches 1 and 2 in one frame differing in one large region (the slot): (1, 2) is the pair
    to check. Image 3's two matches differ in other places, image 6's in one small region (a caption's
    few cells), and image 9's third pair was checked already: none of theirs."""
    from dedup.ops.templates import open_wedges

    slot, other, caption = list(range(18, 42)), list(range(0, 12)), [48, 49, 50, 51]
    a, b = np.array([0, 0, 3, 3, 6, 6, 9, 9, 10]), np.array([1, 2, 4, 5, 7, 8, 10, 11, 11])
    grid = np.array([_grid(slot), _grid(slot[1:]), _grid(slot), _grid(other), _grid(caption), _grid(caption),
                     _grid(slot), _grid(slot), _grid(slot)], np.int64)
    wa, wb = open_wedges(a, b, grid)
    assert list(zip(wa.tolist(), wb.tolist())) == [(1, 2)]


def test_a_template_the_search_linked_as_a_star_is_found_by_checking_its_third_pairs():
    """Four different photos in one app frame, only the pairs of the first with the others in the band (the
    search linked the rest too weakly): no triangle, so each pair would pass alone; the pairs that close
    the open triangles (:func:`open_wedges`) are checked, and with them the frame is a template."""
    from dedup.ops.templates import open_wedges

    frames = [_app_frame(textured_image(s)) for s in (31, 32, 33, 34)]
    feats = [_features(im) for im in frames]
    a, b = np.array([0, 0, 0]), np.array([1, 2, 3])
    res = [verify.check(feats[i], feats[j], P) for i, j in zip(a, b)]
    ok, grid = np.array([r[0] for r in res]), np.array([r[4] for r in res], np.int64)
    assert ok.all() and not verify.templates(a, b, ok, grid).any()  # a star: nothing to see
    wa, wb = open_wedges(a, b, grid)
    assert len(wa) == 3
    more = [verify.check(feats[i], feats[j], P) for i, j in zip(wa, wb)]
    a2, b2 = np.concatenate([a, wa]), np.concatenate([b, wb])
    ok2 = np.concatenate([ok, [r[0] for r in more]])
    grid2 = np.concatenate([grid, np.array([r[4] for r in more], np.int64)])
    assert verify.templates(a2, b2, ok2, grid2)[:3].all()


def test_a_shared_region_is_one_block_under_half_with_one_block_around_it():
    """Agreeing in one corner block under half of the cells and differing in one block around it: two pictures
    sharing an inset. Differing in the smaller part (a sticker), or in several places (a warp's edges), or
    agreeing in two places: not that."""
    from dedup.ops.agreement import shared_region

    grid = np.zeros((8, 8), bool)
    corner = grid.copy()
    corner[:4, :4] = True  # 16 cells agree: the inset
    assert shared_region(~corner, corner, 0.5)
    assert not shared_region(corner, ~corner, 0.5)  # the other way round: a copy under a sticker
    ring = ~grid
    ring[2:6, 2:6] = False  # differing all round the frame, agreeing in the middle: under half, but ...
    split = ring.copy()
    split[:, 4] = False  # ... the differing cells are two regions (a warp's two sides)
    assert not shared_region(split, ~ring & ~split, 0.5)
    two = corner.copy()
    two[6:, 6:] = True  # agreeing in two places
    assert not shared_region(~two, two, 0.5)


def _busy(seed: int, size=(480, 360)) -> Image.Image:
    """A picture with fine detail everywhere (blurred noise): two of them differ in every cell."""
    import cv2

    a = cv2.GaussianBlur(np.random.default_rng(seed).uniform(0, 255, (size[1], size[0], 3)).astype(np.float32), (0, 0), 2.5)
    return Image.fromarray(np.clip((a - a.mean()) * 4 + 128, 0, 255).astype(np.uint8))


def test_two_pictures_under_one_inset_are_not_copies_a_photo_under_a_sticker_is(photo):
    """The same picture-in-picture tile over 43 % of two different pictures: the tile matches and agrees, and
    nothing else does (without the shared-region rule the pair passes). The photo under a large sticker
    agrees everywhere but the sticker."""
    tile = textured_image(41).resize((310, 240))
    one, two = _busy(42), _busy(43)
    for im in (one, two):
        im.paste(tile, (0, 0))
    assert not _check(one, two)[0]
    assert _check(one, two, verify.VerifyParams(max_inset_share=0))[0]
    stickered = photo.copy()
    stickered.paste(textured_image(44).resize((200, 150)), (250, 180))
    assert _check(photo, stickered)[0]


def test_copies_with_edits_in_different_places_stay_copies(photo):
    """A photo, a captioned copy and a copy with a sticker elsewhere: each two disagree, but not in the
    same place, so no template is found; the same holds for a photo's copies inside one frame."""
    from PIL import ImageDraw

    captioned, stickered = photo.copy(), photo.copy()
    ImageDraw.Draw(captioned).rectangle([20, 300, 300, 340], fill=(0, 0, 0))
    ImageDraw.Draw(stickered).ellipse([330, 20, 460, 150], fill=(250, 200, 0))
    ok, final = _checks([photo, captioned, stickered])
    assert ok.all() and final.all()
    framed = _app_frame(photo)
    again = Image.open(__import__("io").BytesIO(encode(framed, quality=60)))
    ok, final = _checks([framed, again, photo])
    assert final[0]  # the framed photo and its re-save


def test_a_rotation_inside_its_frame_is_a_copy(photo):
    """Turned 20 degrees inside the same frame, the corners filled: only 83 % of either frame lies in the
    other, but all of the turned image's content (the fill aside) does."""
    turned = photo.rotate(20, resample=Image.Resampling.BICUBIC, fillcolor=(0, 0, 0))
    assert _check(photo, turned)[0]
    frames_only = verify.VerifyParams(fill_aware=False)
    fa, fb = (verify.Features(verify.grey_view(encode(im), frames_only.size), frames_only) for im in (photo, turned))
    assert not verify.check_pair(fa, fb, frames_only)[0]


def test_content_mask_leaves_out_pads():
    from PIL import ImageOps as Ops

    padded = Ops.pad(textured_image(5), (640, 360), color=(0, 0, 0))  # pillarboxed to 16:9
    mask = features.content_mask(np.asarray(padded.convert("L")))
    assert not mask[:, :60].any() and not mask[:, -60:].any() and mask[:, 200:440].mean() > 0.99
    assert features.content_mask(np.asarray(textured_image(5).convert("L"))).all()


@pytest.mark.parametrize("edit", [
    lambda im: ImageOps.pad(im, (640, 360), color=(0, 0, 0)),                              # letterboxed to 16:9
    lambda im: im.resize((im.width * 2 // 3, im.height * 4 // 3)),                           # aspect ratio changed
    lambda im: im.transform(im.size, Image.Transform.PERSPECTIVE, (1, 0.15, -20, 0.05, 1, -10, 0.0004, 0.0003, 1),
                            Image.Resampling.BICUBIC),                                       # a perspective warp
])
def test_padded_and_warped_copies(photo, edit):
    assert _check(photo, edit(photo))[0]


def test_a_stretched_copy_needs_the_homography(photo):
    stretched = photo.resize((photo.width * 2 // 3, photo.height * 4 // 3))
    similarity_only = verify.VerifyParams(homography=False)
    fa, fb = (verify.Features(verify.grey_view(encode(im), P.size), similarity_only) for im in (photo, stretched))
    assert not verify.check_pair(fa, fb, similarity_only)[0]


def test_the_homography_is_not_tried_where_the_similarity_found_nothing(photo, monkeypatch):
    """Two unrelated pictures: no similarity support, so no homography RANSAC (the gate, ``homography_from``);
    a stretched copy's similarity finds part of its matches, and the homography still passes it."""
    calls = []
    real = verify._homography
    monkeypatch.setattr(verify, "_homography", lambda *a, **k: calls.append(1) or real(*a, **k))
    no_coarse = verify.VerifyParams(coarse=0)
    other = textured_image(12)
    fa, fb = (verify.Features(verify.grey_view(encode(im), P.size), no_coarse) for im in (photo, other))
    assert not verify.check_pair(fa, fb, no_coarse)[0] and not calls
    stretched = photo.resize((photo.width * 2 // 3, photo.height * 4 // 3))
    fa, fb = (verify.Features(verify.grey_view(encode(im), P.size), no_coarse) for im in (photo, stretched))
    assert verify.check_pair(fa, fb, no_coarse)[0] and calls


def test_ratio_matches_are_opencvs(photo):
    """faiss's Hamming search gives the matches OpenCV's brute-force knnMatch(k=2) + the ratio test gives."""
    import cv2

    fa, fb = _features(photo), _features(photo.rotate(10).crop((30, 20, 420, 300)))
    (_, da), (_, db) = fa.plain, fb.plain
    qi, ti = verify.ratio_matches(da, db, P.ratio)
    want = [(m.queryIdx, m.trainIdx) for m, n in cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(da, db, k=2)
            if m.distance < P.ratio * n.distance]
    assert len(want) > 50 and sorted(zip(qi.tolist(), ti.tolist())) == sorted(want)
    assert len(verify.ratio_matches(da, db[:1], P.ratio)[0]) == 0  # one train descriptor: no second nearest


def test_the_mirror_image_is_described_only_when_needed(photo):
    fa, fb = _features(photo), _features(photo.crop((40, 30, 440, 330)))
    assert verify.check_pair(fa, fb, P)[0]
    assert fa._mirrored is None and fb._mirrored is None  # the plain match passed: no mirror search


def test_same_frame():
    assert verify.same_frame((300, 400), (300, 400), np.float64([[1, 0, 1], [0, 1, -1]]))
    assert verify.same_frame((600, 800), (300, 400), np.float64([[0.5, 0, 0], [0, 0.5, 0]]))
    assert not verify.same_frame((300, 400), (300, 400), np.float64([[0.5, 0, 50], [0, 0.5, 50]]))


@pytest.mark.parametrize("size, orientation, mode", [((500, 375), None, "RGB"), ((900, 840), None, "RGB"),  # draft 1/2
                                                     ((1700, 1650), 6, "RGB"), ((420, 300), 8, "L"), ((500, 375), 5, "RGB"),
                                                     ((500, 375), 2, "RGB"), ((500, 375), 7, "L"), ((500, 375), 3, "RGB"),
                                                     ((500, 375), 4, "RGB")])
def test_jpeg_grey_is_the_pil_decode(photo, size, orientation, mode):
    """A JPEG's grey view by OpenCV's decoder is PIL's, pixel for pixel: draft scale and EXIF orientation."""
    import io

    from dedup.ops.decode import load_rgb

    img = photo.resize(size).convert(mode)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    data = buf.getvalue()
    fast = features._jpeg_grey(Image.open(io.BytesIO(data)), data, P.size)
    pil = np.asarray(load_rgb(Image.open(io.BytesIO(data)), P.size, grey=True), np.uint8)
    assert fast is not None and fast.shape == pil.shape and np.array_equal(fast, pil)


def test_jpeg_grey_leaves_other_images_to_pil(photo):
    import io

    png, cmyk, cut = io.BytesIO(), io.BytesIO(), encode(photo)[:-4000]  # cut: a truncated JPEG
    photo.save(png, "PNG")
    photo.convert("CMYK").save(cmyk, "JPEG")
    for data in (png.getvalue(), cmyk.getvalue(), cut):
        assert features._jpeg_grey(Image.open(io.BytesIO(data)), data, P.size) is None
    with pytest.raises(OSError):  # PIL refuses the truncated file, and the pair fails
        verify.grey_view(cut, P.size)


def test_mirrored_framings_fail_at_the_coarse_pass(photo):
    """Two framings of a photo, one mirrored, sharing a strip that neither frame holds: the coarse pass decides
    the fail (a strong mirrored match out of frame), as the full size does without that rule."""
    import dataclasses

    w, h = photo.size
    fa = _features(photo.crop((0, 0, 300, h)))
    fb = _features(ImageOps.mirror(photo.crop((160, 0, w, h))))

    def plausible(n, floor, scale, contained):
        return n >= floor and 1 / P.max_scale <= scale <= P.max_scale and contained >= P.min_containment

    done, (ok, _, mirrored, _, _, transform) = verify._coarse(fa, fb, P, plausible)
    assert done and not ok and mirrored and transform is None
    assert not verify.check(fa, fb, dataclasses.replace(P, coarse_mirror_fail=0.0))[0]


def test_a_picture_inside_a_page_is_checked_against_the_whole_other_image():
    """The whole images do not match (the photo fills a tenth of the canvas), the picture found inside the
    canvas does: the pair passes with the transform put back in the whole frames. A picture that is only a
    detail of the other image (a thumbnail in its corner) does not fill it, and does not pass."""
    from dedup.ops.features import Features, grey_view, picture_view
    from dedup.ops.pictures import inner_picture
    from dedup.synth import grid_canvas

    p = verify.VerifyParams()
    photo = textured_image(41, (640, 480))
    canvas = grid_canvas(seed=4)
    canvas.paste(photo.resize((320, 240)), (560, 420))
    data = {"photo": encode(photo), "canvas": encode(canvas)}
    box = inner_picture(np.asarray(canvas))
    unit = (box[0] / 1024, box[1] / 768, box[2] / 1024, box[3] / 768)
    whole = {k: Features(grey_view(v, p.size), p) for k, v in data.items()}
    inside = Features(picture_view(data["canvas"], unit, p.size), p)
    assert not verify.check(whole["photo"], whole["canvas"], p)[0]
    res = verify.check_picture(whole["photo"], whole["canvas"], None, inside, {1: unit}, (0, 1), p)
    assert res is not None and res[0]
    corners = np.array([[0, 0, 1], [1, 1, 1]], float) @ np.asarray(res[5]).reshape(3, 3).T
    got = corners[:, :2] / corners[:, 2:]
    assert np.allclose(got.ravel(), [560 / 1024, 420 / 768, 880 / 1024, 660 / 768], atol=0.03)  # the photo's frame in the canvas
    host = textured_image(42, (640, 480))
    host.paste(photo.resize((160, 120)), (10, 10))  # the photo as a thumbnail in a corner of another image
    h = Features(grey_view(encode(host), p.size), p)
    assert verify.check_picture(h, whole["canvas"], None, inside, {1: unit}, (0, 1), p) is None
