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
import sys
from typing import Any

from dedup.apply.execute import Result, apply, execute, sample_key
from dedup.apply.plan import LOG_NAME, SHARD_KINDS, Action, ApplyError, Plan, locate, make_plan


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


__all__ = ["ApplyError", "Action", "Plan", "Result", "LOG_NAME", "locate", "make_plan", "execute", "apply", "format_plan", "add_parser",
           "main", "sample_key"]
