"""Input discovery and byte access, for local folders and any fsspec URI.

An *item* is one input image: a file, a row of a Parquet shard, or a member of a WebDataset tar. Every
item has a stable string ``path`` that names it in the manifest or the error table:

* a plain file: its path (local: absolute; remote: the full URI, e.g. ``s3://bucket/a.jpg``);
* a Parquet row: ``<shard>#row=<n>``;
* a tar member: ``<shard>#<member name>``.

Discovery lists *units* (a file, or a whole shard). Readers turn units into items with bytes, and never
raise for a bad input: an unreadable unit becomes an item with an ``error``.
"""
from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from typing import Iterator

import fsspec
from fsspec.core import url_to_fs

PARQUET_EXT = (".parquet", ".pq")
TAR_EXT = (".tar",)
# WebDataset members that carry an image (anything else in a shard, .json/.txt/.cls, is metadata).
WDS_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
IMAGE_COLUMN_NAMES = ("image", "img", "bytes", "image_bytes", "jpg", "png", "content", "data")


@dataclass(frozen=True)
class Unit:
    kind: str  # file | parquet | webdataset | missing
    path: str  # display path/URI (see module doc)
    source: str  # the --input it came from


def _display(fs, p: str) -> str:
    if _is_local(fs):
        return os.path.abspath(p)
    return fs.unstrip_protocol(p)


def _is_local(fs) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def _unit_kind(path: str, input_format: str) -> str:
    low = path.lower()
    if input_format == "files":
        return "file"
    if input_format == "parquet":
        return "parquet" if low.endswith(PARQUET_EXT) else "file"
    if input_format == "webdataset":
        return "webdataset" if low.endswith(TAR_EXT) else "file"
    if low.endswith(PARQUET_EXT):
        return "parquet"
    if low.endswith(TAR_EXT):
        return "webdataset"
    return "file"


def discover(sources: list[str], input_format: str = "auto", exclude: list[str] | None = None) -> list[Unit]:
    """List every unit under the given sources, sorted, recursively for folders.

    A source that does not exist (or cannot be listed) becomes a ``missing`` unit, reported as an error.
    Paths under any of ``exclude`` (e.g. the job's own output folder) are skipped.
    """
    units: list[Unit] = []
    excl = [os.path.abspath(e) for e in (exclude or [])]
    for src in sources:
        try:
            fs, root = url_to_fs(src)
            if fs.isdir(root):
                found = sorted(fs.find(root, withdirs=False))
            elif fs.exists(root) or os.path.islink(root):
                found = [root]
            else:
                units.append(Unit("missing", src, src))
                continue
        except Exception as e:  # permissions, bad URI, network: the source is reported, not fatal
            units.append(Unit("missing", src, src + f" ({type(e).__name__}: {e})"))
            continue
        for p in found:
            shown = _display(fs, p)
            if any(shown == e or shown.startswith(e + os.sep) for e in excl):
                continue
            units.append(Unit(_unit_kind(p, input_format), shown, src))
    # The same file reachable through two sources is one input.
    seen: set[str] = set()
    unique = []
    for u in units:
        if u.path not in seen:
            seen.add(u.path)
            unique.append(u)
    return unique


def _open(path: str):
    return fsspec.open(path, "rb").open()


def read_file(path: str) -> bytes:
    if "://" not in path:  # a local path: the OS's open, a third of fsspec's cost per file (0.04 vs 0.11 ms)
        with open(path, "rb") as f:
            return f.read()
    with _open(path) as f:
        return f.read()


