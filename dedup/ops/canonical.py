"""The policy that says which image of a cluster is kept (no Ray; stage `canonical` runs it).

Two policies, ``--canonical``:

* ``quality`` (the default): the best version, by evidence from the images themselves (:func:`choose`):
  every two candidates are compared; the forensic rules and the rules of direct evidence decide a pair
  where one sees a clear difference, the kept-image model (:mod:`dedup.ops.evidence`) weighs the rest of
  the evidence for the pairs none of them decides, and the decisions are taken surest first (ranked
  pairs). Candidates are the cluster's images that are near copies of every other one in it, so the
  cluster stays the same and every removed image is still a copy of the kept one. ``docs/how-it-decides.md``
  ("Which image is kept") says why each rule is where it is.
* a comma list of keys, applied in order, each breaking the previous one's ties: ``pixels`` (more pixels
  first), ``bytes`` (larger file first), ``path`` (path order). ``largest`` is ``pixels,bytes,path``, the
  policy before ``quality`` existed.

The rules: here those read off a version's measures (resampled, stretched, enlarged, colour, flat, central) and
``framed`` (:mod:`dedup.ops.lineage`); edits in one region in :mod:`dedup.ops.regions`; tone edits over the whole
picture in :mod:`dedup.ops.tones`; JPEG compression in :mod:`dedup.ops.lattices`; the candidate in :mod:`dedup.ops.versions`.
Clusters are formed in the ``largest`` order (:func:`policy_rank`, :mod:`dedup.ops.graph`) under either policy; path
order breaks the last ties, so every choice is deterministic.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd

from dedup.ops.lattices import (_jpeg_format, _lossy_copy, _recompressed, _reoriented, _requantized, _resaved, _same_pixels,
                                _saved_from_jpeg)
from dedup.ops.regions import _clip_rule, _drawn_on, _local_edit, _vignetted
from dedup.ops.tones import _equalized, _tone_mapped
from dedup.ops.versions import Version, _more, aligned

LARGEST = "pixels,bytes,path"
KEYS = ("pixels", "bytes", "path")
POLICIES = {"largest": LARGEST}


def policy_rank(keys: list[str], pixels: np.ndarray, nbytes: np.ndarray, path_order: np.ndarray) -> np.ndarray:
    columns = {
        "pixels": -np.asarray(pixels, np.int64),
        "bytes": -np.asarray(nbytes, np.int64),
        "path": np.asarray(path_order, np.int64),
    }
    sort_keys = [columns[k] for k in keys] + [columns["path"]]
    order = np.lexsort(tuple(reversed(sort_keys)))  # lexsort's last key is the primary one
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank


def per_vid(files: pd.DataFrame, meta: pd.DataFrame, n: int) -> dict[str, np.ndarray]:
    """The policy's inputs per vid: ``pixels`` (from the decoded metadata) and ``bytes`` (the file size)."""
    pixels = np.zeros(n, np.int64)
    nbytes = np.zeros(n, np.int64)
    if n:
        m = meta.set_index("vid")
        idx = m.index.to_numpy(np.int64)
        pixels[idx] = m["width"].to_numpy(np.int64) * m["height"].to_numpy(np.int64)
        ok = files[files["vid"].notna()]
        nbytes[ok["vid"].to_numpy(np.int64)] = ok["bytes"].to_numpy(np.int64)
    return {"pixels": pixels, "bytes": nbytes}


def rank_vids(keys: list[str], files: pd.DataFrame, meta: pd.DataFrame, n: int) -> np.ndarray:
    """Each vid's place in a key list's order (vids are numbered in path order, see `plan`)."""
    v = per_vid(files, meta, n)
    return policy_rank(keys, v["pixels"], v["bytes"], np.arange(n))


def _native(v: Version) -> float:
    return min(v.f["native_x"], v.f["native_y"])


def _resampled(x: Version, y: Version, margin: float = 0.04) -> int:
    """Two images of the same size (within 3 %), one with clearly less detail at its own pixel scale: that
    one was resampled (a zoomed re-framing, a rotation, a blur, a heavy JPEG): the other wins."""
    if not 0.97 <= x.f["pixels"] / max(y.f["pixels"], 1) <= 1 / 0.97:
        return 0
    d = _native(x) - _native(y)
    return 1 if d > margin else (-1 if d < -margin else 0)


