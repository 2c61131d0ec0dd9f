"""The job's one typed configuration object (its sections are :mod:`dedup.options`).

Built from CLI flags (``dedup run ...``) or a YAML file (``dedup run --config job.yaml``); flags given on
the command line override the file. Every field has a default that works on a laptop.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from dedup.options import (BulkOptions, ConfigError, InputOptions, MatchOptions, MilvusOptions, ModelOptions,
                           ResourceOptions)

CANONICAL_KEYS = ("pixels", "bytes", "path")
# Perceptual hashes (dedup.ops.hashes), and the default --max-bits of each: the largest Hamming distance
# with no image wrongly removed on the bench corpus (multihash: 64 of 256 bits, F1 0.947).
HASH_MODELS = {"multihash": 64, "multihash-mirror": 62, "phash-robust": 28, "phash": 10, "dhash": 7, "whash": 4, "colorhash": 14}
# Learned models (an embedding actor pool): SSCD (copy detection, the default), its distilled MobileNetV4
# student, and torchvision's ImageNet ResNet-50. Each has its own default threshold, input size and resize.
LEARNED_MODELS = ("sscd", "sscd-mobile", "resnet50")
# Both signals: the learned model's edges (cosine >= --threshold) and hash edges (<= --max-bits), one graph.
COMBO_MODELS = tuple(f"{m}+{h}" for m in LEARNED_MODELS for h in HASH_MODELS)
MODELS = (*LEARNED_MODELS, "thumb", *HASH_MODELS, *COMBO_MODELS)
DEFAULT_MODEL = ModelOptions.model
# Cosine thresholds without the content check (--verify off; see docs/how-it-decides.md, "Choosing a threshold";
# bench/results/bench.md has the sweeps).
DEFAULT_THRESHOLDS = {"sscd": 0.80, "sscd-mobile": 0.80, "resnet50": 0.90, "thumb": 0.90}
DEFAULT_THRESHOLD = DEFAULT_THRESHOLDS[DEFAULT_MODEL]
# The content check (stage verify): pairs with similarity in [lo, hi) are kept only where the two images
# share content; lo is then the search threshold. Calibrated for SSCD on the bench corpus
# (docs/how-it-decides.md, "Verifying ambiguous pairs"); the other models have no calibrated band, so they default to --verify off.
DEFAULT_VERIFY_BANDS = {"sscd": (0.30, 0.90), "sscd-mobile": (0.30, 0.85)}
# How each model's input is made (--preprocess, --image-size): ResNet-50 as torchvision evaluates it
# (shorter side to 224, centre crop); SSCD resized to a 288 x 288 square without keeping the aspect ratio
# (the skewed square SSCD's authors recommend for batching; chosen by the preprocessing sweep, see docs/models.md).
DEFAULT_PREPROCESS = {"sscd": ("square", 288), "sscd-mobile": ("square", 288), "resnet50": ("center-crop", 224),
                      "thumb": ("center-crop", 224)}
# Nearest-neighbour similarities are recorded down to the threshold minus this (the report's histogram).
NN_FLOOR_BELOW = 0.3


@dataclass
class DedupConfig(ResourceOptions, BulkOptions, MilvusOptions, MatchOptions, ModelOptions, InputOptions):
    """Every option of the job: the sections of :mod:`dedup.options` (input, model, match, Milvus, bulk
    import, resources), one flat name per option as the flags, the YAML keys and the Python API spell it.
    :meth:`validate` checks each section and resolves the defaults that depend on several (the threshold,
    the content check, the model's input)."""

    def validate(self) -> "DedupConfig":
        """The options resolved: a copy with every default that does not wait for the cluster filled in (the
        threshold, the content check, the weights, the model's input, the nearest-neighbour floor, the search
        requests' sizes; the batches and actor counts that depend on GPUs stay None until Ray is up), checked,
        and frozen. ``self`` is left as given; ``dataclasses.replace(resolved, ...)`` makes an unresolved copy
        to change and validate again."""
        cfg = dataclasses.replace(self)
        cfg.__dict__["_warnings"] = self.warnings  # resolving a resolved config again says nothing new: keep what it said
        cfg._resolve()
        cfg.nn_floor = cfg.resolved_nn_floor()
        cfg.search_limit, cfg.search_max_limit = cfg.resolved_search_limit(), cfg.resolved_search_max_limit()
        cfg.search_batch = cfg.resolved_search_batch()
        cfg.__dict__["_resolved"] = True
        return cfg

    def __setattr__(self, name: str, value) -> None:
        if self.__dict__.get("_resolved"):
            raise dataclasses.FrozenInstanceError(f"a validated DedupConfig is frozen: dataclasses.replace(cfg, {name}=...) "
                                                  "makes a copy to change and validate again")
        super().__setattr__(name, value)

    def _resolve(self) -> None:
        self._check_input()
        if self.model not in MODELS:
            raise ConfigError(f"--model must be one of {', '.join(MODELS)}, got {self.model!r}")
        self._resolve_threshold()
        if not 0.0 < self.threshold <= 1.0 and not self.is_hash:
            raise ConfigError(f"--threshold must be in (0, 1], got {self.threshold}")
        self._resolve_model_defaults()
        for name in LITERAL_FIELDS:
            if getattr(self, name) not in choices(name):
                *rest, last = choices(name)
                raise ConfigError(f"--{name.replace('_', '-')} must be {', '.join(rest)} or {last}, got {getattr(self, name)!r}")
        if self.references and self.is_combo:
            raise ConfigError("--reference works with one signal: use the learned model or the hash alone, not MODEL+HASH")
        keys = [k.strip() for k in self.canonical.split(",") if k.strip()]
        if self.canonical not in ("quality", "largest") and (not keys or any(k not in CANONICAL_KEYS for k in keys)):
            raise ConfigError(f"--canonical must be quality, largest, or a comma list of {', '.join(CANONICAL_KEYS)} "
                              f"(got {self.canonical!r})")
        self._check_milvus()
        self._check_resources()

    def _resolve_model_defaults(self) -> None:
        """Per-model defaults: weights, the input size and resize, and the nearest-neighbour floor."""
        learned = self.learned_model
        if self.weights is None:
            self.weights = "imagenet" if learned == "resnet50" else "auto"
        if learned is None and self.weights not in ("auto", "imagenet"):
            raise ConfigError(f"--weights applies to the learned models ({', '.join(LEARNED_MODELS)}), not --model {self.model}")
        kind, size = DEFAULT_PREPROCESS.get(learned or self.model, ("center-crop", 224))
        self.preprocess = self.preprocess or kind
        self.image_size = int(self.image_size or size)
        if self.preprocess not in PREPROCESS:
            raise ConfigError(f"--preprocess must be one of {', '.join(PREPROCESS)}, got {self.preprocess!r}")
        if self.model == "thumb" and (self.image_size % 8 or self.preprocess == "short-side"):
            raise ConfigError("--model thumb needs a square input whose size is a multiple of 8")
        if not 32 <= self.image_size <= 1024:
            raise ConfigError(f"--image-size must be in 32..1024, got {self.image_size}")
        if self.nn_floor is not None and not -1.0 <= self.nn_floor <= self.threshold:
            raise ConfigError(f"--nn-floor must be at most the threshold ({self.threshold}), got {self.nn_floor}")

    def resolved_nn_floor(self) -> float:
        """The lowest similarity recorded as an image's nearest neighbour (default: the threshold - 0.3)."""
        if self.nn_floor is not None:
            return min(float(self.nn_floor), float(self.threshold))
        return max(0.0, round(float(self.threshold) - NN_FLOOR_BELOW, 4))

    def resolved_decode_batch(self, gpu: bool = False) -> int:
        """Images per decode block: on CPU actors 32 for ResNet-50 (small units keep both actors busy to the
        end), 256 for the weight-free models; feeding GPU actors, one model batch (a decode task of ~0.8 s)."""
        if self.decode_batch:
            return int(self.decode_batch)
        if gpu and self.uses_model:
            return self.resolved_embed_batch(gpu=True)
        return 32 if self.uses_model else 256

    def resolved_exact_below(self) -> int | None:
        """Below this many vectors ``--search-engine auto`` searches exactly in memory; None: at any count
        (within :attr:`EXACT_MAX_BYTES`). With Milvus Lite, None: Lite's FLAT search computes the same
        products as the exact search plus a pass in Python over every stored id per request, its IVF index
        misses pairs near an SSCD-like threshold and its HNSW build costs more than the exact search it would
        save, so exact was the fastest engine measured at every size (bench/results/scale.md, "Engines per
        size"). With a server, 100,000: the server's search actors and index spread over a cluster."""
        if self.exact_below is not None:
            return int(self.exact_below)
        return 100_000 if self.milvus_uri else None

    EXACT_MAX_BYTES = 4 << 30  # auto never holds more vectors than this in the driver for an exact search

    def exact_search(self, vectors: int) -> bool:
        """Whether the search of ``vectors`` stored vectors runs exactly in memory instead of in Milvus
        (auto: below ``resolved_exact_below`` and within :attr:`EXACT_MAX_BYTES` of float32 vectors)."""
        from dedup.ops.models import embedding_dim

        if self.search_engine != "auto":
            return self.search_engine == "exact"
        below = self.resolved_exact_below()
        return (below is None or vectors < below) and vectors * embedding_dim(self.model) * 4 <= self.EXACT_MAX_BYTES

    def search_choice(self, vectors: int) -> str:
        """Why the search runs where it does (for summary.json)."""
        if self.search_engine != "auto":
            return f"--search-engine {self.search_engine}"
        where = "exact in memory" if self.exact_search(vectors) else "Milvus"
        if where == "Milvus":
            who = (f"from the driver below --local-below {self.local_below}" if vectors < self.local_below
                   else f"{self.search_actors} search actors at or above --local-below {self.local_below}")
            where += f" ({self.resolved_search_mode()} requests of {self.resolved_search_batch()} queries, {who})"
        below = self.resolved_exact_below()
        rule = (f"exact below {below} (--exact-below) and" if below is not None else
                "with Milvus Lite exact (the fastest engine measured at every size) up to")
        return f"auto: {vectors} vectors; {rule} {self.EXACT_MAX_BYTES >> 30} GiB of vectors: {where}"

    @property
    def is_hash(self) -> bool:
        """A hash model alone: no weights, the threshold in bits."""
        return self.model in HASH_MODELS

    @property
    def is_combo(self) -> bool:
        return self.model in COMBO_MODELS

    @property
    def learned_model(self) -> str | None:
        """The learned model run by the embedding actors (sscd, sscd-mobile, resnet50), also in a combo."""
        name = self.model.split("+", 1)[0]
        return name if name in LEARNED_MODELS else None

    @property
    def uses_model(self) -> bool:
        """Whether embedding actors run a learned model (else the decode tasks compute hashes/thumbnails)."""
        return self.learned_model is not None

    @property
    def hash_name(self) -> str | None:
        """The perceptual hash the decode workers compute (hash models and combos), else None."""
        return self.model if self.is_hash else self.model.split("+", 1)[1] if self.is_combo else None

    @property
    def binary_hashes(self) -> bool:
        """Whether the hash vectors go to Milvus as BINARY_VECTOR (searched by Hamming distance)."""
        return self.hash_name is not None and (self.hash_vectors == "binary" or (self.hash_vectors == "auto" and bool(self.milvus_uri)))

    def hash_threshold(self) -> float:
        """The cosine at which the hash vectors are searched: ``max_bits`` as a cosine."""
        from dedup.ops.hashes import HASHES, search_cosine

        return search_cosine(int(self.max_bits), HASHES[self.hash_name].bits)

    def _resolve_verify(self) -> None:
        """--verify and --verify-band, and the threshold they imply: with the check on, the threshold is the
        band's lower end (the lowest similarity that can become a duplicate), else the plain threshold."""
        band = DEFAULT_VERIFY_BANDS.get(self.learned_model or "")
        if self.verify is None:
            calibrated = band is not None and (self.threshold is None or self.threshold < band[1])
            self.verify = "band" if self.verify_band is not None or calibrated else "off"
            if self.verify == "off" and band is not None:
                self._warn(f"--threshold {self.threshold:g} is at or above the top of {self.learned_model}'s verify band "
                           f"({band[1]:g}): the content check is off, pairs at or above {self.threshold:g} are duplicates "
                           f"on similarity alone (--verify all checks them; the default threshold is {band[0]:g} with the check)")
        if self.verify not in VERIFY_MODES:
            raise ConfigError(f"--verify must be one of {', '.join(VERIFY_MODES)}, got {self.verify!r}")
        if self.verify_band is not None:
            if self.verify != "band":
                raise ConfigError("--verify-band needs --verify band")
            lo, hi = (float(x) for x in self.verify_band) if len(self.verify_band) == 2 else (1.0, 0.0)
            if not -1.0 <= lo < hi <= 1.0:
                raise ConfigError(f"--verify-band needs LO < HI within [-1, 1], got {self.verify_band}")
            if self.threshold is not None and abs(float(self.threshold) - lo) > 1e-9:
                raise ConfigError("--verify-band LO HI sets the threshold to LO: do not pass --threshold as well")
            self.threshold = lo
        elif self.verify == "band" and band is None:
            raise ConfigError(f"--model {self.model} has no calibrated verify band: pass --verify-band LO HI, or --verify all")
        if self.threshold is None:
            self.threshold = band[0] if self.verify != "off" and band is not None else DEFAULT_THRESHOLDS[self.learned_model or self.model]

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.__dict__.setdefault("_warnings", []).append(message)

    @property
    def warnings(self) -> list[str]:
        """What validate() resolved that a person should hear about (the job prints them, summary.json keeps them)."""
        return list(self.__dict__.get("_warnings", []))

    def verify_range(self) -> tuple[float, float | None] | None:
        """(lo, hi) of the similarities checked (hi None: every edge), or None with --verify off."""
        if self.verify == "off":
            return None
        if self.verify == "all":
            return float(self.threshold), None
        hi = self.verify_band[1] if self.verify_band is not None else DEFAULT_VERIFY_BANDS[self.learned_model][1]
        return float(self.threshold), float(hi)

    def _resolve_threshold(self) -> None:
        """Hash models take --max-bits (a Hamming distance) and search at the matching cosine; combos take
        both --threshold (the learned model's cosine) and --max-bits (the hash)."""
        if self.hash_name is None or self.is_combo:
            self._resolve_verify()
        if self.hash_name is None:
            if self.max_bits is not None:
                raise ConfigError("--max-bits applies to the hash models only (--model phash, multihash, resnet50+multihash, ...)")
            if self.threshold is None:
                self.threshold = DEFAULT_THRESHOLDS[self.learned_model or self.model]
            return
        from dedup.ops.hashes import HASHES, search_cosine

        name = self.hash_name
        bits = HASHES[name].bits
        if self.max_bits is None:
            if self.is_hash and self.threshold is not None and self.threshold != search_cosine(HASH_MODELS[name], bits):
                raise ConfigError(f"--model {self.model} takes its threshold in bits: pass --max-bits N (0..{bits}), not --threshold")
            self.max_bits = HASH_MODELS[name]
        if not 0 <= self.max_bits < bits:
            raise ConfigError(f"--max-bits must be in 0..{bits - 1} for {name} ({bits} bits), got {self.max_bits}")
        if self.is_hash:
            self.threshold = self.hash_threshold()
            if self.verify is None:
                self.verify = "off"
            if self.verify != "off":
                raise ConfigError("--verify applies to the learned models' cosine (sscd, sscd-mobile, resnet50): the hash models have none")
        elif self.threshold is None:
            self.threshold = DEFAULT_THRESHOLDS[self.learned_model]

    def canonical_keys(self) -> list[str]:
        """The key list the graph forms clusters in: ``largest`` (pixels, bytes, path) under ``quality``
        (which then chooses within each cluster, stage `canonical`), else the policy's own."""
        policy = "pixels,bytes,path" if self.canonical in ("quality", "largest") else self.canonical
        return [k.strip() for k in policy.split(",") if k.strip()]

    @property
    def output_path(self) -> Path:
        return Path(self.output).expanduser().resolve()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for secret in ("milvus_token", "bulk_secret_key"):
            if d.get(secret):
                d[secret] = "***"
        return d

    @classmethod
    def from_yaml(cls, path: str | Path) -> "DedupConfig":
        with open(path) as f:
            data = yaml.safe_load(f) or {}
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DedupConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        data = {k.replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
        for key in ("inputs", "references", "include", "exclude"):
            if isinstance(data.get(key), str):
                data[key] = [data[key]]
        return cls(**data)


HINTS = get_type_hints(DedupConfig)  # the fields' types, evaluated once


def _literal(t) -> tuple | None:
    """The values of a ``Literal`` type, also of ``Literal[...] | None`` (None: resolved by validate())."""
    if get_origin(t) is Literal:
        return get_args(t)
    if get_origin(t) in (Union, UnionType):
        inner = [a for a in get_args(t) if a is not type(None)]
        return _literal(inner[0]) if len(inner) == 1 else None
    return None


LITERAL_FIELDS = tuple(k for k, t in HINTS.items() if _literal(t) is not None)


def choices(name: str) -> tuple[str, ...]:
    """The values of a DedupConfig field typed as a Literal: what validate() accepts and the CLI offers."""
    return _literal(HINTS[name])


VERIFY_MODES = choices("verify")
PREPROCESS = choices("preprocess")
