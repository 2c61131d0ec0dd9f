"""``python -m jobs.dedup_parquet``: a Ray Data pipeline that deduplicates Parquet shards.

Reads the shards under an fsspec URI (``s3://``, ``gs://``, ``file://``, a local folder, ...) with
``ray.data.read_parquet``, deduplicates their images with :func:`dedup.ray.deduplicate` and writes the
kept rows (every column as it was; ``--annotate``: every row, with ``dedup_cluster``, ``dedup_keep``,
``dedup_canonical_id`` and ``dedup_error``) as Parquet shards to another URI. On a cluster::

    ray job submit --working-dir . -- python -m jobs.dedup_parquet \\
        --input s3://bucket/shards --output s3://bucket/deduplicated \\
        --image-column jpg --id-column key --shards s3://bucket/dedup-scratch

Inside a Ray job RAY_ADDRESS is set and the job joins that cluster. ``--work`` (the job's output folder:
manifest, report, summary.json; a re-run with the same rows resumes there) is on the driver's disk;
``--shards`` (the (id, image) shards the job reads, default ``WORK/input-shards``) must be readable by
every node, so give it a shared URI on a multi-node cluster. ``--set KEY=VALUE`` passes any other option
of ``dedup run`` (snake_case, the value read as YAML: ``--set canonical=largest --set embed_actors=4``).
"""
from __future__ import annotations

import argparse
import sys


def dataset_path(uri: str) -> tuple[str, dict]:
    """A path and the ``filesystem=`` argument for Ray Data's readers and writers from any fsspec URI
    (a local path as it is; other protocols through fsspec, so any fsspec filesystem works)."""
    from fsspec.core import url_to_fs

    if "://" not in uri or uri.startswith("file://"):
        return uri.removeprefix("file://"), {}
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs, path = url_to_fs(uri)
    return path, {"filesystem": PyFileSystem(FSSpecHandler(fs))}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m jobs.dedup_parquet", description=__doc__.split("\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="Parquet shards: a folder or file, a local path or an fsspec URI")
    p.add_argument("--output", required=True, help="where the deduplicated shards are written (path or fsspec URI)")
    p.add_argument("--image-column", required=True, help="column with the image bytes (or a {bytes, path} struct)")
    p.add_argument("--id-column", required=True, help="column with a unique id per row")
    p.add_argument("--work", default="dedup-work", help="the dedup job's output folder on the driver (default dedup-work)")
    p.add_argument("--shards", help="where the (id, image) shards the job reads go (default WORK/input-shards; a shared URI on a multi-node cluster)")
    p.add_argument("--annotate", action="store_true", help="write every row with the dedup_* columns instead of the kept rows alone")
    p.add_argument("--model", default="sscd", help="as dedup run --model (default sscd)")
    p.add_argument("--threshold", type=float, help="as dedup run --threshold")
    p.add_argument("--max-bits", type=int, help="as dedup run --max-bits (hash models)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other dedup run option, snake_case (repeatable)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import ray
    import yaml

    import dedup
    from dedup.ray_env import init_ray

    args = parse_args(argv)
    options = {"model": args.model, "threshold": args.threshold, "max_bits": args.max_bits}
    options = {k: v for k, v in options.items() if v is not None}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set takes KEY=VALUE, got {item!r}")
        options[key.strip().replace("-", "_")] = yaml.safe_load(value)
    init_ray()  # joins RAY_ADDRESS inside `ray job submit`, else a local Ray
    path, kw = dataset_path(args.input)
    ds = ray.data.read_parquet(path, **kw)
    out = dedup.ray.deduplicate(ds, image_column=args.image_column, id_column=args.id_column, output=args.work,
                                shards=args.shards, keep_only=not args.annotate, **options)
    if not args.annotate:  # the kept rows as they were: the input's columns
        out = out.drop_columns(list(dedup.ray.COLUMNS))
    path, kw = dataset_path(args.output)
    out.write_parquet(path, **kw)
    summary = dedup.Result.load(args.work).summary
    c = summary.get("counts", {})
    print(f"dedup_parquet: {c.get('images', 0)} images, {c.get('errors', 0)} errors, {c.get('clusters', 0)} clusters, "
          f"{c.get('duplicates', 0)} duplicates; {'annotated rows' if args.annotate else 'kept rows'} written to {args.output}; "
          f"manifest and report in {args.work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