def _stretched(x: Version, y: Version, longer: float = 1.08, same: float = 0.02, margin: float = 0.02,
               anisotropy: float = 0.01) -> int:
    """One image longer (by ``longer`` or more) along one axis only, with less detail at its own pixel scale
    along that axis (by ``margin``), and more so than along its other axis (by ``anisotropy``, against the
    other image's own balance): stretched from the other, which wins. A crop along one axis keeps its
    detail; a stretch interpolates it (a drop of 0.04-0.2 at 1.25-1.6x)."""
    for axis, other, nat, onat in (("width", "height", "native_x", "native_y"), ("height", "width", "native_y", "native_x")):
        for big, small, sign in ((x, y, -1), (y, x, 1)):
            if abs(big.f[other] / max(small.f[other], 1) - 1) <= same and big.f[axis] >= small.f[axis] * longer:
                drop = small.f[nat] - big.f[nat]
                unbalanced = (big.f[onat] - big.f[nat]) - (small.f[onat] - small.f[nat])
                if drop > margin and unbalanced > anisotropy:
                    return sign
    return 0


def _bigger(x: Version, y: Version) -> tuple[Version, Version, int] | None:
    """(the larger, the smaller, -1 if the larger is x else +1), or None within 3 % of each other."""
    if x.f["pixels"] > y.f["pixels"] / 0.97:
        return x, y, -1
    if y.f["pixels"] > x.f["pixels"] / 0.97:
        return y, x, 1
    return None


def _enlarged(x: Version, y: Version, margin: float = 0.06) -> int:
    """The larger image has clearly less detail at its own pixel scale: it was enlarged from the other.
    ``margin``: measured on photos made 1.25-2x larger and 0.8-0.3x smaller (``python -m bench
    --canonical-study``): at 0.06 it catches 53-85 % of the enlargements and calls 0-7 % of the downscales
    enlarged (at 0.04: 80-90 % and 3-15 %)."""
    pair = _bigger(x, y)
    return pair[2] if pair and _native(pair[1]) - _native(pair[0]) > margin else 0


def _colour(x: Version, y: Version) -> int:
    cx, cy = x.f["colourfulness"], y.f["colourfulness"]
    return (1 if cx > cy else -1) if min(cx, cy) < 3 and max(cx, cy) > 8 else 0


def _poor_jpeg(x: Version, y: Version) -> int:
    """A heavily compressed JPEG loses (a lossy WebP's ``jpeg_quality`` of 100 says nothing of its
    compression: no decision against one)."""
    if x.f.get("lossy") or y.f.get("lossy"):
        return 0
    qx, qy = x.f["jpeg_quality"], y.f["jpeg_quality"]
    return (1 if qx > qy else -1) if min(qx, qy) < 70 and abs(qx - qy) >= 10 else 0


def _flat(x: Version, y: Version) -> int:
    fx, fy = x.f["flat"], y.f["flat"]
    return -_more(fx, fy, 1.5) if abs(fx - fy) > 0.01 else 0


def tone_distance(x: Version, y: Version) -> float:
    """The mean difference of the two tones (:func:`dedup.ops.quality.tone_levels`), 0-1."""
    return float(np.abs(x.tone - y.tone).mean() / 255.0) if x.tone is not None and y.tone is not None else 0.0


def set_spread(versions: list[Version], sims: np.ndarray | None, same_sim: float = 0.98, same_tone: float = 0.005) -> None:
    """Each version's ``spread`` where a cluster holds three or more distinct versions: its mean distance
    to the others, a distance being the descriptor's (1 - similarity, ``sims``) plus the tone distance
    (:func:`tone_distance`). The source of a cluster's copies is one edit from each of them and two copies
    are two edits apart, so the source is the most central. Versions that are nearly one image
    (similarity ``same_sim`` or more, tones within ``same_tone``: re-encodes of one version; the
    thresholds' trade is in ``python -m bench --canonical-study``) count as one group, so that re-posts of one edited copy do not make it the centre:
    the distance to a group is the mean over its members, and with fewer than three groups there is no
    spread (two versions are equally central)."""
    n = len(versions)
    for v in versions:
        v.f.pop("spread", None)
    if sims is None or n < 3:
        return
    tone = np.array([[tone_distance(x, y) for y in versions] for x in versions])
    d = 1.0 - np.asarray(sims, np.float64) + tone
    np.fill_diagonal(d, 0.0)
    group = np.arange(n)
    for i in range(n):
        for j in range(i + 1, n):
            if sims[i, j] >= same_sim and tone[i, j] <= same_tone:
                group[group == group[j]] = group[i]
    labels = np.unique(group)
    if len(labels) < 3:
        return
    for i, v in enumerate(versions):
        v.f["spread"] = round(float(np.mean([d[i, group == g].mean() for g in labels if g != group[i]])), 5)


