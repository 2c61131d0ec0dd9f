"""The content check (no Ray; stage `verify`, :mod:`dedup.stages.verify`, runs it on Ray tasks): do two
images share content?

Why. A global cosine threshold cannot separate hard copies from hard non-copies: a heavy crop or a tilted
copy can score lower than two different halves of one photo of a symmetric object, and two different photos
in one screenshot template score higher than a photo and its screenshot. Copy detection settles such pairs
by checking that the two images share content: local features matched under one geometric transform, and
the pixels that transform moves onto each other agreeing.

How (:func:`check`): OpenCV's ORB keypoints on the image in grey, matched with Lowe's ratio test, RANSAC
for a similarity transform (rotation, uniform scale, shift); coarse to fine: first on a 256 px view with
500 keypoints, and only where that does not pass at 400 px with 1000, then a homography (perspective, a
changed aspect ratio), then the mirror image. A match is plausible with ``min_inliers`` inliers (more for
the mirror image and the homography), a scale within ``max_scale`` either way, and containment
(:func:`containment`): a copy is derived from the other image, so one image's content (its frame less a
uniform fill from a corner: pads, a rotation's corners, :func:`content_mask`) lies (almost) wholly inside
the other's frame; two framings that share a strip do not. It passes where the pixels agree
(:func:`agreements`): as a whole (a repeated print matches itself shifted; two halves of a symmetric scene
match as mirror images, and the rest then disagrees) and locally, over the detailed area the two overlap
in (two photos under one meme card or one watermark agree only in the card). Pairs that match only a frame
recurring across the corpus (an app's screenshot, a canvas) are found over all the pairs together
(:func:`templates`). Images smaller than ``size`` are enlarged to it (ORB finds almost no keypoints on a
thumbnail). The choices and what each measured: ``docs/how-it-decides.md`` ("Verifying ambiguous pairs").

:func:`plan_tasks` splits a set of edges into connected groups, so that each task reads and describes an
image once (:func:`check_edges` caches the features per image); :func:`apply` puts the results on the
edges.
"""
from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa

VERIFIED, REJECTED, NOT_NEEDED = 1, 0, -1
# ``transform``: for a pair that passed, the transform that matched it, a -> b in unit coordinates of the two
# upright frames, row-major 3 x 3 (:func:`unit_transform`); the kept-image stage registers the pair with it
TRANSFORM = pa.list_(pa.float32(), 9)
VERIFY_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("sim", pa.float32()), ("verified", pa.int8()),
                           ("inliers", pa.int32()), ("mirrored", pa.bool_()), ("transform", TRANSFORM)])
CHECKED_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("ok", pa.bool_()), ("inliers", pa.int32()),
                            ("mirrored", pa.bool_()), ("scale", pa.float32()), ("grid", pa.int64()), ("error", pa.string()),
                            ("transform", TRANSFORM)])


@dataclass(frozen=True)
class VerifyParams:
    """How a pair is checked (all of it goes into the cache key of ``verify.parquet``)."""

    detector: str = "orb"  # orb | akaze | sift (OpenCV); docs/how-it-decides.md says what each measured
    size: int = 400  # longer side of the grey image the keypoints are found on, px
    features: int = 1000  # keypoints per image (orb, sift; akaze finds its own number)
    ratio: float = 0.8  # Lowe's ratio test on the two nearest descriptors
    reproj_px: float = 5.0  # RANSAC inlier distance, px at ``size``
    min_inliers: int = 15
    min_inliers_mirrored: int = 25
    # the images moved onto each other by the matched transform must agree pixel by pixel (:func:`agreement`)
    # at least this well; a match found only on the mirror image, better (symmetric scenes match their mirror)
    min_agreement: float = 0.2
    min_mirrored_agreement: float = 0.9
    # Shared frame is not shared content (:func:`local_agreement`): of the textured area the two images
    # overlap in, at least this share must agree locally (windows of ``local_window`` px correlating at
    # ``local_corr`` or better). Two different photos in one screenshot template, under one meme caption or
    # one watermark agree only in the template.
    min_local_share: float = 0.4
    local_window: int = 13  # px of the agreement checks' half-size view (:class:`View`)
    local_corr: float = 0.5
    max_scale: float = 4.0  # the transform's scale must lie in [1/max_scale, max_scale]
    # A copy is derived from the other image, so one of the two lies (almost) wholly inside the other under
    # the transform that matches them: at least this share of one image's content (its frame less a uniform
    # fill reaching its border: pads, bars, the corners a rotation leaves) must land in the other's frame.
    min_containment: float = 0.9
    fill_aware: bool = True  # False: containment of the whole frames (a pad or a rotation's corners count)
    # where no similarity transform passes: a homography (perspective, a changed aspect ratio), with this many
    # inliers at least and its two axes' scales within ``max_anisotropy`` of each other
    homography: bool = True
    min_inliers_homography: int = 20
    max_anisotropy: float = 2.5
    # Coarse to fine: each pair is first matched on a smaller view (longer side ``coarse`` px, ``coarse_features``
    # keypoints), with the same checks; only a pair that this does not decide is matched at ``size`` (with the
    # homography and the mirror image). Most pairs in the band are copies, decided there. 0: no coarse pass.
    coarse: int = 256
    coarse_features: int = 500
    # The coarse pass also decides a strong mirrored match whose pixels agree but whose content lies well
    # outside the other's frame as failed (two framings of a mirrored scene), where its containment is under
    # this: the coarse view's containment comes within a few points of the full size's, so a copy near
    # ``min_containment`` is still matched at full size. 0: such pairs go on to the full size.
    coarse_mirror_fail: float = 0.75
    templates: bool = True  # pairs that matched only a recurring frame fail (:func:`templates`, in the stage)
    mirror: bool = True  # also match against the mirror image
    enlarge: bool = True  # a smaller image is enlarged to ``size`` too
    version: int = 13  # bump when the check or what it records changes for the same parameters

    def key(self) -> str:
        import hashlib
        import json

        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


