"""The evidence of which of two versions was made from the other, weighed by a small trained model.

:func:`features` turns two candidates (:class:`dedup.ops.canonical.Version`) into one vector: what each
soft rule of :data:`dedup.ops.canonical.RULES` says (+1 / 0 / -1) and the differences of their measures
(picture kept, detail at the pixel scale, sharpness, colour, clipped tones, flat areas, format, closeness to
the other versions, the noise floor in smooth areas, the spread of hues, how combed the tones are). It is antisymmetric:
``features(y, x) == -features(x, y)``. The model (``kept_model.json`` beside this file) is boosted trees
``F`` whose score ``(F(phi) - F(-phi)) / 2`` (:func:`tree_score`) is antisymmetric too: positive says "x is
the source", and the order of a pair never matters. It is fitted on (source, copy) pairs made by AugLy edit
chains and on the bench corpus (``python -m bench --kept-model``, ``make kept-model``), whole families of edits and
a share of the photos held out. The forensic rules (:data:`FORENSIC`: lossless and lossy re-saves of a JPEG's
own pixels) and the rules of direct evidence (:data:`SURE`: a frame, a caption or a sticker added, a turned
copy that keeps the source's JPEG lattice...) stay decisions of their own, taken before the model, which
weighs what is left: the pairs none of those decides (it is fitted on those pairs only).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_FILE = Path(__file__).with_name("kept_model.json")
# Sure by construction (the other file holds the JPEG's own decoded pixels): decided before the model.
FORENSIC = ("same_pixels", "saved_from_jpeg", "lossy_copy")
# Direct evidence of what was added to or kept from the other version, right in 0.91-1.0 of the (source,
# copy) pairs it decides on both the AugLy lineage corpus and the bench corpus (`python -m bench --kept-model`;
# equalized and tone_mapped, whose edits those corpora hardly hold, were measured on the albumentations and
# torchvision corpora: docs/how-it-decides.md): decided by these rules, in this order, after the forensic ones and
# before the model.
SURE = ("pasted", "framed", "contains", "vignetted", "equalized", "local_edit", "drawn_on", "tone_mapped", "reoriented",
        "requantized", "resaved", "stretched", "camera", "noise_added")
# Rules whose vote the model weighs (the rest of dedup.ops.canonical.RULES).
VOTES = ("framed", "local_edit", "drawn_on", "recompressed", "central", "reoriented", "clipped_detail", "resampled",
         "stretched", "enlarged", "picture", "colour", "requantized", "jpeg_quality", "flat", "sharpness", "camera",
         "jpeg_format")
# Differences of the two versions' measures, each with the name of what it says in plain words (canonical.PLAIN;
# a difference can weigh either way, so its words name the difference, not a direction).
MEASURES = {
    "log_picture": "picture", "log_pixels": "picture", "native": "resampled", "log_sharpness": "detail",
    "colour": "colourfulness", "clipped": "clipped_detail", "flat": "flat", "lossless": "format", "lossy": "format",
    "spread": "central", "noise": "grain", "hues": "hues", "combed": "tones", "native_excess": "detail",
}
# Detail at the pixel scale above what a photo at its own resolution has (:func:`_native_excess`): the 90th
# percentile of the originals' ``native`` in the tune part of the kept model's training corpus. A sharpened copy or
# one with noise added sits above it, its source below; a blurred copy sits far below its source.
NATIVE_CEILING = 0.77
NAMES = tuple(f"vote_{r}" for r in VOTES) + tuple(MEASURES)


def _measures(x, y) -> list[float]:
    fx, fy = x.f, y.f
    spread = fy["spread"] - fx["spread"] if "spread" in fx and "spread" in fy else 0.0
    return [
        math.log(max(fx["picture_pixels"], 1) / max(fy["picture_pixels"], 1)),
        math.log(max(fx["pixels"], 1) / max(fy["pixels"], 1)),
        min(fx["native_x"], fx["native_y"]) - min(fy["native_x"], fy["native_y"]),
        math.log((fx["sharpness"] + 1e-3) / (fy["sharpness"] + 1e-3)),
        (fx["colourfulness"] - fy["colourfulness"]) / 50.0,
        float(fx["clipped"] - fy["clipped"]),
        float(fx["flat"] - fy["flat"]),
        float(fx.get("lossless", 0) - fy.get("lossless", 0)),
        float(fx.get("lossy", 0) - fy.get("lossy", 0)),
        10.0 * spread,
        math.log((fx.get("noise", 0.0) + 0.5) / (fy.get("noise", 0.0) + 0.5)),
        fx.get("hues", 0.0) - fy.get("hues", 0.0),
        # a copy's tones more combed than its source's (quality.tone_comb); a palette file (-1) or a measure
        # from before it: no evidence
        math.log((fy["combed"] + 0.02) / (fx["combed"] + 0.02)) if min(fx.get("combed", -1), fy.get("combed", -1)) >= 0 else 0.0,
        _native_excess(fx) - _native_excess(fy),
    ]


def _native_excess(f: dict) -> float:
    """How far a version's detail at its own pixel scale lies above :data:`NATIVE_CEILING`: the difference
    of ``native`` alone says which version has more fine detail, not whether that detail was added (a
    sharpened copy) or the other's was lost (a blurred copy); the level says which."""
    return max(0.0, min(f["native_x"], f["native_y"]) - NATIVE_CEILING)


