"""``dedup apply OUTPUT_DIR --to DEST``: write the deduplicated dataset (the keep set) somewhere else.

Contract:

* **Reads** a finished run's output folder: ``manifest.parquet`` (the keep set is the rows with
  ``is_canonical``; it must agree with ``keep.txt``), ``files.parquet`` (each item's unit and kind) and
  ``summary.json`` (``parameters.inputs``, the order of the sources); with ``--run``, the manifest, keep
  list and summary of an earlier run kept under ``runs/<run id>/`` (:mod:`dedup.runs`).
* **Writes** only under ``DEST`` (a local folder or any fsspec URI), never anything else:

  - a kept plain file is copied to ``DEST/<path relative to its source>`` (``--link``: hard-linked
    instead where source and DEST are local and on one filesystem, copied otherwise);
  - a Parquet shard with kept rows is written to ``DEST/<shard relative path>``: same schema, only the
    kept rows, in their order, one output row group per input row group that has any;
  - a WebDataset tar with kept images is written to ``DEST/<tar relative path>``: every member of each
    sample (members sharing a key: the name up to the first dot of its basename) that has at least one
    kept image, ``.json``/``.cls``/... included, headers copied, in input order;
  - a shard with nothing kept is not written;
  - ``DEST/.dedup-apply.json``: what was written (size, SHA-256, source) and a record of each run.

* **Layout**: a path is relative to the ``--input`` it came from; a source that is a single file gives
  its basename. With several sources, when two of them would give the same relative path, every source
  gets a folder of its own: its basename (``source`` for a bucket root), ``-2``, ``-3``, ... for repeats,
  in the order of ``parameters.inputs``. A relative local source is resolved against the current folder,
  or, when that does not hold the run's items (apply started from elsewhere), against the items' folder
  whose last components match it, else the items' common folder.
* **Dry run by default**: the plan is computed (reads only) and printed; ``--execute`` writes.
* **Refuses** (``ApplyError``, exit 2, nothing written) when ``DEST`` equals or lies in an input source or
  the output folder, when any destination path would land in a source or the output folder, or when a
  destination file exists with other content (unless ``--overwrite``). Sources are only ever opened for
  reading.
* **Idempotent**: a destination that already holds the same content (file: same size and SHA-256 as the
  manifest, or the same inode for a hard link; shard: same source, kept items and size as logged, or the
  same SHA-256 when rebuilt) is skipped, so a second ``--execute`` writes nothing.
* A copied file whose SHA-256 differs from the manifest's (the source changed since the run) is not
  published; the run reports it and exits 1.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import json
import os
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

import fsspec
import pyarrow as pa
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


# --------------------------------------------------------------------------------------------------
# Building shards and copying files
# --------------------------------------------------------------------------------------------------


class HashingSink(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through, into ``inner`` (or nowhere)."""

    def __init__(self, inner: IO[bytes] | None) -> None:
        super().__init__()
        self.inner, self.sha, self.size = inner, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        data = bytes(b)
        self.sha.update(data)
        self.size += len(data)
        if self.inner is not None:
            self.inner.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size


def sample_key(member: str) -> str:
    """WebDataset sample key: the member name up to the first dot of its basename."""
    head, _, base = member.rpartition("/")
    return (head + "/" if head else "") + base.split(".", 1)[0]


def _write_parquet(src: str, rows: set[int], sink: HashingSink) -> None:
    with fsspec.open(src, "rb") as f:
        pf = pq.ParquetFile(f)
        out = pa.PythonFile(sink, mode="w")
        with pq.ParquetWriter(out, pf.schema_arrow) as writer:
            offset = 0
            for rg in range(pf.num_row_groups):
                n = pf.metadata.row_group(rg).num_rows
                take = sorted(r - offset for r in rows if offset <= r < offset + n)
                if take:
                    writer.write_table(pf.read_row_group(rg).take(pa.array(take, pa.int64())))
                offset += n