# ---- the check itself (no Ray): features of one image, one pair ----------------------------------------


def grey_view(data: bytes, size: int, enlarge: bool = True) -> np.ndarray:
    """The image upright, in grey, its longer side scaled to ``size`` px (uint8 H x W); a smaller image
    keeps its size when not ``enlarge``."""
    import cv2
    from PIL import Image

    from dedup.ops.decode import load_rgb

    img = Image.open(io.BytesIO(data))
    grey = _jpeg_grey(img, data, size)
    if grey is None:
        grey = np.asarray(load_rgb(img, size, grey=True), np.uint8)
    scale = size / max(grey.shape)
    if scale < 1 or (scale > 1 and enlarge):  # ORB finds few keypoints on a thumbnail: enlarged
        grey = _resize(grey, scale, cv2.INTER_CUBIC)
    return grey


# EXIF orientation -> the numpy steps of PIL's transpose (ImageOps.exif_transpose's table)
_ORIENT = {2: lambda g: g[:, ::-1], 3: lambda g: g[::-1, ::-1], 4: lambda g: g[::-1], 5: lambda g: g.T,
           6: lambda g: g.T[:, ::-1], 7: lambda g: g[::-1, ::-1].T, 8: lambda g: g.T[::-1]}


def _jpeg_grey(img, data: bytes, size: int) -> np.ndarray | None:
    """A grey or colour JPEG (``img``: opened, not loaded) as :func:`~dedup.ops.decode.load_rgb` decodes it for
    ``grey_view``: its luma at PIL's draft scale for ``size``, upright; by OpenCV's decoder, the same libjpeg
    with less work around it. None for anything else (PIL decodes it): another format or mode, more than one
    tile, or a file without its end marker (PIL refuses a truncated file, OpenCV would fill it in)."""
    import cv2

    if img.format != "JPEG" or img.mode not in ("L", "RGB") or len(img.tile) != 1 or data.rstrip(b"\0")[-2:] != b"\xff\xd9":
        return None
    w, h = img.size
    scale = min(w // size, h // size)  # JpegImageFile.draft's choice of 1/8, 1/4, 1/2 or 1
    s = 8 if scale >= 8 else 4 if scale >= 4 else 2 if scale >= 2 else 1
    flag = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
            8: cv2.IMREAD_REDUCED_GRAYSCALE_8}[s]
    grey = cv2.imdecode(np.frombuffer(data, np.uint8), flag | cv2.IMREAD_IGNORE_ORIENTATION)
    if grey is None or grey.shape != ((h + s - 1) // s, (w + s - 1) // s):
        return None
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a malformed tag: the stored orientation, as load_rgb keeps it
        orientation = 1
    turn = _ORIENT.get(orientation)
    return np.ascontiguousarray(turn(grey)) if turn else grey


def _resize(grey: np.ndarray, scale: float, enlarge=None) -> np.ndarray:
    """``grey`` scaled by ``scale``: area-averaged at half size or less, bilinear above (OpenCV's area
    resampling at a fractional ratio costs several times as much), ``enlarge`` (an OpenCV flag) above 1."""
    import cv2

    shape = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
    flag = cv2.INTER_AREA if scale <= 0.5 else cv2.INTER_LINEAR if scale <= 1 or enlarge is None else enlarge
    return cv2.resize(grey, shape, interpolation=flag)


def _detector(params: VerifyParams):
    import cv2

    if params.detector == "orb":
        return cv2.ORB_create(nfeatures=params.features)
    if params.detector == "akaze":
        return cv2.AKAZE_create()
    if params.detector == "sift":
        return cv2.SIFT_create(nfeatures=params.features)
    raise ValueError(f"unknown detector {params.detector!r}")


def content_mask(grey: np.ndarray, tolerance: int = 6, flat: int = 2, min_share: float = 0.005) -> np.ndarray:
    """True where the image has content: everything but a uniform fill that reaches a corner (a pad, bars, a
    plain canvas, the corners a rotation inside its frame leaves), flooded from each corner whose 5 x 5
    pixels lie within ``flat`` grey levels (a made fill; a photo's corner has grain) to within
    ``tolerance`` of it. Fills under ``min_share`` of the image are ignored."""
    import cv2

    h, w = grey.shape
    grey = grey if grey.flags.writeable else grey.copy()  # OpenCV's binding wants it writable (only the mask is)
    flood = np.zeros((h + 2, w + 2), np.uint8)
    flags = 4 | cv2.FLOODFILL_FIXED_RANGE | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
    for x, y in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)):
        if flood[y + 1, x + 1]:
            continue
        corner = grey[max(0, y - 2): y + 3, max(0, x - 2): x + 3]
        if int(corner.max()) - int(corner.min()) <= flat:
            cv2.floodFill(grey, flood, (x, y), 0, tolerance, tolerance, flags)
    filled = flood[1:-1, 1:-1] > 0
    return ~filled if filled.mean() >= min_share else np.ones_like(filled)


