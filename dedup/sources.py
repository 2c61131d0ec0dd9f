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


# Extensions Pillow lists that are no picture it can decode here: stubs without a handler (HDF5, GRIB,
# BUFR: scientific data) and MPEG video.
_NOT_PICTURES = frozenset({".h5", ".hdf", ".bufr", ".grib", ".mpeg", ".mpg"})
# Images Pillow may lack a decoder for: still inputs, so a photo it cannot open is an error, not a skip.
_MORE_IMAGES = frozenset({".mpo", ".heic", ".heif", ".avif", ".jxl"})
# The files that mark a folder as an earlier output folder of this tool (beside its state.json).
_OUTPUT_MARKERS = ("files.parquet", "summary.json", "manifest.csv", "manifest.parquet")

SKIP_REASONS = {
    "output": "this run's output folder",
    "earlier_output": "an earlier output folder of dedup (it holds state.json)",
    "hidden": "hidden file or folder (name starts with '.')",
    "excluded": "matches --exclude",
    "not_included": "matches no --include",
    "not_image": "not an image file by its extension",
}


def image_extensions() -> frozenset[str]:
    """The extensions read as images: those Pillow registers a decoder for, and a few photo formats it
    may lack a plugin for (HEIC, AVIF, JPEG XL: a file it cannot decode is then an error, not a skip)."""
    global _IMAGE_EXT
    if _IMAGE_EXT is None:
        from PIL import Image

        found = {e.lower() for e, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
        _IMAGE_EXT = frozenset((found | _MORE_IMAGES) - _NOT_PICTURES)
    return _IMAGE_EXT


_IMAGE_EXT: frozenset[str] | None = None


@dataclass
class Discovery:
    """What :func:`find_inputs` found: the units, and the files it left out with why (``SKIP_REASONS``)."""

    units: list[Unit]
    skipped: list[tuple[str, str]]  # (path, reason key)

    def skipped_summary(self, examples: int = 3) -> dict:
        """For summary.json: how many files were skipped, by reason and by extension, with a few examples."""
        by_reason: dict[str, int] = {}
        by_ext: dict[str, int] = {}
        shown: dict[str, list[str]] = {}
        for path, reason in self.skipped:
            by_reason[reason] = by_reason.get(reason, 0) + 1
            ext = os.path.splitext(path.rsplit("/", 1)[-1])[1].lower() or "(none)"
            by_ext[ext] = by_ext.get(ext, 0) + 1
            if len(shown.setdefault(reason, [])) < examples:
                shown[reason].append(path)
        return {"files": len(self.skipped), "by_reason": by_reason,
                "by_extension": dict(sorted(by_ext.items(), key=lambda kv: (-kv[1], kv[0]))), "examples": shown}


def discover(sources: list[str], input_format: str = "auto", exclude: list[str] | None = None) -> list[Unit]:
    """The units of :func:`find_inputs` (``exclude``: folders left out, e.g. the job's own output)."""
    return find_inputs(sources, input_format, skip_dirs=exclude).units


def find_inputs(sources: list[str], input_format: str = "auto", include: list[str] | None = None,
                exclude: list[str] | None = None, skip_dirs: list[str] | None = None) -> Discovery:
    """List every unit under the given sources, sorted, recursively for folders, and the files left out.

    A source that does not exist (or cannot be listed) becomes a ``missing`` unit. A file named as a
    source is always a unit; in a folder, a file is left out (skipped, with its reason) when it lies under
    ``skip_dirs`` (the job's own output folder) or under an earlier output folder of this tool (a folder
    holding its ``state.json``), is hidden, matches an ``exclude`` glob or no ``include`` glob (matched
    with :func:`fnmatch.fnmatchcase` against the path relative to the source, and against the file
    name), or, unless ``input_format`` is ``files``, has an extension that is neither an image's
    (:func:`image_extensions`) nor a shard's: a file without an extension is read and told apart by
    content, as is one with an image extension (a PNG named ``.jpg``).
    """
    units: list[Unit] = []
    skipped: list[tuple[str, str]] = []
    excl = [os.path.abspath(e) for e in (skip_dirs or [])]
    for src in sources:
        try:
            fs, root = url_to_fs(src)
            if fs.isdir(root):
                found = sorted(fs.find(root, withdirs=False))
            elif fs.exists(root) or os.path.islink(root):
                units.append(Unit(_unit_kind(root, input_format), _display(fs, root), src))
                continue
            else:
                units.append(Unit("missing", src, src))
                continue
        except Exception as e:  # permissions, bad URI, network: the source is reported, not fatal
            units.append(Unit("missing", src, src + f" ({type(e).__name__}: {e})"))
            continue
        earlier = _earlier_outputs(fs, root, found)
        for p in found:
            shown = _display(fs, p)
            if any(shown == e or shown.startswith(e + os.sep) for e in excl):
                skipped.append((shown, "output"))
                continue
            reason = _skip_reason(p[len(root.rstrip("/")):].lstrip("/"), input_format, include, exclude, earlier)
            if reason:
                skipped.append((shown, reason))
            else:
                units.append(Unit(_unit_kind(p, input_format), shown, src))
    # The same file reachable through two sources is one input.
    seen: set[str] = set()
    unique = []
    for u in units:
        if u.path not in seen:
            seen.add(u.path)
            unique.append(u)
    return Discovery(unique, skipped)


def _earlier_outputs(fs, root: str, found: list[str]) -> list[str]:
    """The folders under ``root`` (relative, "" for root itself) that are an earlier run's output folder:
    they hold ``state.json`` beside one of its other files, or a ``state.json`` of finished stages."""
    import json

    names = set(found)
    out = []
    for p in found:
        folder, _, name = p.rpartition("/")
        if name != "state.json":
            continue
        ours = any(f"{folder}/{m}" in names for m in _OUTPUT_MARKERS)
        if not ours:
            try:
                with fs.open(p, "rb") as f:
                    data = json.loads(f.read(1 << 20))
                ours = isinstance(data, dict) and any(isinstance(v, dict) and "fingerprint" in v for v in data.values())
            except Exception:  # noqa: BLE001 - not JSON, not readable: not ours
                ours = False
        if ours:
            out.append(folder[len(root.rstrip("/")):].lstrip("/"))
    return out


def _skip_reason(rel: str, input_format: str, include, exclude, earlier: list[str]) -> str | None:
    """Why the file at ``rel`` (relative to its source folder) is not an input, or None."""
    from fnmatch import fnmatchcase

    if any(e == "" or rel.startswith(e + "/") for e in earlier):
        return "earlier_output"
    name = rel.rsplit("/", 1)[-1]
    if any(part.startswith(".") for part in rel.split("/")):
        return "hidden"
    if exclude and any(fnmatchcase(rel, g) or fnmatchcase(name, g) for g in exclude):
        return "excluded"
    if include and not any(fnmatchcase(rel, g) or fnmatchcase(name, g) for g in include):
        return "not_included"
    if input_format == "files":
        return None
    ext = os.path.splitext(name)[1].lower()
    if not ext or ext in image_extensions() or _unit_kind(name, input_format) != "file":
        return None
    return "not_image"


def _open(path: str):
    return fsspec.open(path, "rb").open()


def read_file(path: str) -> bytes:
    if "://" not in path:  # a local path: the OS's open, without fsspec's per-file overhead
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


__all__ = ["Unit", "Discovery", "SKIP_REASONS", "discover", "find_inputs", "image_extensions", "read_unit", "read_vids", "split_item"]
