"""What ``dedup apply`` will do, decided before anything is written: where the kept images are, the keep set a run
left, and the plan (one action per kept file or shard) checked against the destination and its log."""
from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from dedup.layout import OutputLayout

LOG_NAME = ".dedup-apply.json"
PARTIAL_SUFFIX = ".dedup-partial"
CHUNK = 1 << 20
SHARD_KINDS = ("parquet", "webdataset")


class ApplyError(Exception):
    """A refusal or failure of ``dedup apply``; ``code`` is the command's exit status."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------------------------------
# Locations: one (filesystem, path) pair per URI, comparable across spellings
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """A path on an fsspec filesystem. ``key`` compares locations: protocol plus normalised path."""

    fs: Any
    path: str

    @property
    def local(self) -> bool:
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return protocol in ("file", "local")

    @functools.cached_property  # compared for every kept file against every source: resolved once
    def key(self) -> tuple[str, str]:
        if self.local:
            return ("file", _realpath(self.path))
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return (protocol, self.path.rstrip("/"))

    @property
    def uri(self) -> str:
        return self.path if self.local else self.fs.unstrip_protocol(self.path)

    def child(self, rel: str) -> "Location":
        sep = os.sep if self.local else "/"
        parts = rel.split("/")
        return Location(self.fs, self.path.rstrip(sep) + sep + sep.join(parts))

    def within(self, other: "Location") -> bool:
        """True when this location is ``other`` or lies inside it."""
        (p1, a), (p2, b) = self.key, other.key
        if p1 != p2:
            return False
        sep = os.sep if p1 == "file" else "/"
        return a == b or a.startswith(b.rstrip(sep) + sep)


@functools.lru_cache(maxsize=1)
def _local_fs():
    return fsspec.filesystem("file")


@functools.lru_cache(maxsize=65536)
def _real_dir(folder: str) -> str:
    return os.path.realpath(folder)


def _realpath(path: str) -> str:
    """``os.path.realpath``, with each folder resolved once: a million kept files share a few thousand
    folders, and resolving a path costs a system call per component."""
    folder, name = os.path.split(os.path.abspath(path))
    if not name:
        return _real_dir(folder)
    full = os.path.join(_real_dir(folder), name)
    return os.path.realpath(full) if name in (".", "..") or os.path.islink(full) else full


def locate(uri: str) -> Location:
    """Location of a local path or fsspec URI (local paths made absolute, ``~`` expanded)."""
    if "::" not in uri and ":" not in uri.split("/", 1)[0]:  # a plain local path (one per kept file): no URL parsing
        return Location(_local_fs(), os.path.abspath(os.path.expanduser(uri)))
    fs, path = url_to_fs(os.path.expanduser(uri) if "://" not in uri else uri)
    loc = Location(fs, path)
    return Location(fs, os.path.abspath(path)) if loc.local else loc


# --------------------------------------------------------------------------------------------------
# The keep set and where each kept item goes
# --------------------------------------------------------------------------------------------------


@dataclass
class KeepSet:
    """The rows of a run that matter here: every imaged unit (for the layout) and the kept items."""

    output: Path
    inputs: list[str]
    units: dict[str, tuple[str, str]]  # unit path -> (kind, source), every unit of the manifest
    kept: list[dict[str, Any]]  # path, kind, unit, source, bytes, sha of each kept item
    n_images: int
    manifest_sha256: str
    run: str | None = None  # the run id (dedup.runs) whose manifest this is, where the folder keeps runs


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _guess_kind(path: str) -> tuple[str, str]:
    """(kind, unit) from an item path alone, for outputs without ``files.parquet``."""
    shard, sep, _ = path.partition("#")
    if sep and shard.lower().endswith((".parquet", ".pq")):
        return "parquet", shard
    if sep and shard.lower().endswith(".tar"):
        return "webdataset", shard
    return "file", path


def load_keep_set(output: str | Path, run: str | None = None) -> KeepSet:
    """Read the keep set of a finished run (``run``: one kept under ``OUTPUT/runs/``, see :mod:`dedup.runs`;
    None: the latest, the files at the top of the folder); ``ApplyError`` if the folder is not one."""
    out = Path(output).expanduser().resolve()
    layout = OutputLayout.of(out)
    run_id = None
    if run is not None:
        from dedup import runs

        try:
            found = runs.resolve(out, run)
        except runs.RunNotFound as e:
            raise ApplyError(str(e)) from None
        run_id, results = found.id, OutputLayout(found.path)
    else:
        from dedup.runs import latest_id

        run_id, results = latest_id(layout), layout
    manifest = results.manifest_parquet
    if not manifest.is_file():
        raise ApplyError(f"{out} is not a finished dedup output folder (no manifest.parquet)")
    man = pq.read_table(manifest, columns=["path", "is_canonical", "bytes", "sha", "source"]).to_pylist()
    summary_path = results.summary
    inputs = json.loads(summary_path.read_text()).get("parameters", {}).get("inputs", []) if summary_path.is_file() else []
    kinds: dict[str, tuple[str, str]] = {}
    if layout.files.is_file():
        for r in pq.read_table(layout.files, columns=["path", "kind", "unit"]).to_pylist():
            kinds[r["path"]] = (r["kind"], r["unit"])
    kept, units = [], {}
    for r in man:
        kind, unit = kinds.get(r["path"]) or _guess_kind(r["path"])
        units.setdefault(unit, (kind, r["source"]))
        if r["is_canonical"]:
            kept.append({**r, "kind": kind, "unit": unit})
    keep_txt = results.keep
    if keep_txt.is_file() and set(keep_txt.read_text().splitlines()) != {r["path"] for r in kept}:
        raise ApplyError(f"{keep_txt} and manifest.parquet disagree on the keep set; was the folder edited?")
    ordered = list(inputs) + sorted({s for _, s in units.values()} - set(inputs))
    return KeepSet(out, ordered, units, kept, len(man), _sha256_file(manifest), run_id)


def _source_root(source: str, unit_paths: list[str]) -> Location:
    """Where a source's relative paths start (see the module doc for relative local sources)."""
    root = locate(source)
    units = [locate(u) for u in unit_paths]
    if all(u.within(root) for u in units) or not units or not root.local or os.path.isabs(os.path.expanduser(source)):
        return root
    want = [p for p in Path(os.path.normpath(source)).parts if p != "."]
    first = Path(units[0].path)
    for anc in [first, *first.parents]:
        cand = Location(root.fs, str(anc))
        if want and list(anc.parts[-len(want):]) == want and all(u.within(cand) for u in units):
            return cand
    common = os.path.commonpath([u.path for u in units])
    return Location(root.fs, common if len(units) > 1 else os.path.dirname(common))