class Features:
    """An image's keypoints and descriptors (made on first use; of its mirror image only when a pair needs
    them), its content mask, the view the agreement checks compare, and the same for its coarse view."""

    def __init__(self, grey: np.ndarray, params: VerifyParams):
        self.params = params
        self.shape = grey.shape
        self.grey = grey
        self._plain = self._mirrored = self._view = self._coarse = self._content = self._samples = None

    @property
    def content(self) -> np.ndarray:
        """Where the image has content (:func:`content_mask`; all of it with ``fill_aware`` off)."""
        if self._content is None:
            self._content = content_mask(self.grey) if self.params.fill_aware else np.ones(self.shape, bool)
        return self._content

    @property
    def samples(self) -> np.ndarray:
        """The content's sample points that :func:`containment` moves (:func:`_samples`)."""
        if self._samples is None:
            self._samples = _samples(self.content)
        return self._samples

    @property
    def plain(self):
        if self._plain is None:
            self._plain = self._describe(_detector(self.params), self.grey)
        return self._plain

    @property
    def view(self) -> View:
        """The pixels the agreement checks compare (:class:`View`)."""
        if self._view is None:
            self._view = View(self.grey)
        return self._view

    @property
    def mirrored(self):
        """The mirror image's keypoints: described only when a pair needs them (a plain match failed)."""
        if self._mirrored is None and self.params.mirror:
            self._mirrored = self._describe(_detector(self.params), np.ascontiguousarray(self.grey[:, ::-1]))
        return self._mirrored

    @property
    def coarse(self) -> "Features | None":
        """The same image at :attr:`VerifyParams.coarse` px (None without a coarse pass)."""
        if self._coarse is None and self.params.coarse:
            small = _resize(self.grey, self.params.coarse / max(self.shape))
            self._coarse = Features(small, replace(self.params, size=self.params.coarse, features=self.params.coarse_features, coarse=0))
        return self._coarse

    @staticmethod
    def _describe(orb, grey: np.ndarray):
        kp, des = orb.detectAndCompute(grey, None)
        pts = np.float32([k.pt for k in kp]).reshape(-1, 2)
        return pts, des


def _as3(transform: np.ndarray) -> np.ndarray:
    return transform if transform.shape == (3, 3) else np.vstack([transform, [0, 0, 1]])


def _samples(content: np.ndarray, step: int = 8) -> np.ndarray:
    """The centres of the ``step`` px cells of ``content`` (a mask) that hold content, as homogeneous
    coordinates (3 x N): what :func:`containment` moves."""
    ys, xs = np.nonzero(content[::step, ::step])
    return np.stack([xs * step + step / 2, ys * step + step / 2, np.ones(len(xs))])


def _share_inside(pts: np.ndarray, transform: np.ndarray, shape: tuple) -> float:
    """The share of the points ``pts`` (:func:`_samples`) that ``transform`` (3 x 3) maps inside a frame of
    ``shape``."""
    if pts.shape[1] == 0:
        return 0.0
    moved = transform @ pts
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = moved[0] / moved[2], moved[1] / moved[2]
    h, w = shape[:2]
    return float(np.mean((moved[2] > 0) & (x >= 0) & (x <= w) & (y >= 0) & (y <= h)))


def containment(a: "Features | tuple", b: "Features | tuple", transform: np.ndarray) -> float:
    """The larger of: the share of image A's content that ``transform`` (A -> B) maps inside B's frame, and
    the share of B's content that its inverse maps inside A's. 1.0 when one lies wholly within the other.
    ``a``, ``b``: Features (content masks), or plain shapes (the whole frame is content)."""
    def samples(f):  # a Features' are made once, not once per pair
        return f.samples if isinstance(f, Features) else _samples(np.ones(f[:2], bool))

    def shape(f):
        return f.shape if isinstance(f, Features) else f[:2]

    t = _as3(np.asarray(transform, np.float64))
    try:
        back = np.linalg.inv(t)
    except np.linalg.LinAlgError:
        return 0.0
    return max(_share_inside(samples(a), t, shape(b)), _share_inside(samples(b), back, shape(a)))


