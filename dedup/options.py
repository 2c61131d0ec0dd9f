"""The job's options in typed sections, one dataclass each: where the images are (:class:`InputOptions`),
the model (:class:`ModelOptions`), what counts as a copy and which one is kept (:class:`MatchOptions`), the
Milvus collection and its searches (:class:`MilvusOptions`), Milvus's bulk import (:class:`BulkOptions`) and
the Ray resources and search engine (:class:`ResourceOptions`).

:class:`dedup.config.DedupConfig` is all the sections at once, so that a flag (``--milvus-uri``), a YAML key
(``milvus_uri:``) and a keyword of the Python API (``DedupConfig(milvus_uri=...)``) keep one flat name each;
what a section decides alone (its defaults, its checks) is a method of the section, and what needs
several sections (the threshold from the model and the content check) is DedupConfig's. Fields typed as a
``Literal`` are the values the CLI offers and :meth:`DedupConfig.validate` accepts
(:func:`dedup.config.choices`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal


class ConfigError(ValueError):
    """A configuration value a person must fix."""


@dataclass
class InputOptions:
    """Where the images are and where results go."""

    inputs: list[str] = field(default_factory=list)
    output: str = "dedup-output"
    input_format: Literal["auto", "files", "parquet", "webdataset"] = "auto"
    # Globs on the path relative to its --input folder (or the file name): files matching an exclude, or
    # none of the includes (when given), are skipped (dedup.sources.find_inputs).
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    # Earlier runs' output folders: the new images are deduplicated against their images (never removed).
    references: list[str] = field(default_factory=list)
    reference_only: bool = False  # only new-vs-reference matches (a contamination check), no new-vs-new
    # auto: a reference's collection where it is on a Milvus server, else its Parquet vectors exactly
    reference_engine: Literal["auto", "exact", "milvus"] = "auto"
    image_column: str | None = None  # Parquet: column holding the image bytes (auto: first binary column)
    max_pixels: int = 100_000_000  # decompression-bomb guard
    # Re-runs: finished stages are reused when their inputs and parameters are unchanged.
    fresh: bool = False  # recompute every stage
    report: bool = True  # write OUTPUT/report.html at the end

    def _check_input(self) -> None:
        if not self.inputs:
            raise ConfigError("no input given: pass --input SRC (a folder, a file or an fsspec URI)")
        if self.reference_only and not self.references:
            raise ConfigError("--reference-only needs --reference PRIOR_OUTPUT")


@dataclass
class ModelOptions:
    """The model that turns an image into a vector (or a hash), its weights and its input."""

    model: str = "sscd"  # dedup.config.MODELS; thumb: weight-free 8x8 colour thumbnail, for tests and smoke runs
    # sscd: auto | onnx | torchscript | random | path or fsspec URI; resnet50: imagenet | random | path or URI
    weights: str | None = None  # default: auto (SSCD), imagenet (ResNet-50)
    weights_sha256: str | None = None
    cpu_backend: Literal["auto", "onnx", "torch"] = "auto"  # learned models on CPU; auto: ONNX Runtime where installed
    preprocess: Literal["square", "short-side", "center-crop"] | None = None  # default per model (DEFAULT_PREPROCESS)
    image_size: int | None = None  # the model's input size (default per model)


@dataclass
class MatchOptions:
    """What counts as a copy (the threshold, the content check) and which copy is kept."""

    threshold: float | None = None  # cosine similarity at or above which two images are duplicates (default per model)
    max_bits: int | None = None  # hash models: Hamming distance at or below which two images are duplicates
    canonical: str = "quality"  # quality | largest | a comma list of pixels, bytes, path (dedup.ops.canonical)
    nn_floor: float | None = None  # nearest-neighbour similarities are recorded down to this (default threshold - 0.3)
    # The content check: band (pairs in verify_band checked, default for SSCD), all (every pair) or off.
    verify: Literal["band", "all", "off"] | None = None
    verify_band: list[float] | None = None  # [lo, hi]; lo is the search threshold (default per model)
    # Learned models: a picture inside an image (a photo pasted on a canvas, posted in a screenshot) is
    # found by its outline, embedded beside the image and searched against every image (dedup.ops.pictures).
    inner_pictures: bool = True


@dataclass
class MilvusOptions:
    """The Milvus collection the vectors are stored in, and how it is searched."""

    milvus_uri: str | None = None  # None: Milvus Lite server under OUTPUT/milvus
    milvus_token: str | None = None
    milvus_db: str | None = None
    collection: str | None = None  # default: derived from the output folder
    # AUTO (by row count, see dedup.vectordb.milvus.choose_index) | FLAT | IVF_FLAT | HNSW | AUTOINDEX
    index: Literal["AUTO", "FLAT", "IVF_FLAT", "HNSW", "AUTOINDEX"] = "AUTO"
    replace_collection: bool = False  # drop an existing collection this output folder did not create
    store_method: Literal["auto", "bulk", "insert"] = "auto"  # auto: bulk import on a server, else batched inserts
    insert_batch: int = 2000  # rows per insert request
    drop_collection: bool = False  # drop the run's collection when the job ends (default: keep it for re-runs)
    # Hits asked for per query (default: 16 with Milvus Lite, whose search cost grows with the limit;
    # 512 with a server). A query that fills it is re-asked with search_max_limit (default: 16384,
    # Milvus's top-k cap, on a server; no re-ask on Lite); one that fills that too is brute-forced.
    search_limit: int | None = None
    search_max_limit: int | None = None
    # Queries per search request (default: 1024 with Milvus Lite, whose every request walks all the stored
    # ids in Python before it searches, so many queries per request; 32 with a server).
    search_batch: int | None = None
    # How Milvus is asked: topk (a top-k per query; a query whose hits all pass the threshold is re-asked
    # at --search-max-limit) or range (every hit down to the floor, capped by the limit). auto: topk with
    # Milvus Lite (its range search is a top-k filtered afterwards), range with a server.
    search_mode: Literal["auto", "topk", "range"] = "auto"
    # How hash bits are stored in Milvus: float (+1/-1 per bit, COSINE; Milvus Lite has no binary vectors)
    # or binary (BINARY_VECTOR, HAMMING: 32x smaller, a server only). auto: binary with --milvus-uri.
    hash_vectors: Literal["auto", "float", "binary"] = "auto"

    def resolved_search_mode(self) -> str:
        if self.search_mode != "auto":
            return self.search_mode
        return "range" if self.milvus_uri else "topk"

    def resolved_search_batch(self) -> int:
        if self.search_batch is not None:
            return int(self.search_batch)
        return 32 if self.milvus_uri else 1024

    def resolved_search_limit(self) -> int:
        if self.search_limit is not None:
            return int(self.search_limit)
        if not self.milvus_uri:
            return 16
        return 512 if self.resolved_search_mode() == "range" else 32

    def resolved_search_max_limit(self) -> int:
        if self.search_max_limit is not None:
            return int(self.search_max_limit)
        return 16384 if self.milvus_uri else max(self.resolved_search_limit(), 1)

    def _check_milvus(self) -> None:
        if not 1 <= self.resolved_search_limit() <= self.resolved_search_max_limit() <= 16384:
            raise ConfigError("need 1 <= --search-limit <= --search-max-limit <= 16384 (Milvus's top-k cap)")
        if self.search_batch is not None and self.search_batch < 1:
            raise ConfigError(f"--search-batch must be at least 1, got {self.search_batch}")
        if self.hash_vectors == "binary" and not self.milvus_uri:
            raise ConfigError("--hash-vectors binary needs a Milvus server (--milvus-uri): Milvus Lite has no binary vectors")
        if self.store_method == "bulk" and not self.milvus_uri:
            raise ConfigError("--store-method bulk needs a Milvus server (--milvus-uri): Milvus Lite has no bulk import")


@dataclass
class BulkOptions:
    """Milvus's bulk import (a server only): where the Parquet shards are staged for the server to read."""

    bulk_dir: str | None = None  # Parquet staging the server can read (default OUTPUT/milvus-bulk)
    bulk_server_dir: str | None = None  # where the server sees bulk_dir (e.g. a container mount)
    bulk_bucket: str | None = None  # or: the server's S3/MinIO bucket
    bulk_endpoint: str | None = None
    bulk_access_key: str | None = None
    bulk_secret_key: str | None = None
    bulk_secure: bool = False
    bulk_shard_rows: int = 200_000
    bulk_timeout: float = 3600.0


