"""A picture inside an image: a photo pasted on a canvas, posted in an app's screenshot, framed in a web page.

The model sees the whole image, so a photo that fills a third of a screenshot or of a textured canvas is
far from the photo itself (SSCD cosine under 0.3), and the copy is never a candidate. :func:`inner_picture`
finds such a picture by its outline: a rectangle bounded by long straight edges (Canny edges kept only where
they run straight for a tenth of the image, horizontally or vertically; the regions they enclose), large
enough to be a picture (4-80 % of the image, each side at least 15 % of the image's), nearly filled (an
enclosed region that is not a rectangle is a shape in the photo, not a pasted picture), and inside the image:
touching at most one of its borders (a screenshot may cut a photo at its bottom; a region that reaches two
borders is a band or a corner of the photo's own frame, a sky above a horizon). A first pass takes
the outlines as they are; where it finds none, a second one bridges gaps along a straight line of up to 30 %
of the image (a picture's edge that meets a background of its own colour); a third closes a gap of up to 8 %
between a line's end and the line across it (a corner left open: a small photo in a web page's post, its
outline a few pixels short at 256 px). Where none finds one, a
photo on a plain background (:func:`_on_plain`) is found by the background: flooded from the image's flat
corners, it leaves one rectangle (its outline may have no edge in grey: a background of the photo's own
brightness). Natural photos rarely have either (most rectangles in a photo are crossed by edges of what is
in front of them; an object on a plain background is no rectangle). The decode workers embed
the picture beside the image (stage `decode_embed`), and stage `inner` searches those vectors against every
image's: a pair it finds goes through the content check like any other.
"""
from __future__ import annotations

import numpy as np

from dedup.ops.features import _resize

SIDE = 256  # px, at most, the longer side the outlines are looked for on
CANNY = (40, 120)
LINE = 0.1  # of the shorter side: the shortest straight run kept as an outline
BRIDGE = 0.3  # of the side: the longest gap the second pass closes along a line
CORNER = 0.08  # of the side: the longest gap the third pass closes between a line's end and the line across it
AREA = (0.04, 0.8)  # of the image: a picture's bounding box
MIN_SIDE = 0.15  # of the image's side: a picture's shortest side
FILL = 0.85  # of its bounding box: how much of it the enclosed region covers
BORDERS = 1  # of the image's four borders, how many a picture may touch (within 3 px of the view)
PLAIN_CORNERS = 3  # of the image's corners, how many must be flat for a plain background (:func:`_on_plain`)
PLAIN_TOLERANCE = 8  # levels of each colour, from a corner's, that are still its background
PLAIN_FILL = 0.95  # of its bounding box: how much of it the picture on a plain background covers


def inner_picture(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest picture inside ``rgb`` (an RGB uint8 array) as (left, top, right, bottom) in its pixels,
    or None."""
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, SIDE / max(h, w))
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if scale < 1:  # bilinear above half size: area resampling at a fractional ratio was a quarter of the search
        grey = _resize(grey, scale)
    if min(grey.shape) < 32:
        return None
    box = _outlined(grey) or _on_plain(rgb, grey.shape)
    if box is None:
        return None
    sx, sy = w / grey.shape[1], h / grey.shape[0]
    x0, y0, x1, y1 = box
    return int(x0 * sx), int(y0 * sy), min(w, int(round(x1 * sx))), min(h, int(round(y1 * sy)))


def _outlined(grey: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest picture the straight edges of ``grey`` enclose (as they are, then bridged), or None."""
    across, down = _straight_edges(grey)
    if not across.any() or not down.any():  # an outline inside the image needs lines both ways
        return None
    for bridge in (0.0, BRIDGE):
        box = _largest_enclosed(*_bridged(across, down, bridge))
        if box is not None:
            return box
    return _largest_enclosed(*_cornered(across, down, CORNER))


def _on_plain(rgb: np.ndarray, shape: tuple) -> tuple[int, int, int, int] | None:
    """A picture on a plain background, in a view of ``shape``: the background flooded from the corners
    (at least :data:`PLAIN_CORNERS` of them flat: within 3 levels over their 5 x 5 pixels, in every colour),
    to within :data:`PLAIN_TOLERANCE` levels of each corner's colour; what is left must be one rectangle
    (:data:`PLAIN_FILL` of its bounding box) that passes :data:`AREA`, :data:`MIN_SIDE` and :data:`BORDERS`.
    Its outline may have no edge in grey at all (a photo on a background of its own brightness)."""
    import cv2

    corners = [(0, 0), (-1, 0), (0, -1), (-1, -1)]
    if sum(_flat(rgb, x, y) for x, y in corners) < PLAIN_CORNERS:
        return None
    view = cv2.resize(np.ascontiguousarray(rgb), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    h, w = shape
    flood = np.zeros((h + 2, w + 2), np.uint8)
    flags = 4 | cv2.FLOODFILL_FIXED_RANGE | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
    for x, y in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)):
        if not flood[y + 1, x + 1] and _flat(view, x, y):
            cv2.floodFill(view, flood, (x, y), 0, (PLAIN_TOLERANCE,) * 3, (PLAIN_TOLERANCE,) * 3, flags)
    content = flood[1:-1, 1:-1] == 0
    if content.all() or not content.any():
        return None
    ys, xs = np.nonzero(content)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    bw, bh = x1 - x0, y1 - y0
    touches = (x0 <= 1) + (y0 <= 1) + (x1 >= w - 1) + (y1 >= h - 1)
    ok = (AREA[0] <= bw * bh / (h * w) <= AREA[1] and bw >= MIN_SIDE * w and bh >= MIN_SIDE * h and touches <= BORDERS
          and content[y0:y1, x0:x1].mean() >= PLAIN_FILL)
    return (x0, y0, x1, y1) if ok else None