def ratio_matches(query: np.ndarray, train: np.ndarray, ratio: float, binary: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(query indices, train indices) of the descriptor matches that pass Lowe's ratio test: each query
    descriptor's two nearest in ``train`` (Hamming for ``binary`` descriptors, else L2), as arrays: what
    BFMatcher.knnMatch(k=2) computes (it calls batchDistance), without a Python object per match."""
    import cv2

    dist, nearest = cv2.batchDistance(query, train, cv2.CV_32S if binary else cv2.CV_32F,
                                      normType=cv2.NORM_HAMMING if binary else cv2.NORM_L2, K=2)
    good = np.flatnonzero((nearest[:, 1] >= 0) & (dist[:, 0] < ratio * dist[:, 1]))
    return good, nearest[good, 0]


def _good_matches(a, b, params: VerifyParams):
    (pa_, da), (pb, db) = a, b
    if da is None or db is None or len(da) < 2 or len(db) < 2:
        return None
    qi, ti = ratio_matches(da, db, params.ratio, binary=params.detector != "sift")
    if len(qi) < 4:
        return None
    return pa_[qi], pb[ti]


def _scale(transform: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(transform[:2, :2]))))


def _match(a, b, params: VerifyParams, shapes: tuple | None = None, found=False) -> tuple[int, float, float, np.ndarray | None]:
    """(inliers, transform scale, containment, the transform) of the best similarity transform from ``a``'s
    keypoints to ``b``'s (``shapes``: the two images' Features or shapes, for :func:`containment`; 1.0
    without; ``found``: their matches, when :func:`_good_matches` already ran)."""
    import cv2

    found = _good_matches(a, b, params) if found is False else found
    if found is None:
        return 0, 0.0, 0.0, None
    cv2.setRNGSeed(0)  # RANSAC's samples: the same answer for a pair whichever worker checks it, after whatever
    transform, inliers = cv2.estimateAffinePartial2D(*found, method=cv2.RANSAC, ransacReprojThreshold=params.reproj_px,
                                                     maxIters=2000, confidence=0.99)
    if transform is None:
        return 0, 0.0, 0.0, None
    return int(inliers.sum()), _scale(transform), containment(*shapes, transform) if shapes else 1.0, transform


def _homography(found, params: VerifyParams, shapes: tuple) -> tuple[int, float, float, np.ndarray | None]:
    """As :func:`_match`, for a homography (a perspective warp, a changed aspect ratio) on the matches
    ``found``; no transform where it folds, or stretches one axis over ``max_anisotropy`` times the other."""
    import cv2

    if found is None or len(found[0]) < params.min_inliers_homography:
        return 0, 0.0, 0.0, None
    cv2.setRNGSeed(0)
    h, inliers = cv2.findHomography(*found, cv2.RANSAC, params.reproj_px, maxIters=2000, confidence=0.99)
    if h is None or abs(h[2, 2]) < 1e-9:
        return 0, 0.0, 0.0, None
    h = h / h[2, 2]
    sv = np.linalg.svd(h[:2, :2], compute_uv=False)
    ha, wa = shapes[0].shape[:2] if isinstance(shapes[0], Features) else shapes[0][:2]
    corners = np.float64([[0, 0, 1], [wa, 0, 1], [wa, ha, 1], [0, ha, 1]]).T
    mapped = h @ corners
    if sv[1] <= 0 or sv[0] / sv[1] > params.max_anisotropy or np.any(mapped[2] <= 0):
        return 0, 0.0, 0.0, None
    quad = mapped[:2] / mapped[2]
    if not cv2.isContourConvex(quad.T.astype(np.float32).reshape(-1, 1, 2)):
        return 0, 0.0, 0.0, None
    return int(inliers.sum()), _scale(h), containment(*shapes, h), h


def _precise(found, n: int, transform: np.ndarray, params: VerifyParams) -> np.ndarray:
    """The transform to record for a pair that passed with the similarity ``transform`` (``n`` inliers of
    the matches ``found``): a homography fitted by least squares to the matches within ``reproj_px`` of it,
    refitted once to those within ``reproj_px`` of the homography, where it keeps as many and fits them in
    under :data:`_SHARPER` of the similarity's error (a perspective warp, a changed aspect ratio: the
    kept-image stage finds such a copy's frame with it); else ``transform``. No RANSAC: the similarity's
    inliers are the sample; a few hundred points, well under a millisecond."""
    import cv2

    if found is None or n < params.min_inliers_homography:
        return transform
    src, dst = (np.asarray(p, np.float64).reshape(-1, 2) for p in found)
    sim = _as3(np.asarray(transform, np.float64))
    err_sim = _residuals(sim, src, dst)
    keep = err_sim < params.reproj_px
    h = None
    for _ in range(2):
        if keep.sum() < params.min_inliers_homography:
            return transform
        h, _ = cv2.findHomography(src[keep], dst[keep], 0)
        if h is None or abs(h[2, 2]) < 1e-9:
            return transform
        h = h / h[2, 2]
        err = _residuals(h, src, dst)
        keep = err < params.reproj_px
    if keep.sum() < n or err[keep].mean() >= _SHARPER * err_sim[err_sim < params.reproj_px].mean():
        return transform
    sv = np.linalg.svd(h[:2, :2], compute_uv=False)
    return h if sv[1] > 0 and sv[0] / sv[1] <= params.max_anisotropy and np.linalg.det(h[:2, :2]) > 0 else transform


_SHARPER = 0.7  # a homography is recorded where it fits the matches in under this share of the similarity's error


def _residuals(t: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """How far (px) ``t`` puts each of ``src`` from its ``dst``."""
    m = np.c_[src, np.ones(len(src))] @ t.T
    z = np.where(np.abs(m[:, 2]) < 1e-9, 1e-9, m[:, 2])
    return np.hypot(m[:, 0] / z - dst[:, 0], m[:, 1] / z - dst[:, 1])


class View:
    """An image's pixels as the agreement checks compare them: half the keypoints' size (the checks are
    coarse: a 1 px blur there is the 2 px one at full size), slightly blurred, and its band-passed detail
    (a difference of Gaussians: smooth ramps, which correlate by chance, taken out). Computed once per image
    and moved (not re-filtered) for each pair."""

    def __init__(self, grey: np.ndarray, blur: float = 1.0):
        import cv2

        h, w = grey.shape
        small = cv2.resize(grey, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA).astype(np.float32)
        self.smooth = cv2.GaussianBlur(small, (0, 0), blur)
        self.detail = self.smooth - cv2.GaussianBlur(small, (0, 0), 4 * blur)
        self.scale = small.shape[1] / w  # the view's pixels per keypoint-image pixel (about 1/2)
        self.ones = np.ones(small.shape, np.uint8)  # its frame, as :func:`agreements` moves it

    def mirrored(self) -> "View":
        """The mirror image's view (made once)."""
        if getattr(self, "_mirror", None) is None:
            out = object.__new__(View)
            out.smooth, out.detail = np.ascontiguousarray(self.smooth[:, ::-1]), np.ascontiguousarray(self.detail[:, ::-1])
            out.scale, out.ones, out._mirror = self.scale, self.ones, self
            self._mirror = out
        return self._mirror


