"""Carrying a plan out: files copied or linked, shards rewritten with their kept rows or samples, each written
under a partial name and renamed when complete, its hash logged so a re-run skips it."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from dedup.apply.plan import Action, ApplyError, CHUNK, LOG_NAME, Location, PARTIAL_SUFFIX, Plan, locate, make_plan


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
