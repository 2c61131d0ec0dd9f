"""The stage contract: what every stage of the job declares, and what the runner gives it.

A stage is one named object (its name is its module's name, its key in ``state.json`` and in
``summary.json``; a second signal's store and search add the signal's suffix, ``store_hash``). It says
which stages it comes after, what its work depends on (a fingerprint), which files it leaves, how to take
an earlier run's result back (``load``), and how to do its work (``run``). The runner
(:mod:`dedup.runner`), not the stage, decides whether to load or run, forgets what is downstream of a
stage that ran again, times it, runs it in the background where it may, and writes the summary: no stage
touches ``state.json`` itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass
class StageResult:
    value: Any = None  # what later stages read as ctx.values[name]
    metrics: dict = field(default_factory=dict)  # summary.json's stages[name], beside seconds and reused
    state: dict = field(default_factory=dict)  # kept in state.json beside the fingerprint (e.g. the threshold)


class StageContext:
    """What a stage may use: the config, the output layout, the run's parameters (for the summary; a stage
    may add what it resolved), shared services (Milvus, Ray resources) and the earlier stages' values."""

    def __init__(self, cfg, layout, params: dict, services):
        self.cfg, self.layout, self.params, self.services = cfg, layout, params, services
        self.values: dict[str, Any] = {}
        self.stages: set[str] | None = None  # the stages of this run (the runner sets it; None: all of them)

    def value(self, name: str) -> Any:
        return self.values[name]


class Stage:
    """One step of the job. Subclasses set ``name`` (and ``items``: what its rate counts) and implement
    :meth:`run`; the rest has defaults for a stage that is cheap enough to run every time."""

    name: ClassVar[str]
    items: ClassVar[str | None] = None  # the metric counted per second in the summary, e.g. "images"
    after: tuple[str, ...] = ()  # the stages whose values (and fingerprints) this one may use
    optional: ClassVar[tuple[str, ...]] = ("reference", "inner")  # of those, the ones a run may not have (--reference; inner pictures)
    background: bool = False  # may run beside the stages after it (the runner joins it before its dependents)

    def depends(self, ctx: StageContext) -> tuple[str, ...]:
        """The stages this run of it waits for and whose fingerprints are part of its own: ``after`` (which
        is what a rerun of an upstream stage forgets) less the optional stages this run does not have."""
        return tuple(d for d in self.after if d not in self.optional or ctx.stages is None or d in ctx.stages)

    def in_background(self, ctx: StageContext) -> bool:
        return self.background

    def needs_ray(self, ctx: StageContext) -> bool:
        """Whether the stage uses Ray. The stages before the first that does run beside Ray's start-up."""
        return True

    def needs_ray_now(self, ctx: StageContext) -> bool:
        """Asked on a re-run, once the stages it comes after are done and before Ray has started: whether
        this run of it needs Ray (work that is all in a cache does not). A stage that will be reused never does."""
        return self.needs_ray(ctx)

    def fingerprint(self, ctx: StageContext) -> Any:
        """What the stage's work depends on besides its upstream stages (JSON-able), or None: never reused."""
        return None

    def artifacts(self, ctx: StageContext) -> tuple[Path, ...]:
        """Files that must exist for an earlier run's result to be reused."""
        return ()

    def load(self, ctx: StageContext, stored: dict) -> StageResult | None:
        """An earlier run's result (its fingerprint matched, its artifacts exist), or None: run again."""
        return None

    def run(self, ctx: StageContext) -> StageResult:
        raise NotImplementedError


@dataclass(frozen=True)
class Signal:
    """One similarity signal searched on its own: the learned model's (or a hash model's) vectors, or in a
    model+hash run the hash's vectors beside them, each with its column, threshold, collection and files.
    A second signal is data, not a suffix threaded through calls: its store and search stages are the same
    classes made with another Signal."""

    key: str  # "" for the main signal, "_hash" for the hash beside a learned model
    column: str  # the vectors' column: embedding | hash_embedding
    dim: int
    threshold: float  # cosine
    floor: float  # nearest neighbours recorded down to this
    binary: bool = False  # hash bits stored as BINARY_VECTOR (a Milvus server)

    @property
    def store(self) -> str:
        return "store" + self.key

    @property
    def search(self) -> str:
        return "search" + self.key