def _rescaled(transform: np.ndarray, sa: float, sb: float) -> np.ndarray:
    """``transform`` (a -> b) between the two images' frames scaled by ``sa`` and ``sb`` (3 x 3): diag(sb, sb,
    1) @ transform @ diag(1/sa, 1/sa, 1), as its rows and columns scaled (the same products)."""
    out = _as3(np.asarray(transform, np.float64)) * 1.0
    out[:2] *= sb
    out[:, :2] *= 1 / sa
    return out


def agreements(va: View, vb: View, transform: np.ndarray, window: int = 13, corr: float = 0.5,
               texture: float = 3.0, local: bool = True) -> tuple[float, float, int]:
    """How well ``vb``, moved into ``va``'s frame by ``transform`` (a -> b, keypoint-image pixels), agrees
    with ``va``: (the correlation of the two over the part of ``a`` that ``b`` covers; the local share).

    The local share: of the area where the two overlap and at least one has detail (the band-passed view's
    local standard deviation over ``texture`` grey levels in a ``window`` px window), the share where both
    have it and correlate at ``corr`` or better. Uniform areas (pads, plain cards) count for nothing; a
    template that two different photos share agrees, the photos in it do not. Third: where they disagree
    (:func:`_local_share`'s grid bits). (0.0, 0.0, 0) where they overlap in under 100 pixels; without ``local``,
    the correlation alone (0.0, 0)."""
    import cv2

    h, w = va.smooth.shape
    try:
        back = np.linalg.inv(_rescaled(transform, va.scale, vb.scale))
    except np.linalg.LinAlgError:  # a degenerate transform moves nothing onto anything
        return 0.0, 0.0, 0
    covered = cv2.warpPerspective(vb.ones, back, (w, h), flags=cv2.INTER_NEAREST)
    inside = covered.view(bool)  # 0 or 1
    if np.count_nonzero(covered) < 100:
        return 0.0, 0.0, 0
    whole = _correlation(va.smooth[inside], cv2.warpPerspective(vb.smooth, back, (w, h), flags=cv2.INTER_LINEAR)[inside])
    if not local:
        return whole, 0.0, 0
    return whole, *_local_share(va.detail, cv2.warpPerspective(vb.detail, back, (w, h), flags=cv2.INTER_LINEAR),
                               cv2.erode(covered, np.ones((window, window), np.uint8)) > 0, window, corr, texture)


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's correlation of ``x`` and ``y`` (0.0 where either is flat): one pass of OpenCV's
    double-precision sums rather than numpy's covariance matrix."""
    import cv2

    x, y = x.reshape(-1, 1), y.reshape(-1, 1)  # one channel, however long
    mx, sx = (v.item() for v in cv2.meanStdDev(x))
    my, sy = (v.item() for v in cv2.meanStdDev(y))
    if sx < 1e-3 or sy < 1e-3:
        return 0.0
    return float(np.clip((cv2.mean(x * y)[0] - mx * my) / (sx * sy), -1.0, 1.0))


GRID = 8  # the disagreement grid (:func:`_local_share`): GRID x GRID cells, one bit each in an int64


def _local_share(x: np.ndarray, y: np.ndarray, inner: np.ndarray, window: int, corr: float, texture: float) -> tuple[float, int]:
    """(the local share, see :func:`agreements`; the cells of a GRID x GRID grid over ``x``'s frame where
    most of the detailed area holds other content in the two, as bits)."""
    import cv2

    # the local means of x, y, x*x, y*y in one box filter over their four channels (the same sums per channel)
    means = cv2.blur(cv2.merge([x, y, x * x, y * y]), (window, window))
    mx, my = means[..., 0], means[..., 1]
    vx, vy = means[..., 2] - mx * mx, means[..., 3] - my * my
    tx, ty = vx > texture ** 2, vy > texture ** 2
    detailed = inner & (tx | ty)
    n = np.count_nonzero(detailed)
    if n < window * window:
        return 0.0, 0
    r = (cv2.blur(x * y, (window, window)) - mx * my) / np.sqrt(np.maximum(vx, 1e-6) * np.maximum(vy, 1e-6))
    both = detailed & tx & ty
    agree = both & (r >= corr)
    # a grid cell disagrees where most of its detailed area has detail in both images that does not correlate:
    # other content (detail lost on one side, clipped or blurred, is an edit of the same content)
    cells = [cv2.resize(m.astype(np.float32), (GRID, GRID), interpolation=cv2.INTER_AREA) for m in (detailed, both & ~agree)]
    grid = (cells[0] >= 0.2) & (cells[1] >= 0.5 * cells[0])
    return np.count_nonzero(agree) / n, int(np.packbits(grid.ravel()).view(">i8")[0])


def _agrees(fa: "Features", fb: "Features", moved: np.ndarray, params: VerifyParams, mirrored: bool) -> tuple[bool, int]:
    """(the pixels agree under the matched transform, as a whole and locally over the detailed overlap;
    where they disagree, as :func:`_local_share`'s grid bits when the two share one frame, else 0)."""
    vb = fb.view.mirrored() if mirrored else fb.view
    whole, share, grid = agreements(fa.view, vb, moved, params.local_window, params.local_corr)
    ok = whole >= (params.min_mirrored_agreement if mirrored else params.min_agreement) and share >= params.min_local_share
    return ok, grid if same_frame(fa.shape, fb.shape, moved) else 0