def _write_tar(src: str, members: set[str], sink: HashingSink) -> None:
    keys = {sample_key(m) for m in members}
    with fsspec.open(src, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tin:
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tout:
            for m in tin:
                if m.isfile() and sample_key(m.name) in keys:
                    tout.addfile(m, tin.extractfile(m))


def build_shard(action: Action, out: IO[bytes] | None) -> tuple[int, str]:
    """Write the kept part of a shard to ``out`` (or only hash it); returns (size, SHA-256)."""
    sink = HashingSink(out)
    if action.kind == "parquet":
        _write_parquet(action.src, {int(m.removeprefix("row=")) for m in action.members}, sink)
    else:
        _write_tar(action.src, set(action.members), sink)
    return sink.size, sink.sha.hexdigest()


@contextlib.contextmanager
def _open_target(target: Location) -> Iterator[IO[bytes]]:
    """Writable stream for a destination: local files appear atomically (rename), remote on close."""
    if target.local:
        os.makedirs(os.path.dirname(target.path), exist_ok=True)
        partial = target.path + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as f:
                yield f
            os.replace(partial, target.path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
    else:
        parent = target.path.rsplit("/", 1)[0]
        if parent:
            target.fs.makedirs(parent, exist_ok=True)
        with target.fs.open(target.path, "wb") as f:
            yield f


class SourceChanged(Exception):
    """A source's bytes no longer match the manifest."""


def _copy_file(action: Action, target: Location, link: bool) -> str:
    """Copy (or hard-link) one kept file; returns how ("copy" or "link")."""
    src = locate(action.src)
    if link and src.local and target.local:
        if os.path.getsize(src.path) != action.size:
            raise SourceChanged(f"{src.path}: size changed since the dedup run")
        os.makedirs(os.path.dirname(target.path), exist_ok=True)
        partial = target.path + PARTIAL_SUFFIX
        if os.path.lexists(partial):
            os.remove(partial)
        try:
            os.link(src.path, partial)
            os.replace(partial, target.path)
            return "link"
        except OSError:  # other filesystem, or links not allowed: copy instead
            if os.path.lexists(partial):
                os.remove(partial)
    try:
        with src.fs.open(src.path, "rb") as fin, _open_target(target) as fout:
            sink = HashingSink(fout)
            for block in iter(lambda: fin.read(CHUNK), b""):
                sink.write(block)
            if sink.sha.hexdigest() != action.sha:  # local: the partial file is dropped, never published
                raise SourceChanged(f"{action.src}: content changed since the dedup run (SHA-256 differs)")
    except SourceChanged:
        if not target.local and target.fs.exists(target.path):  # remote: written on close, so removed
            target.fs.rm(target.path)
        raise
    return "copy"


# --------------------------------------------------------------------------------------------------
# Executing a plan
# --------------------------------------------------------------------------------------------------


@dataclass
class Result:
    written: list[Action]
    skipped: list[Action]
    failed: list[tuple[Action, str]]
    bytes_written: int


def execute(plan: Plan) -> Result:
    """Carry out a plan. Refuses (nothing written) while any conflict remains."""
    if plan.conflicts:
        first = plan.conflicts[0]
        raise ApplyError(f"{len(plan.conflicts)} destination file(s) exist with other content, e.g. "
                         f"{plan.dest.child(first.rel).uri}; pass --overwrite to replace them")
    log = plan.log
    written, failed, total = [], [], 0
    try:
        for a in plan.actions:
            if a.status == "skip":
                log["files"].setdefault(a.rel, {"size": a.size, "sha256": a.sha, "source": a.src, "key": a.key})
                continue
            target = plan.dest.child(a.rel)
            try:
                if a.kind == "file":
                    how = _copy_file(a, target, plan.link)
                else:
                    with _open_target(target) as f:
                        a.size, a.sha = build_shard(a, f)
                    how = "shard"
            except SourceChanged as e:
                failed.append((a, str(e)))
                continue
            written.append(a)
            total += a.size or 0
            log["files"][a.rel] = {"size": a.size, "sha256": a.sha, "source": a.src, "key": a.key, "how": how,
                                  "items": len(a.members) or 1}
    finally:
        log["runs"].append({
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "output": str(plan.output),
            "manifest_sha256": plan.manifest_sha256,
            "run": plan.run,
            "written": len(written), "skipped": len(plan.of("skip")), "failed": len(failed), "bytes": total,
        })
        target = plan.dest.child(LOG_NAME)
        with _open_target(target) as f:
            f.write(json.dumps(log, indent=1, sort_keys=True).encode())
    return Result(written, plan.of("skip"), failed, total)


def apply(output: str | Path, to: str, execute_: bool = False, link: bool = False, overwrite: bool = False,
          run: str | None = None) -> tuple[Plan, Result | None]:
    """Plan, and when ``execute_`` carry out, ``dedup apply``. Dry run (``Result`` None) by default."""
    plan = make_plan(output, to, link=link, overwrite=overwrite, run=run)
    return plan, (execute(plan) if execute_ else None)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def format_plan(plan: Plan, limit: int = 10) -> str:
    """A few lines saying what the plan writes, and its first destinations."""
    todo = [a for a in plan.actions if a.status in ("write", "overwrite")]
    files = [a for a in todo if a.kind == "file"]
    shards = [a for a in todo if a.kind in SHARD_KINDS]
    verb = "link or copy" if plan.link else "copy"
    lines = [
        f"from {plan.output}" + (f" (run {plan.run})" if plan.run else "") + f": {plan.n_images} images, {plan.n_kept} kept",
        f"to   {plan.dest.uri}" + ("  (one folder per source: relative paths collide)" if plan.prefixed else ""),
        f"  files : {len(files)} to {verb} ({sum(a.size or 0 for a in files):,} bytes), "
        f"{len(plan.of('skip', ('file',)))} already there",
        f"  shards: {len([a for a in shards if a.kind == 'parquet'])} Parquet, "
        f"{len([a for a in shards if a.kind == 'webdataset'])} tar to write "
        f"({sum(len(a.members) for a in shards)} kept items), {len(plan.of('skip', SHARD_KINDS))} already there",
    ]
    if plan.conflicts:
        lines.append(f"  conflicts: {len(plan.conflicts)} destination files exist with other content (--overwrite replaces them)")
    shown = [a for a in plan.actions if a.status != "skip"][:limit]
    for a in shown:
        what = {"file": "link" if plan.link else "copy", "parquet": "parquet", "webdataset": "tar"}[a.kind]
        lines.append(f"    {a.status:9} {what:7} {a.src} -> {plan.dest.child(a.rel).uri}")
    rest = len([a for a in plan.actions if a.status != "skip"]) - len(shown)
    if rest > 0:
        lines.append(f"    ... and {rest} more")
    return "\n".join(lines)


APPLY_HELP = """\
Write the deduplicated dataset: the keep set of a finished `dedup run`, to a folder or fsspec URI.

Plain files are copied (--link: hard-linked where possible) to DEST, keeping their path relative to
their --input; Parquet and WebDataset shards are rewritten under their relative name with only the kept
rows / samples. A dry run by default: prints the plan and writes nothing; --execute writes. Never
modifies or deletes a source, refuses to write into an input or the output folder, and a re-run skips
what is already there. DEST/.dedup-apply.json records what was written.

examples:
  dedup apply ./dedup-out --to ./photos-dedup              (dry run: the plan)
  dedup apply ./dedup-out --to ./photos-dedup --execute
  dedup apply ./dedup-out --to s3://bucket/clean --execute

exit status: 0 done (or planned), 2 refused (nothing written), 1 some sources changed since the run.
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``apply`` to a ``dedup`` sub-command parser set."""
    p = subparsers.add_parser("apply", help="write the deduplicated dataset (the keep set) to a folder or URI",
                              description=APPLY_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output_dir", metavar="OUTPUT_DIR", help="output folder of a finished `dedup run`")
    p.add_argument("--to", required=True, dest="to", metavar="DEST", help="destination folder or fsspec URI")
    p.add_argument("--execute", action="store_true", help="write (default: dry run, print the plan only)")
    p.add_argument("--link", action="store_true", help="hard-link plain files instead of copying where source and DEST share a local filesystem (DEST then shares the files' storage: do not edit them in place)")
    p.add_argument("--overwrite", action="store_true", help="replace destination files that exist with other content (default: refuse)")
    p.add_argument("--run", metavar="RUN", help="apply an earlier run kept under OUTPUT_DIR/runs/ (its id, a unique part of it; "
                   "`dedup report OUTPUT_DIR --runs` lists them; default: the latest, the files at the top of OUTPUT_DIR)")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    """Run ``dedup apply`` from parsed arguments; returns the exit status."""
    try:
        plan, result = apply(args.output_dir, args.to, execute_=args.execute, link=args.link, overwrite=args.overwrite,
                             run=getattr(args, "run", None))
    except ApplyError as e:
        print(f"dedup apply: error: {e}", file=sys.stderr)
        return e.code
    print("dedup apply" if result is not None else "dedup apply: DRY RUN, nothing written (pass --execute to write)")
    print(format_plan(plan))
    if result is None:
        return 0
    print(f"wrote {len(result.written)} files ({result.bytes_written:,} bytes), skipped {len(result.skipped)} already there; "
          f"log: {plan.dest.child(LOG_NAME).uri}")
    for a, why in result.failed:
        print(f"dedup apply: error: not written: {why}", file=sys.stderr)
    return 1 if result.failed else 0


__all__ = ["ApplyError", "Action", "Plan", "Result", "make_plan", "execute", "apply", "format_plan", "add_parser", "main", "sample_key"]