def _central(x: Version, y: Version, margin: float = 0.01) -> int:
    """The version clearly closer to all the others (a smaller ``spread``, :func:`set_spread`) wins."""
    if "spread" not in x.f or "spread" not in y.f:
        return 0
    d = y.f["spread"] - x.f["spread"]
    return 1 if d > margin else (-1 if d < -margin else 0)


def _framed(x: Version, y: Version) -> int:
    """Two versions whose pictures register (:mod:`dedup.ops.lineage`), one of them the other's picture with
    something added around it or put in a new frame (pad, letterbox, meme card, caption bar, canvas,
    screenshot, the filled corners of a rotation or a perspective warp): the edge of the other's frame in it
    is a step the picture does not make (:func:`dedup.ops.lineage.added_to`), and the other wins. Versions
    closely aligned (:func:`aligned` within 0.1 standard deviations at the median pixel: re-encodes, tone
    edits, overlays; a 20 degree turn of a photo with a plain sky gives 0.17) have no extra and are not
    registered (the cost)."""
    from dedup.ops.lineage import added_to

    return added_to(x, y) if _framings(x, y) else 0


def _contains(x: Version, y: Version) -> int:
    """One version holds the other's whole picture and more of the scene around it (:func:`dedup.ops.lineage.contains`):
    the other is a crop of it, also one enlarged back to its size. The same versions as :func:`_framed` are
    registered (once per pair, for both rules)."""
    from dedup.ops.lineage import contains

    return contains(x, y) if _framings(x, y) else 0


def _framings(x: Version, y: Version) -> bool:
    """Whether two versions may frame the picture differently, so that ``framed`` and ``contains`` register
    them: both have a detail view, their pixels differ, and they are not closely aligned."""
    return x.detail is not None and y.detail is not None and x.f.get("digest") != y.f.get("digest") and not aligned(x, y, 0.1)


def _noise_added(x: Version, y: Version, lag: float = 0.1, edges: float = 0.12, level: float = 10.0,
                 combed: float = 0.1) -> int:
    """One of two versions of one frame (same detail view size, :func:`aligned`) is the other with noise
    added: the pixel-scale part of their difference (their detail views, tones matched, less a 3 px
    Gaussian blur of it) is white (neighbours correlate under ``lag`` either way: the finest detail a heavy
    JPEG or a blur takes away leaves neighbours anti-correlated), does not follow the quieter one's
    edges (its absolute value correlates with that version's gradient under ``edges``: a blur, a sharpening
    or a re-encode differs most at edges) and is strong (standard deviation over ``level`` grey levels).
    The one with the higher noise floor (:func:`dedup.ops.quality.noise_floor`) loses, unless the quieter
    one's tones are combed (over ``combed``, :func:`dedup.ops.quality.tone_comb`): quantising a picture
    (posterize, a palette) takes away an error as white as added noise, and leaves its tones combed."""
    import cv2

    if x.detail is None or y.detail is None or x.detail.shape != y.detail.shape or x.f.get("digest") == y.f.get("digest"):
        return 0
    if not aligned(x, y, 0.3):
        return 0
    gx, gy = x.detail.astype(np.float32), y.detail.astype(np.float32)
    d = (gy - gy.mean()) / max(float(gy.std()), 1e-3) * float(gx.std()) + float(gx.mean()) - gx
    d = d - cv2.GaussianBlur(d, (0, 0), 3)
    if float(d.std()) <= level or not abs(np.corrcoef(d[:, 1:].ravel(), d[:, :-1].ravel())[0, 1]) < lag:
        return 0  # (not ... <: a NaN correlation, of a flat view, decides nothing)
    quiet, q = (gx, x) if x.f["noise"] <= y.f["noise"] else (gy, y)
    if not 0 <= q.f.get("combed", -1) <= combed:  # combed, or not measured (a palette file, an older measure)
        return 0
    grad = cv2.magnitude(cv2.Sobel(quiet, cv2.CV_32F, 1, 0), cv2.Sobel(quiet, cv2.CV_32F, 0, 1))
    if not np.corrcoef(np.abs(d).ravel(), grad.ravel())[0, 1] < edges:
        return 0
    return 1 if x.f["noise"] < y.f["noise"] else (-1 if y.f["noise"] < x.f["noise"] else 0)