def same_frame(shape_a: tuple, shape_b: tuple, transform: np.ndarray, tol: float = 0.01) -> bool:
    """The two images are one frame: ``transform`` (a -> b) maps a's corners onto b's, within ``tol`` of
    the size (a template's copies: different pictures in one screenshot, meme card or canvas)."""
    (ha, wa), (hb, wb) = shape_a[:2], shape_b[:2]
    t = _as3(np.asarray(transform, np.float64)).tolist()  # four corners: plain floats cost less than arrays
    limit = tol * max(wb, hb)
    for (xa, ya), (xb, yb) in zip(((0, 0), (wa, 0), (wa, ha), (0, ha)), ((0, 0), (wb, 0), (wb, hb), (0, hb))):
        z = t[2][0] * xa + t[2][1] * ya + t[2][2]
        if abs(z) < 1e-9:
            return False
        if abs((t[0][0] * xa + t[0][1] * ya + t[0][2]) / z - xb) > limit or abs((t[1][0] * xa + t[1][1] * ya + t[1][2]) / z - yb) > limit:
            return False
    return True


def check_pair(fa: Features, fb: Features, params: VerifyParams) -> tuple[bool, int, bool, float]:
    """(shares content, inliers, mirrored, scale) for two images' features (see :func:`check`)."""
    return check(fa, fb, params)[:4]