@dataclass
class ResourceOptions:
    """The Ray cluster, the actor pools and their batches, and where the similarity search runs."""

    ray_address: str | None = None
    embed_actors: int | None = None  # default: number of GPUs, or on CPU as many as fit (node CPUs / cpus_per_embed_actor)
    embed_batch: int | None = None  # default: 256 on GPU actors, 64 on CPU (see resolved_embed_batch)
    gpus_per_embed_actor: float | None = None  # default: 1 when the cluster has GPUs, else 0
    cpus_per_embed_actor: float | None = None  # default 1; on CPU also the model's threads per actor
    cpus_per_decode: float = 1.0  # CPUs per decode task
    # Images per decode block (a task's or an actor's batch; a shard is never split). Default: 256 for the
    # weight-free models (a task's own overhead dominates small blocks), 32 for ResNet-50 (an actor's last
    # block is the run's tail, and a large one leaves the other actors idle while it finishes).
    decode_batch: int | None = None
    writers: int = 2
    search_actors: int = 2
    # Below this many vectors, store and search run in the driver with one Milvus client: actor pools cost
    # seconds to start and only pay off on larger runs. 0: always use the actor pools.
    local_below: int = 20_000
    # Search engine: exact (every pair's cosine from the vectors in memory, numpy/BLAS in the driver) or
    # milvus (the stored collection's index). auto: exact below exact_below vectors (default: any count
    # within EXACT_MAX_BYTES with Milvus Lite, 100,000 with a Milvus server; see resolved_exact_below);
    # the vectors are stored in Milvus either way.
    search_engine: Literal["auto", "exact", "milvus"] = "auto"
    exact_below: int | None = None
    exact_products: Literal["auto", "float32", "int8"] = "auto"  # the exact search's products (resolved_exact_products)

    INT8_FROM = 10_000  # bench/results/exact-products.md: int8 was the faster from here on

    def resolved_embed_batch(self, gpu: bool = False) -> int:
        """Images per model batch: 256 on a GPU (bare ResNet-50 on an H100, bf16, CUDA graphs, with 15 JPEG
        decoders busy on its CPUs: 7.2k images/s at 256 against 4.8k at 64), 64 on CPU (ONNX Runtime: no gain
        from larger batches)."""
        return int(self.embed_batch or (256 if gpu else 64))

    def resolved_exact_products(self, vectors: int) -> str:
        """float32 (BLAS) or int8 (ONNX Runtime's integer product, each candidate re-checked in float32: the
        same edges) for ``vectors`` vectors; auto: int8 from :attr:`INT8_FROM`, where it was the faster."""
        return self.exact_products if self.exact_products != "auto" else "int8" if vectors >= self.INT8_FROM else "float32"

    def _check_resources(self) -> None:
        for name in ("embed_batch", "decode_batch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


SECTIONS = (InputOptions, ModelOptions, MatchOptions, MilvusOptions, BulkOptions, ResourceOptions)


def section_of(name: str) -> type:
    """The section that holds the field ``name``."""
    for section in SECTIONS:
        if name in {f.name for f in fields(section)}:
            return section
    raise KeyError(name)