def _pasted(x: Version, y: Version, min_overlap: float = 0.7, max_turn: float = 0.1) -> int:
    """One version is the other pasted into a larger image (a page, an app's screenshot, a canvas): the
    picture found inside it by its outline (:mod:`dedup.ops.pictures`) is where the content check put the
    other version's whole frame (their boxes overlap by ``min_overlap`` of their union), scaled and shifted
    only (a pasted picture is not turned or mirrored: a turned copy of the photo in a bordered copy's
    outline is the photo's sibling, not its source). The other wins."""
    for a, b, sign in ((x, y, 1), (y, x, -1)):
        t = _unit_link(a, b)
        if b.box is not None and t is not None and _upright(t, max_turn) and _overlap(_frame_in(t), b.box) >= min_overlap:
            return sign
    return 0


def _upright(t: np.ndarray, max_turn: float) -> bool:
    """A transform that scales and shifts (its off-diagonal terms under ``max_turn`` of its diagonal ones, both positive)."""
    sx, sy, k = t[0, 0], t[1, 1], max(abs(t[0, 1]), abs(t[1, 0]))
    return sx > 0 and sy > 0 and k <= max_turn * min(sx, sy)


def _unit_link(a: Version, b: Version) -> np.ndarray | None:
    """The content check's transform from ``a``'s frame to ``b``'s (unit coordinates), either way it was kept."""
    if b.vid in a.links:
        return np.asarray(a.links[b.vid], np.float64).reshape(3, 3)
    if a.vid in b.links:
        try:
            return np.linalg.inv(np.asarray(b.links[a.vid], np.float64).reshape(3, 3))
        except np.linalg.LinAlgError:
            return None
    return None


def _frame_in(t: np.ndarray) -> tuple[float, float, float, float]:
    """The bounding box of a unit frame mapped by ``t``."""
    corners = np.array([[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], np.float64) @ t.T
    xy = corners[:, :2] / corners[:, 2:3]
    return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())