_MIRROR_UNIT = np.array([[-1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # u -> 1 - u: a frame's mirror image


def _to_unit(shape: tuple) -> np.ndarray:
    """Pixels of a view of ``shape`` -> unit coordinates ((x + 0.5) / width, (y + 0.5) / height)."""
    h, w = shape[:2]
    return np.array([[1.0 / w, 0.0, 0.5 / w], [0.0, 1.0 / h, 0.5 / h], [0.0, 0.0, 1.0]])


def unit_transform(transform: np.ndarray, shape_a: tuple, shape_b: tuple, mirrored: bool = False) -> np.ndarray:
    """``transform`` (a -> b, in pixels of views of ``shape_a`` and ``shape_b``; of b's mirror image where
    ``mirrored``) in unit coordinates of the two upright frames, to b's own frame: the same for any view of
    either image (the kept-image stage registers them on its own views with it: :func:`from_unit`)."""
    n = _to_unit(shape_b) @ _as3(np.asarray(transform, np.float64)) @ np.linalg.inv(_to_unit(shape_a))
    n = _MIRROR_UNIT @ n if mirrored else n
    return n / n[2, 2]


def from_unit(unit: np.ndarray, shape_a: tuple, shape_b: tuple) -> np.ndarray:
    """A :func:`unit_transform` (a -> b) in pixels of views of ``shape_a`` and ``shape_b``."""
    return np.linalg.inv(_to_unit(shape_b)) @ np.asarray(unit, np.float64) @ _to_unit(shape_a)


def check(fa: Features, fb: Features, params: VerifyParams) -> tuple[bool, int, bool, float, int, np.ndarray | None]:
    """(shares content, inliers, mirrored, scale, where a same-frame match disagrees: grid bits, also for a
    pair that failed, for :func:`templates`; for a pair that passed, the transform that matched it, a -> b, in
    unit coordinates: :func:`unit_transform`) for two images' features (see the module docstring).

    Tried in turn: a similarity transform (on the coarse views first: :attr:`VerifyParams.coarse`); where it
    does not pass, a homography (perspective, a changed
    aspect ratio: :attr:`VerifyParams.homography`); where neither matched plausibly, the mirror image's
    similarity transform. A match passes when the pixels it moves onto each other agree (:func:`_agrees`)."""
    def plausible(n: int, floor: int, scale: float, contained: float) -> bool:
        return n >= floor and 1.0 / params.max_scale <= scale <= params.max_scale and contained >= params.min_containment

    seen = 0  # where the first plausible same-frame match disagreed: a failed pair still tells of a template
    if params.coarse and fa.coarse is not None and fb.coarse is not None:
        done, result = _coarse(fa, fb, params, plausible)
        if done:
            return result
        seen = result
    found = _good_matches(fa.plain, fb.plain, params)
    n, scale, contained, moved = _match(fa.plain, fb.plain, params, (fa, fb), found)
    matched = plausible(n, params.min_inliers, scale, contained)
    if matched:  # a repeated motif (a print, tiles) matches itself shifted; the rest of the picture then disagrees
        ok, grid = _agrees(fa, fb, moved, params, False)
        seen = seen or grid
        if ok:
            return True, n, False, scale, grid, unit_transform(_precise(found, n, moved, params), fa.shape, fb.shape)
    if params.homography:
        hn, hscale, hcontained, hmoved = _homography(found, params, (fa, fb))
        if plausible(hn, params.min_inliers_homography, hscale, hcontained):
            ok, grid = _agrees(fa, fb, hmoved, params, False)
            if ok:
                return True, hn, False, hscale, grid, unit_transform(hmoved, fa.shape, fb.shape)
            matched, seen = True, seen or grid
    if matched or fb.mirrored is None:
        return False, n, False, scale, seen, None
    m, mscale, mcontained, moved = _match(fa.plain, fb.mirrored, params, (fa, fb))
    if plausible(m, params.min_inliers_mirrored, mscale, mcontained):
        # a mirror copy is the other's pixels mirrored; a symmetric scene matches its mirror image only
        # where it is symmetric (the two halves of a railing)
        ok = _agrees(fa, fb, moved, params, True)[0]
        return ok, m, True, mscale, seen, (unit_transform(moved, fa.shape, fb.shape, True) if ok else None)
    return (False, m, True, mscale, seen, None) if m > n else (False, n, False, scale, seen, None)


def _coarse(fa: Features, fb: Features, params: VerifyParams, plausible) -> tuple[bool, tuple | int]:
    """The coarse pass of :func:`check`: (decided, its result) or (not decided, the grid seen). Decided: a pass
    (plain or mirrored), or a sure fail: a strong match (twice the inliers needed) whose pixels agree but
    neither image's content lies in the other's frame (two framings of one scene; the full size would find
    the same transform, and a match this strong is no mirror copy); or, with no plain match, such a match
    with the mirror image whose containment is well short (:attr:`VerifyParams.coarse_mirror_fail`)."""
    ca, cb = fa.coarse, fb.coarse
    found = _good_matches(ca.plain, cb.plain, ca.params)
    n, scale, contained, moved = _match(ca.plain, cb.plain, ca.params, (ca, cb), found)
    if plausible(n, params.min_inliers, scale, contained):
        ok, seen = _agrees(ca, cb, moved, ca.params, False)
        if ok and seen == 0 and same_frame(ca.shape, cb.shape, moved):
            # one frame: the pixels again at full size (a small picture in a large template is a few coarse
            # windows, too few to disagree), with the coarse transform; no new keypoints
            full = _rescaled(moved, fa.shape[1] / ca.shape[1], fb.shape[1] / cb.shape[1])
            ok, seen = _agrees(fa, fb, full, params, False)
        if not ok:
            return False, seen
        return True, (True, n, False, scale, seen, unit_transform(_precise(found, n, moved, ca.params), ca.shape, cb.shape))
    if n >= 2 * params.min_inliers and plausible(n, params.min_inliers, scale, 1.0):
        if agreements(ca.view, cb.view, moved, local=False)[0] >= params.min_agreement:
            return True, (False, n, False, scale, 0, None)
    if params.mirror and cb.mirrored is not None:
        m, mscale, mcontained, mmoved = _match(ca.plain, cb.mirrored, ca.params, (ca, cb))
        if plausible(m, params.min_inliers_mirrored, mscale, mcontained) and _agrees(ca, cb, mmoved, ca.params, True)[0]:
            return True, (True, m, True, mscale, 0, unit_transform(mmoved, ca.shape, cb.shape, True))
        # no plain match, and the mirror image matched strongly but out of frame: what the full size would find
        if (n < params.min_inliers and m >= 2 * params.min_inliers_mirrored and mcontained < params.coarse_mirror_fail
                and plausible(m, params.min_inliers_mirrored, mscale, 1.0)
                and agreements(ca.view, cb.view.mirrored(), mmoved, local=False)[0] >= params.min_mirrored_agreement):
            return True, (False, m, True, mscale, 0, None)
    return False, 0


def _bits(x: np.ndarray) -> np.ndarray:
    return np.unpackbits(np.atleast_1d(np.asarray(x, ">i8")).view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def templates(a: np.ndarray, b: np.ndarray, ok: np.ndarray, grid: np.ndarray, min_cells: int = 3,
              overlap: float = 0.5) -> np.ndarray:
    """Which passed pairs matched only a template: a frame that recurs across the corpus around different
    pictures (an app's screenshot, a meme card, a canvas).

    Such pairs come in triangles: three images of one frame, each two matching (passed or not: ``grid`` is
    also kept for a same-frame match that failed) and agreeing except in the same place
    (``grid``, :func:`_local_share`'s bits, at least ``min_cells`` cells, each two pairs' cells sharing
    ``overlap`` of the smaller). A copy's edits (a caption, a sticker) sit in different places, and two
    re-posts of one edited copy agree everywhere. Then any other passed pair of a template's image that
    disagrees (mostly) inside that image's template region is one too: a small picture in a large frame
    disagrees in a few cells only."""
    a, b, grid, ok = np.asarray(a, np.int64), np.asarray(b, np.int64), np.asarray(grid, np.int64), np.asarray(ok, bool)
    cells = _bits(grid) if len(grid) else np.zeros(0, np.int64)
    out = _triangles(a, b, grid, cells, np.flatnonzero(cells >= min_cells), overlap)
    region: dict[int, int] = {}
    for i in np.flatnonzero(out).tolist():
        for v in (int(a[i]), int(b[i])):
            region[v] = region.get(v, 0) | int(grid[i])
    for i in np.flatnonzero(ok & ~out & (cells > 0)).tolist():
        inside = max(_bits(np.int64(grid[i] & region.get(int(v), 0)))[0] for v in (a[i], b[i]))
        out[i] = inside >= overlap * cells[i]
    return out & ok


def _triangles(a, b, grid, cells, cand: np.ndarray, overlap: float) -> np.ndarray:
    """The pairs among ``cand`` in a triangle whose three pairs' grids overlap (see :func:`templates`)."""
    adj: dict[int, dict[int, int]] = {}
    for i in cand.tolist():
        adj.setdefault(int(a[i]), {})[int(b[i])] = i
        adj.setdefault(int(b[i]), {})[int(a[i])] = i

    def close(i: int, j: int) -> bool:
        return _bits(grid[i] & grid[j])[0] >= overlap * min(cells[i], cells[j])

    out = np.zeros(len(a), bool)
    for i in cand.tolist():
        x, y = int(a[i]), int(b[i])
        for z in adj[x].keys() & adj[y].keys():
            j, k = adj[x][z], adj[y][z]
            if close(i, j) and close(i, k) and close(j, k):
                out[[i, j, k]] = True
    return out


# ---- planning and running the checks on Ray -----------------------------------------------------------


def plan_tasks(a: np.ndarray, b: np.ndarray, edges_per_task: int) -> list[np.ndarray]:
    """Edge indices per task: whole connected components packed together up to ``edges_per_task`` edges,
    so that an image's features are computed in one task; a larger component is cut into pieces."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(a) == 0:
        return []
    ids, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = inv[: len(a)], inv[len(a):]
    graph = coo_matrix((np.ones(len(a), np.int8), (ia, ib)), shape=(len(ids), len(ids)))
    _, label = connected_components(graph, directed=False)
    comp = label[ia]
    order = np.argsort(comp, kind="stable")
    sizes = np.bincount(comp)
    tasks, current, filled = [], [], 0
    start = 0
    for c in np.unique(comp[order]):
        idx = order[start : start + sizes[c]]
        start += sizes[c]
        if sizes[c] > edges_per_task:  # a big component: its own tasks, edges grouped by their first image
            idx = idx[np.argsort(a[idx], kind="stable")]
            tasks += [idx[i : i + edges_per_task] for i in range(0, len(idx), edges_per_task)]
            continue
        if filled + sizes[c] > edges_per_task and current:
            tasks.append(np.concatenate(current))
            current, filled = [], 0
        current.append(idx)
        filled += sizes[c]
    if current:
        tasks.append(np.concatenate(current))
    return tasks


def check_edges(a: np.ndarray, b: np.ndarray, where: dict[int, tuple[str, str, str]], params: VerifyParams,
                image_column: str | None = None, max_pixels: int = 100_000_000) -> dict:
    """Check the pairs (a[i], b[i]) in one process: each image read, decoded and described once.

    ``where``: vid -> (kind, unit, item path) of its representative. An image that cannot be read or
    decoded fails every pair it is in (``error`` says why): the edge is rejected, never kept unchecked.
    """
    from dedup.sources import read_vids

    t0, cpu0 = time.perf_counter(), time.process_time()
    vids = np.unique(np.concatenate([a, b]))
    feats: dict[int, Features | str] = {}
    for v, data, error in read_vids({int(v): where[int(v)] for v in vids}, image_column):
        try:
            if error is not None:
                raise ValueError(error)
            feats[v] = Features(grey_view(data, params.size, params.enlarge), params)
        except Exception as e:  # noqa: BLE001 - one bad image fails its pairs, never the job
            feats[v] = f"{type(e).__name__}: {e}"
    names = ("ok", "inliers", "mirrored", "scale", "grid", "transform", "error")
    out = {k: [] for k in names}
    for x, y in zip(a.tolist(), b.tolist()):
        fx, fy = feats.get(x, "not read"), feats.get(y, "not read")
        if isinstance(fx, str) or isinstance(fy, str):
            res, err = (False, -1, False, 0.0, 0, None), fx if isinstance(fx, str) else fy
        else:
            res, err = check(fx, fy, params), None
        for k, v in zip(names, (*res, err)):
            out[k].append(v)
    out["transform"] = [None if t is None else np.asarray(t, np.float32).ravel() for t in out["transform"]]
    return {"a": np.asarray(a, np.int64), "b": np.asarray(b, np.int64), "ok": np.asarray(out["ok"], bool),
            "inliers": np.asarray(out["inliers"], np.int32), "mirrored": np.asarray(out["mirrored"], bool),
            "scale": np.asarray(out["scale"], np.float32), "grid": np.asarray(out["grid"], np.int64),
            "error": np.asarray(out["error"], object), "transform": out["transform"], "images_decoded": len(feats),
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - cpu0}


def apply(edges: pa.Table, checked: pd.DataFrame, lo: float, hi: float | None) -> pa.Table:
    """The edges with ``verified``/``inliers``/``mirrored``/``transform`` from ``checked`` (pairs at or above
    ``hi`` are NOT_NEEDED; ``hi`` None: every edge was to be checked)."""
    a, b, sim = (edges.column(c).to_numpy() for c in ("a", "b", "sim"))
    n = int(max(a.max(initial=0), b.max(initial=0))) + 1
    in_band = (sim >= lo) & (sim < hi) if hi is not None else np.ones(len(a), bool)
    verified = np.full(len(a), NOT_NEEDED, np.int8)
    inliers = np.full(len(a), -1, np.int32)
    mirrored = np.zeros(len(a), bool)
    transform = np.full(len(a), None, object)
    if in_band.any():
        key = checked["a"].to_numpy(np.int64) * n + checked["b"].to_numpy(np.int64)
        order = np.argsort(key)
        want = a[in_band] * n + b[in_band]
        pos = order[np.searchsorted(key[order], want)]
        if not np.array_equal(key[pos], want):
            raise AssertionError("an edge in the verify band was not checked")
        verified[in_band] = np.where(checked["ok"].to_numpy()[pos], VERIFIED, REJECTED)
        inliers[in_band] = checked["inliers"].to_numpy()[pos]
        mirrored[in_band] = checked["mirrored"].to_numpy()[pos]
        if "transform" in checked:  # a template's pair has one from its check, and failed after
            transform[in_band] = np.where(verified[in_band] == VERIFIED, checked["transform"].to_numpy()[pos], None)
    return pa.table({"a": a, "b": b, "sim": sim, "verified": verified, "inliers": inliers, "mirrored": mirrored,
                     "transform": pa.array(transform.tolist(), TRANSFORM)}, schema=VERIFY_SCHEMA)


__all__ = ["VerifyParams", "check", "check_pair", "unit_transform", "from_unit", "ratio_matches", "templates", "same_frame", "check_edges", "plan_tasks", "apply", "containment", "Features", "grey_view",
           "VERIFIED", "REJECTED", "NOT_NEEDED"]