def _flat(rgb: np.ndarray, x: int, y: int, side: int = 5, levels: int = 3) -> bool:
    """The ``side`` x ``side`` pixels at the corner (x, y) (0 or -1 each) lie within ``levels`` in every colour."""
    h, w = rgb.shape[:2]
    ys = slice(0, side) if y == 0 else slice(h - side, h)
    xs = slice(0, side) if x == 0 else slice(w - side, w)
    patch = rgb[ys, xs].reshape(-1, rgb.shape[2])
    return int((patch.max(0).astype(np.int16) - patch.min(0)).max()) <= levels


def _straight_edges(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canny edges that run straight across (horizontal) and down (vertical) for :data:`LINE` of the shorter side."""
    import cv2

    edges = cv2.Canny(grey, *CANNY)
    run = max(15, int(LINE * min(grey.shape)))
    across = cv2.morphologyEx(edges, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (run, 1)))
    down = cv2.morphologyEx(edges, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, run)))
    return across, down


def _bridged(across: np.ndarray, down: np.ndarray, bridge: float) -> tuple[np.ndarray, np.ndarray]:
    """The straight edges with gaps along them of up to ``bridge`` of the image's side closed (0: as they are)."""
    import cv2

    if not bridge:
        return across, down
    h, w = across.shape
    across = cv2.morphologyEx(cv2.dilate(across, np.ones((3, 1), np.uint8)), cv2.MORPH_CLOSE,
                              cv2.getStructuringElement(cv2.MORPH_RECT, (max(1, int(bridge * w)), 1)))
    down = cv2.morphologyEx(cv2.dilate(down, np.ones((1, 3), np.uint8)), cv2.MORPH_CLOSE,
                            cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(1, int(bridge * h)))))
    return across, down


def _cornered(across: np.ndarray, down: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """The straight edges of both directions together, with gaps of up to ``gap`` of the image's side closed
    along each direction: a line that stops short of the line across its end (a corner that the view's
    resampling or a dark photo's edge left open) meets it. :func:`_bridged` closes gaps between lines of one
    direction only."""
    import cv2

    h, w = across.shape
    both = across | down
    across = cv2.morphologyEx(both, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (max(1, int(gap * w)), 1)))
    down = cv2.morphologyEx(both, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(1, int(gap * h)))))
    return across, down


def _largest_enclosed(across: np.ndarray, down: np.ndarray) -> tuple[int, int, int, int] | None:
    """The bounding box (left, top, right, bottom) of the largest region the edges enclose that passes
    :data:`AREA`, :data:`MIN_SIDE`, :data:`FILL` and :data:`BORDERS`, or None."""
    import cv2

    lines = cv2.dilate(across | down, np.ones((3, 3), np.uint8))
    h, w = lines.shape
    _, _, stats, _ = cv2.connectedComponentsWithStats((lines == 0).astype(np.uint8), connectivity=4)
    x, y, bw, bh, area = (stats[1:, k].astype(np.int64) for k in range(5))
    share = bw * bh / (h * w)
    touches = (x <= 3).astype(int) + (y <= 3) + (x + bw >= w - 3) + (y + bh >= h - 3)
    ok = ((share >= AREA[0]) & (share <= AREA[1]) & (area >= FILL * bw * bh) & (bw >= MIN_SIDE * w) & (bh >= MIN_SIDE * h)
          & (touches <= BORDERS))
    if not ok.any():
        return None
    i = int(np.flatnonzero(ok)[np.argmax(share[ok])])
    return int(x[i]), int(y[i]), int(x[i] + bw[i]), int(y[i] + bh[i])