def _overlap(a: tuple, b: tuple) -> float:
    """Intersection over union of two boxes (left, top, right, bottom)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


Rule = tuple[str, Callable[[Version, Version], int]]
# +1: the first version is better, -1: the second, 0: no clear difference (the next rule decides). In order of
# how sure each is: a contradiction between two decisions is settled for the rule higher in the list.
RULES: list[Rule] = [
    ("same_pixels", _same_pixels),  # a lossless re-save of the JPEG: the JPEG is the source
    ("saved_from_jpeg", _saved_from_jpeg),  # a PNG or WebP whose luma keeps a JPEG's lattice was saved from it
    ("lossy_copy", _lossy_copy),  # a lossy WebP with the JPEG's pixels but for compression noise: made from it
    ("pasted", _pasted),  # the other pasted into a page, a screenshot or a canvas: inside the outline found there
    ("framed", _framed),  # the other's picture with a frame, pad, card, canvas or fill added around it
    ("contains", _contains),  # holds all of the other's picture and the scene around it: the other is a crop
    ("vignetted", _vignetted),  # one frame, the other darkened toward its corners
    ("equalized", _equalized),  # the other's colour channels each spread evenly over the levels
    ("local_edit", _local_edit),  # alike but in one region, drawn on in one of them (caption, watermark, patch)
    ("drawn_on", _drawn_on),  # alike but in one region, which in one of them does not continue its surroundings
    ("tone_mapped", _tone_mapped),  # aligned, the other a tone map of it that merges or folds its levels
    ("noise_added", _noise_added),  # one frame, the other with white noise added over it
    ("recompressed", _recompressed),  # a JPEG re-saved at a clearly lower quality, nothing else changed
    ("central", _central),  # three or more distinct versions: the one closest to all the others is their source
    ("reoriented", _reoriented),  # a mirrored or turned JPEG that keeps the other's lattice was made from it
    ("clipped_detail", _clip_rule),  # aligned pairs: lost highlights or shadows (brightened, captioned)
    ("resampled", _resampled),  # same size, less native detail (zoomed re-framing, rotation, blur)
    ("stretched", _stretched),  # longer along one axis, interpolated along it
    ("enlarged", _enlarged),  # more pixels, but interpolated ones
    ("picture", lambda x, y: _more(x.f["picture_pixels"], y.f["picture_pixels"], 1.04)),  # more picture (crops, downscales, borders)
    ("colour", _colour),  # colour over a grey version
    ("requantized", _requantized),  # a finer JPEG that keeps a coarser one's lattice was re-saved from it
    ("resaved", _resaved),  # a JPEG whose coefficients are the other's quantised again was saved from it
    ("jpeg_quality", _poor_jpeg),  # a heavily compressed JPEG loses
    ("flat", _flat),  # more textureless area: a pasted patch or box
    ("sharpness", lambda x, y: _more(x.f["sharpness"], y.f["sharpness"], 1.5)),  # blurred
    ("camera", lambda x, y: int(np.sign(x.f["camera"] - y.f["camera"]))),  # the camera's EXIF kept
    ("jpeg_format", _jpeg_format),  # a JPEG over a lossy re-encode in another format (WebP)
    ("jpeg_quality_exact", lambda x, y: int(np.sign(x.f["jpeg_quality"] - y.f["jpeg_quality"]))),
]
RULE_NAMES = tuple(name for name, _ in RULES)

# What each rule says about the kept image, in plain words (the manifest's ``kept_because``; ``kept_rule``
# keeps the names). ``{other}``: "the other" in a cluster of two, else "another".
PLAIN = {
    "same_pixels": "{other} is a lossless re-save of it",
    "saved_from_jpeg": "{other} was saved from it in another format (its pixels keep this JPEG's compression)",
    "lossy_copy": "{other} is a lossy re-encode of it in another format (WebP)",
    "jpeg_format": "it is the JPEG and {other} a lossy re-encode in another format (WebP)",
    "pasted": "{other} is this picture pasted into a larger image (a page, a screenshot, a canvas)",
    "contains": "{other} is a crop of it (it holds all of the other's picture and the scene around it)",
    "framed": "{other} is this picture put in a frame, with a pad, a card, a caption bar or a canvas added around it, or warped with filled corners",
    "vignetted": "{other} is this picture with a vignette added (darkened toward its corners)",
    "equalized": "{other} is this picture with its histogram equalized (each colour spread evenly over its levels)",
    "tone_mapped": "{other} is this picture through a tone curve that merges or folds its levels (solarized, posterized, clipped)",
    "local_edit": "{other} has something drawn on it (caption, watermark, patch)",
    "noise_added": "{other} is this picture with noise added",
    "drawn_on": "{other} has something drawn on it (caption, watermark, patch)",
    "recompressed": "{other} is a re-save of it at a lower JPEG quality",
    "central": "it is the version closest to all the others (they are edits of it)",
    "reoriented": "{other} is a mirrored or turned re-save of it",
    "clipped_detail": "{other} lost highlights or shadows (brightened, more contrast or a pasted box)",
    "resampled": "{other} is resampled (zoomed, rotated or blurred)",
    "stretched": "{other} is stretched",
    "enlarged": "{other} is an enlargement of it",
    "picture": "{other} is a crop or a smaller version of it",
    "colour": "{other} is greyscale",
    "requantized": "{other} is a re-save of it at a higher JPEG quality",
    "resaved": "{other} was saved again from it (its JPEG coefficients are this file's, quantised again)",
    "jpeg_quality": "{other} is a more compressed JPEG",
    "flat": "{other} has flat areas added (a border or a box)",
    "sharpness": "{other} is blurred",
    "camera": "it keeps the camera's EXIF",
    "grain": "{other}'s grain differs (smoothed by a resize or a re-save, or noise added)",
    "hues": "{other}'s hues differ (a colour filter or a tint)",
    "tones": "{other}'s tones differ in how combed they are (the gaps and peaks levels, a curve or a filter leave)",
    "detail": "{other}'s detail differs (blurred, sharpened or resampled)",
    "colourfulness": "{other}'s colours are weaker or stronger (a saturation or colour edit)",
    "format": "{other} is a re-save in another file format",
    "jpeg_quality_exact": "{other} is a more compressed JPEG",
    "largest": "largest (no evidence told them apart)",
    "largest (versions unreadable)": "largest (the other versions could not be read)",
    "byte-identical": "identical files: the oldest (then the shallowest path, then the name)",
}


def in_words(why: str, cluster_size: int = 2) -> str:
    """``why`` (rule names, most used first, as :func:`choose` gives them) in plain words."""
    other = "the other" if cluster_size <= 2 else "another"
    words = []
    for name in (w.strip() for w in why.split(",") if w.strip()):
        text = PLAIN.get(name, name).format(other=other)
        if text not in words:
            words.append(text)
    return "; ".join(words) if words else why


def compare(x: Version, y: Version, rules: list[Rule] | None = None) -> tuple[int, str | None]:
    """(+1 / -1 / 0, the rule that decided) for two versions of one image, by ``rules`` (:data:`RULES`)."""
    for name, rule in RULES if rules is None else rules:
        r = rule(x, y)
        if r:
            return int(r), name
    return 0, None


def choose(versions: list[Version], sims: np.ndarray | None = None, rules: list[Rule] | None = None,
           spread: dict | None = None, model: dict | None = None) -> tuple[int, str]:
    """(index of the version kept, why), by ranked pairs: every two versions compared, the decisions taken
    surest first, each one kept unless it contradicts those already kept (a cycle: A over B, B over C, C
    over A). With ``model`` (by default :func:`dedup.ops.evidence.load_model`'s): the forensic rules and
    the rules of direct evidence first (:func:`_by_model`), then the model's decisions, the largest scores first;
    with ``rules`` (such as :data:`RULES`; the canonical study passes others): their decisions, in their order.
    ``sims``: the versions' descriptor similarities, n x n, for :func:`set_spread` (with ``spread``'s
    keywords). The kept version is one that no kept decision puts another over; of several, the first in
    the largest order. Why: the rules of the decisions it won, most used first (``largest`` when none)."""
    if rules is None and model is None:
        from dedup.ops.evidence import load_model

        model = load_model()
    set_spread(versions, sims, **(spread or {}))
    decided = _by_model(versions, model) if model is not None else _by_rules(versions, rules)
    n = len(versions)
    over = np.zeros((n, n), bool)  # over[w, l]: w is kept over l, directly or through others
    by: list[Counter] = [Counter() for _ in versions]
    for _, (w, lose), name in sorted(decided, key=lambda d: d[0]):
        if over[lose, w]:
            continue  # contradicts surer decisions
        over[w, lose] = True
        by[w][name] += 1
        into, out_of = over[:, w].copy(), over[lose].copy()
        into[w], out_of[lose] = True, True
        over[np.ix_(into, out_of)] = True  # everything over w is now over everything lose is over
    free = [i for i in range(n) if not over[:, i].any()]
    best = min(free, key=lambda i: versions[i].rank)
    why = ", ".join(name for name, _ in by[best].most_common()) or "largest"
    return best, why


def _by_rules(versions: list[Version], rules: list[Rule]) -> list[tuple]:
    """(strength key, (winner, loser), rule) for every two versions a rule of ``rules`` decides."""
    names = [name for name, _ in rules]
    decided = []
    for i in range(len(versions)):
        for j in range(i + 1, len(versions)):
            r, name = compare(versions[i], versions[j], rules)
            if r:
                decided.append(((names.index(name),), (i, j) if r > 0 else (j, i), name))
    return decided


def _by_model(versions: list[Version], model: dict) -> list[tuple]:
    """(strength key, (winner, loser), evidence) for every two versions: the decision of a forensic rule or
    a rule of direct evidence where one holds (:data:`dedup.ops.evidence.FORENSIC`, then
    :data:`dedup.ops.evidence.SURE`, in order), else the model's (:func:`dedup.ops.evidence.score`), surer
    for a larger score."""
    from dedup.ops.evidence import FORENSIC, SURE, score

    rules = dict(RULES)
    sure = [(name, rules[name]) for name in FORENSIC + SURE]
    decided = []
    for i in range(len(versions)):
        for j in range(i + 1, len(versions)):
            r, name = compare(versions[i], versions[j], sure)
            if r:
                decided.append(((0, (FORENSIC + SURE).index(name)), (i, j) if r > 0 else (j, i), name))
                continue
            s, name = score(versions[i], versions[j], model, known=dict.fromkeys(SURE, 0))  # none of them decided
            if s:
                decided.append(((1, -abs(s)), (i, j) if s > 0 else (j, i), name))
    return decided