def features(x, y, known: dict | None = None) -> np.ndarray:
    """The evidence vector of :data:`NAMES` for versions ``x`` and ``y`` (antisymmetric); ``known``: votes
    already taken (rule name -> vote), not taken again (the registration behind ``framed`` is the costly one)."""
    from dedup.ops.canonical import RULES

    rules, known = dict(RULES), known or {}
    votes = [float(known[name] if name in known else rules[name](x, y)) for name in VOTES]
    return np.asarray(votes + _measures(x, y), np.float64)


@lru_cache(maxsize=4)
def load_model(path: str | None = None) -> dict:
    """The fitted model: ``{"names": [...], "trees": [...], "depth": ..., "trained_on": ...}`` (or
    ``"weights"``: a linear model, the study's baseline, as ``w``); its names must be :data:`NAMES` (a model
    fitted on other evidence is refused, not misread)."""
    model = json.loads(Path(path or MODEL_FILE).read_text())
    if tuple(model["names"]) != NAMES:
        raise ValueError(f"{path or MODEL_FILE} was fitted on other evidence ({model['names'][:3]}...)")
    model["w"] = np.asarray(model.get("weights") or np.zeros(len(NAMES)), np.float64)
    if model.get("trees"):
        model["forest"] = forest(model["trees"])
    return model


@dataclass(frozen=True)
class Forest:
    """Boosted trees as arrays, every tree padded to a complete tree of ``depth`` (a padded node has feature
    -1 and threshold +inf: it always goes left, to a copy of the leaf it stands for), so that all trees are
    walked at once, a level at a time."""

    feat: np.ndarray  # (trees, 2**depth - 1) int, node index in breadth-first order; -1: padded
    thr: np.ndarray  # (trees, 2**depth - 1) float
    leaf: np.ndarray  # (trees, 2**depth) float
    depth: int


def forest(trees: list) -> Forest:
    """The :class:`Forest` of trees as the model file holds them (``{"f", "t", "l", "r"}`` nodes, leaves as numbers)."""
    def height(t) -> int:
        return 1 + max(height(t["l"]), height(t["r"])) if isinstance(t, dict) else 0

    depth = max([height(t) for t in trees] + [1])
    nodes, leaves = 2 ** depth - 1, 2 ** depth
    feat, thr, leaf = np.full((len(trees), nodes), -1, np.int64), np.full((len(trees), nodes), np.inf), np.zeros((len(trees), leaves))

    def fill(k: int, t, i: int, level: int) -> None:
        if level == depth:
            leaf[k, i - nodes] = t
            return
        if isinstance(t, dict):
            feat[k, i], thr[k, i] = t["f"], t["t"]
            fill(k, t["l"], 2 * i + 1, level + 1)
            fill(k, t["r"], 2 * i + 2, level + 1)
        else:  # a leaf above the bottom: padded nodes below it, every leaf under it the same
            fill(k, t, 2 * i + 1, level + 1)
            fill(k, t, 2 * i + 2, level + 1)

    for k, t in enumerate(trees):
        fill(k, t, 0, 0)
    return Forest(feat, thr, leaf, depth)


def _walk(f: Forest, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each tree's leaf value for ``phi``, the features each tree's path split on: (trees, depth), -1 padded)."""
    ext = np.append(phi, 0.0)  # feature -1 (padded nodes) reads this; their threshold sends it left
    rows, i = np.arange(len(f.feat)), np.zeros(len(f.feat), np.int64)
    used = np.empty((len(f.feat), f.depth), np.int64)
    for level in range(f.depth):
        k = f.feat[rows, i]
        used[:, level] = k
        i = 2 * i + 1 + ~(ext[k] <= f.thr[rows, i])  # left where phi[f] <= t, as the trees were fitted (NaN: right)
    return f.leaf[rows, i - len(f.feat[0])], used


def tree_score(trees: "list | Forest", phi: np.ndarray) -> tuple[float, np.ndarray]:
    """(F(phi) - F(-phi)) / 2 of boosted trees (antisymmetric), and each feature's share of it: a tree's
    difference credited equally to the features it split on (along either walk)."""
    f = trees if isinstance(trees, Forest) else forest(trees)
    phi = np.asarray(phi, np.float64)
    (va, ua), (vb, ub) = _walk(f, phi), _walk(f, -phi)
    d = (va - vb) / 2
    used = np.sort(np.concatenate([ua, ub], axis=1), axis=1)
    first = np.ones(used.shape, bool)
    first[:, 1:] = used[:, 1:] != used[:, :-1]
    first &= used >= 0
    share = d / np.maximum(first.sum(axis=1), 1)
    credit = np.zeros(len(phi))
    rows = np.nonzero(first)
    np.add.at(credit, used[rows], share[rows[0]])
    return float(sum(d.tolist())), credit  # summed tree by tree, in order: the same total as one tree at a time


def score(x, y, model: dict | None = None, known: dict | None = None) -> tuple[float, str]:
    """(the model's score, > 0: ``x`` is the source of ``y``; the rule name of the evidence that weighed most
    in that direction); ``known``: as for :func:`features`."""
    model = model or load_model()
    phi = features(x, y, known)
    if model.get("trees"):
        s, parts = tree_score(model.get("forest") or forest(model["trees"]), phi)
    else:
        parts = model["w"] * phi
        s = float(parts.sum())
    k = int(np.argmax(parts * (1 if s >= 0 else -1)))
    name = NAMES[k]
    return s, (name[5:] if name.startswith("vote_") else MEASURES[name])
