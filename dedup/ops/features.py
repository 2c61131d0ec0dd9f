"""What the content check looks at (no Ray; :mod:`dedup.ops.verify`): an image upright in grey at the check's size
(:func:`grey_view`), its keypoints, its content (the frame less a uniform fill from a corner) and, from a
transform, how much of one image's content lies in the other's frame (:func:`containment`)."""
from __future__ import annotations

import io
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from dedup.ops.agreement import View, _as3

if TYPE_CHECKING:
    from dedup.ops.verify import VerifyParams


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


def picture_view(data: bytes, box: tuple, size: int) -> np.ndarray:
    """The picture inside an image (``box``: left, top, right, bottom in unit coordinates of the upright
    image, :func:`dedup.ops.pictures.inner_picture`) as :func:`grey_view` gives a whole image: decoded large
    enough that the picture's longer side is ``size`` px, cut out and scaled to it."""
    from PIL import Image

    from dedup.ops.decode import load_rgb

    x0, y0, x1, y1 = box
    share = max(x1 - x0, y1 - y0, 1e-3)
    grey = np.asarray(load_rgb(Image.open(io.BytesIO(data)), int(size / share) + 1, grey=True), np.uint8)
    h, w = grey.shape
    crop = grey[int(y0 * h):max(int(y0 * h) + 1, int(round(y1 * h))), int(x0 * w):max(int(x0 * w) + 1, int(round(x1 * w)))]
    return _resize(np.ascontiguousarray(crop), size / max(crop.shape))


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
            self._plain = describe(_detector(self.params), self.grey)
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
            self._mirrored = describe(_detector(self.params), np.ascontiguousarray(self.grey[:, ::-1]))
        return self._mirrored

    @property
    def coarse(self) -> "Features | None":
        """The same image at :attr:`VerifyParams.coarse` px (None without a coarse pass)."""
        if self._coarse is None and self.params.coarse:
            small = _resize(self.grey, self.params.coarse / max(self.shape))
            self._coarse = Features(small, replace(self.params, size=self.params.coarse, features=self.params.coarse_features, coarse=0))
        return self._coarse


def describe(orb, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(keypoint coordinates N x 2 float32, descriptors) of ``grey`` by the OpenCV detector ``orb``."""
    import cv2

    kp, des = orb.detectAndCompute(grey, None)
    return np.asarray(cv2.KeyPoint_convert(kp) if kp else (), np.float32).reshape(-1, 2), des


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