def _relative(unit: Location, root: Location) -> str:
    """POSIX relative path of a unit under its source root; a single-file source gives its basename."""
    sep = os.sep if root.local else "/"
    if unit.key == root.key or not unit.within(root):
        return unit.path.rstrip(sep).rsplit(sep, 1)[-1]
    if root.local:
        return os.path.relpath(unit.key[1], root.key[1]).replace(os.sep, "/")
    return unit.path[len(root.path.rstrip(sep)) + 1:]


def _prefixes(inputs: list[str], roots: dict[str, Location], rels: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Per-source folder names, only when two sources give the same relative path (else all empty)."""
    seen: dict[str, str] = {}
    clash = False
    for rel, src in rels.values():
        if seen.setdefault(rel, src) != src:
            clash = True
            break
    if not clash:
        return {s: "" for s in inputs}
    names: dict[str, str] = {}
    used: set[str] = set()
    for s in inputs:
        sep = os.sep if roots[s].local else "/"
        base = roots[s].path.rstrip(sep).rsplit(sep, 1)[-1] or "source"
        name, i = base, 1
        while name in used:
            i += 1
            name = f"{base}-{i}"
        used.add(name)
        names[s] = name + "/"
    return names


# --------------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------------


@dataclass
class Action:
    """One destination file: a copy (or link) of a kept file, or a shard rebuilt with its kept items."""

    kind: str  # file | parquet | webdataset
    src: str  # source file or shard (path or URI)
    rel: str  # destination, relative to DEST (POSIX)
    members: tuple[str, ...] = ()  # shards: kept item names after '#' ("row=3", "k1.jpg")
    size: int | None = None  # files: expected bytes (manifest); shards: once built
    sha: str | None = None  # files: expected SHA-256 (manifest); shards: once built
    key: str | None = None  # shards: fingerprint of (source, its size, kept items)
    status: str = "write"  # write | skip | overwrite | conflict
    note: str = ""


@dataclass
class Plan:
    """Everything ``dedup apply`` would do; computed with reads only."""

    output: Path
    dest: Location
    actions: list[Action]
    n_images: int
    n_kept: int
    manifest_sha256: str
    link: bool = False
    overwrite: bool = False
    prefixed: bool = False
    log: dict[str, Any] = field(default_factory=dict)
    run: str | None = None

    def of(self, status: str, kinds: tuple[str, ...] = ("file", *SHARD_KINDS)) -> list[Action]:
        return [a for a in self.actions if a.status == status and a.kind in kinds]

    @property
    def conflicts(self) -> list[Action]:
        return self.of("conflict")


def _refuse_targets(dest: Location, roots: list[Location], output: Path, rels: list[str]) -> None:
    """ApplyError unless DEST and every destination path stay clear of every source and the output."""
    out = locate(str(output))
    if dest.fs.isfile(dest.path):
        raise ApplyError(f"--to {dest.uri} is a file, not a folder")
    for name, loc in [("an input source", r) for r in roots] + [("the output folder", out)]:
        if dest.within(loc):
            raise ApplyError(f"refusing to write into {name}: --to {dest.uri} is or lies inside {loc.uri}")
    for rel in rels:
        if rel == LOG_NAME or rel.startswith("../") or "/../" in rel or rel.startswith("/"):
            raise ApplyError(f"refusing to write {rel!r}: not a safe relative destination path")
        target = dest.child(rel)
        for name, loc in [("an input source", r) for r in roots] + [("the output folder", out)]:
            if target.within(loc):
                raise ApplyError(f"refusing to write into {name}: {target.uri} would land in {loc.uri} (it lies inside --to {dest.uri})")


def _read_log(dest: Location) -> dict[str, Any]:
    log = dest.child(LOG_NAME)
    if not log.fs.exists(log.path):
        return {"version": 1, "files": {}, "runs": []}
    with log.fs.open(log.path, "rb") as f:
        data = json.loads(f.read().decode())
    data.setdefault("files", {})
    data.setdefault("runs", [])
    return data


def _hash_location(loc: Location) -> str:
    h = hashlib.sha256()
    with loc.fs.open(loc.path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _shard_key(kind: str, src: str, members: tuple[str, ...]) -> str:
    loc = locate(src)
    blob = json.dumps([kind, src, loc.fs.size(loc.path), sorted(members)]).encode()
    return hashlib.sha256(blob).hexdigest()


def _resolve(action: Action, dest: Location, log: dict[str, Any], overwrite: bool) -> None:
    """Set ``action.status``: write when absent, skip when the same content is there, else conflict."""
    target = dest.child(action.rel)
    if not target.fs.exists(target.path):
        action.status = "write"
        return
    have = target.fs.size(target.path)
    logged = log["files"].get(action.rel, {})
    same = False
    if action.kind == "file":
        src = locate(action.src)
        if have == action.size:
            same = (logged.get("sha256") == action.sha and logged.get("size") == have) or (
                src.local and target.local and os.path.samefile(src.path, target.path)
            ) or _hash_location(target) == action.sha
    else:
        if logged.get("key") == action.key and logged.get("size") == have:
            same = True
        else:
            from dedup.apply.execute import build_shard  # here: execute imports this module

            action.size, action.sha = build_shard(action, None)
            same = action.size == have and action.sha == _hash_location(target)
    if same:
        action.status, action.note = "skip", "already there"
    else:
        action.status = "overwrite" if overwrite else "conflict"
        action.note = "exists with other content"


def make_plan(output: str | Path, to: str, link: bool = False, overwrite: bool = False, run: str | None = None) -> Plan:
    """Compute what ``apply`` would write (reads only); ApplyError on any refusal. ``run``: an earlier run
    kept under ``OUTPUT/runs/`` (None: the latest)."""
    _real_dir.cache_clear()  # folders resolved for this plan only: links may have changed since the last
    ks = load_keep_set(output, run)
    dest = locate(to)
    by_source: dict[str, list[str]] = {}
    for unit, (_, src) in ks.units.items():
        by_source.setdefault(src, []).append(unit)
    roots = {s: _source_root(s, by_source.get(s, [])) for s in ks.inputs}
    rels = {u: (_relative(locate(u), roots[src]), src) for u, (_, src) in ks.units.items()}
    prefixes = _prefixes(ks.inputs, roots, rels)
    guard = list(roots.values()) + [locate(s) for s in ks.inputs]

    actions: list[Action] = []
    shards: dict[str, Action] = {}
    for r in sorted(ks.kept, key=lambda r: r["path"]):
        rel = prefixes[r["source"]] + rels[r["unit"]][0]
        if r["kind"] == "file":
            actions.append(Action("file", r["unit"], rel, size=r["bytes"], sha=r["sha"]))
        else:
            a = shards.setdefault(r["unit"], Action(r["kind"], r["unit"], rel))
            a.members += (r["path"][len(r["unit"]) + 1:],)
    actions.extend(shards.values())
    _refuse_targets(dest, guard, ks.output, [a.rel for a in actions])

    log = _read_log(dest)
    for a in actions:
        if a.kind in SHARD_KINDS:
            a.key = _shard_key(a.kind, a.src, a.members)
        _resolve(a, dest, log, overwrite)
    actions.sort(key=lambda a: a.rel)
    return Plan(ks.output, dest, actions, ks.n_images, len(ks.kept), ks.manifest_sha256, link, overwrite,
                any(prefixes.values()), log, ks.run)