def pick_image_column(schema, wanted: str | None) -> str:
    import pyarrow as pa

    if wanted:
        if wanted not in schema.names:
            raise ValueError(f"image column {wanted!r} not in shard (columns: {', '.join(schema.names)})")
        return wanted
    binary = [f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    for name in IMAGE_COLUMN_NAMES:
        if name in binary:
            return name
    if binary:
        return binary[0]
    # HuggingFace-style struct<bytes, path>
    for f in schema:
        if pa.types.is_struct(f.type) and any(c.name == "bytes" for c in f.type):
            return f.name
    raise ValueError(f"no binary image column in shard (columns: {', '.join(schema.names)}); pass --image-column")


def iter_parquet(path: str, image_column: str | None, rows: set[int] | None = None) -> Iterator[tuple[str, bytes | None, str | None]]:
    """Yield (item path, bytes, error) for each row of a Parquet shard (or only ``rows``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with _open(path) as f:
        pf = pq.ParquetFile(f)
        col = pick_image_column(pf.schema_arrow, image_column)
        offset = 0
        for rg in range(pf.num_row_groups):
            n = pf.metadata.row_group(rg).num_rows
            if rows is not None and not any(offset <= r < offset + n for r in rows):
                offset += n
                continue
            arr = pf.read_row_group(rg, columns=[col]).column(col)
            if pa.types.is_struct(arr.type):
                arr = arr.combine_chunks().field("bytes")
            values = arr.to_pylist()
            for i, v in enumerate(values):
                r = offset + i
                if rows is not None and r not in rows:
                    continue
                item = f"{path}#row={r}"
                if v is None:
                    yield item, None, "null image value in Parquet row"
                else:
                    yield item, bytes(v), None
            offset += n


def iter_tar(path: str, members: set[str] | None = None) -> Iterator[tuple[str, bytes | None, str | None]]:
    """Yield (item path, bytes, error) for each image member of a WebDataset tar (or only ``members``)."""
    with _open(path) as f:
        with tarfile.open(fileobj=f, mode="r|*") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                if not m.name.lower().endswith(WDS_IMAGE_EXT):
                    continue
                if members is not None and m.name not in members:
                    continue
                item = f"{path}#{m.name}"
                fh = tar.extractfile(m)
                yield item, (fh.read() if fh is not None else b""), None


def split_item(path: str) -> tuple[str, str]:
    """Inverse of the item naming for shard items: (shard, member)."""
    shard, _, member = path.partition("#")
    return shard, member


def read_unit(kind: str, path: str, image_column: str | None = None, members: set[str] | None = None) -> Iterator[tuple[str, bytes | None, str | None]]:
    """Yield (item path, bytes, error) for every item of a unit; a unit that fails yields one error."""
    try:
        if kind == "file":
            yield path, read_file(path), None
        elif kind == "parquet":
            rows = {int(m.removeprefix("row=")) for m in members} if members is not None else None
            yield from iter_parquet(path, image_column, rows)
        elif kind == "webdataset":
            yield from iter_tar(path, members)
        elif kind == "missing":
            yield path, None, "input not found or not readable"
        else:  # pragma: no cover - discovery only makes the kinds above
            yield path, None, f"unknown input kind {kind!r}"
    except (tarfile.TarError, EOFError) as e:
        yield path, None, f"unreadable tar shard: {e}"
    except FileNotFoundError as e:
        yield path, None, f"file not found or broken link: {e}"
    except PermissionError as e:
        yield path, None, f"permission denied: {e}"
    except IsADirectoryError as e:
        yield path, None, f"is a directory: {e}"
    except Exception as e:  # noqa: BLE001 - any failure of one input is recorded, not fatal
        yield path, None, f"could not read: {type(e).__name__}: {e}"


def read_vids(where: dict[int, tuple[str, str, str]], image_column: str | None = None) -> Iterator[tuple[int, bytes | None, str | None]]:
    """Yield (vid, bytes, error) for the vids of ``where`` (vid -> (kind, unit, item path) of its
    representative), each unit opened once; a vid whose item is not found yields an error."""
    by_unit: dict[tuple[str, str], dict[str, int]] = {}
    for v, (kind, unit, path) in where.items():
        by_unit.setdefault((kind, unit), {})[path] = int(v)
    for (kind, unit), items in by_unit.items():
        members = None if kind == "file" else {split_item(p)[1] for p in items}
        seen = set()
        for path, data, error in read_unit(kind, unit, image_column, members):
            v = items.get(path)
            if v is not None:
                seen.add(v)
                yield v, data, error
        for v in set(items.values()) - seen:
            yield v, None, "not found in its shard"


__all__ = ["Unit", "discover", "read_unit", "read_vids", "split_item"]
