"""Pairs that matched only a template (no Ray; :mod:`dedup.ops.verify`, over all of a run's pairs in stage
`verify`): a frame that recurs across the corpus around different pictures (an app's screenshot, a meme card, a
canvas). The content check records, for each same-frame pair, where its pixels disagree (grid bits of
:func:`dedup.ops.agreement._local_share`); :func:`templates` finds the frames from those records together."""
from __future__ import annotations

from itertools import combinations

import numpy as np

from dedup.ops.agreement import grid_cells as _bits


def templates(a: np.ndarray, b: np.ndarray, ok: np.ndarray, grid: np.ndarray, min_cells: int = 3,
              overlap: float = 0.5) -> np.ndarray:
    """Which passed pairs matched only a template: a frame that recurs across the corpus around different
    pictures (an app's screenshot, a meme card, a canvas).

    Such pairs come in triangles: three images of one frame, each two matching (passed or not: ``grid`` is
    also kept for a same-frame match that failed) and agreeing except in the same place (``grid``,
    :func:`~dedup.ops.agreement._local_share`'s bits, at least ``min_cells`` cells, each two pairs' cells
    sharing ``overlap`` of the larger: the three pairs differ in one place, the picture). A copy's edits (a
    caption, a sticker) sit in different places, and two re-posts of one edited copy agree everywhere; a
    photo, its copy under stripes over the whole frame and that copy captioned differ in the stripes, in
    the stripes and the caption, and in the caption: each of the smaller regions lies inside the larger, but
    no two are one region. Then any other passed pair of a template's image that
    disagrees (mostly) inside that image's template region is one too: a small picture in a large frame
    disagrees in a few cells only."""
    a, b, grid, ok = np.asarray(a, np.int64), np.asarray(b, np.int64), np.asarray(grid, np.int64), np.asarray(ok, bool)
    cells = _bits(grid) if len(grid) else np.zeros(0, np.int64)
    out = _triangles(a, b, grid, cells, np.flatnonzero(cells >= min_cells), overlap)
    region: dict[int, int] = {}
    for i in np.flatnonzero(out).tolist():
        for v in (int(a[i]), int(b[i])):
            region[v] = region.get(v, 0) | int(grid[i])
    for i in np.flatnonzero(ok & ~out & (cells > 0)).tolist():
        inside = max(_bits(np.int64(grid[i] & region.get(int(v), 0)))[0] for v in (a[i], b[i]))
        out[i] = inside >= overlap * cells[i]
    return out & ok


def _triangles(a, b, grid, cells, cand: np.ndarray, overlap: float) -> np.ndarray:
    """The pairs among ``cand`` in a triangle whose three pairs' grids overlap (see :func:`templates`)."""
    adj: dict[int, dict[int, int]] = {}
    for i in cand.tolist():
        adj.setdefault(int(a[i]), {})[int(b[i])] = i
        adj.setdefault(int(b[i]), {})[int(a[i])] = i

    out = np.zeros(len(a), bool)
    for i in cand.tolist():
        x, y = int(a[i]), int(b[i])
        for z in adj[x].keys() & adj[y].keys():
            j, k = adj[x][z], adj[y][z]
            if all(_one_region(grid, cells, p, q, overlap) for p, q in ((i, j), (i, k), (j, k))):
                out[[i, j, k]] = True
    return out


def _one_region(grid: np.ndarray, cells: np.ndarray, i: int, j: int, overlap: float) -> bool:
    """Pairs ``i`` and ``j`` differ in one region: their cells share ``overlap`` of the larger's."""
    return _bits(np.int64(grid[i] & grid[j]))[0] >= overlap * max(cells[i], cells[j])


def open_wedges(a: np.ndarray, b: np.ndarray, grid: np.ndarray, min_cells: int = 8, overlap: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The pairs that would close a template's triangle but were not checked: (y, z) where one image x has a
    same-frame match with each (``grid``: at least ``min_cells`` cells disagree) and the two disagree in one
    region (each pair's cells sharing ``overlap`` of the larger), and (y, z) is none of the pairs (a, b).

    The search links a template's copies only where their pictures happen to look alike: a card holding a
    different photo in each copy may give one image two such matches and leave the third pair out of the
    band, so no triangle forms and both matches pass. Checking that pair shows whether y and z are one frame
    too (a template) or not. Only large regions (``min_cells``: an eighth of the frame): the same caption
    place on three copies of one photo is a region of a few cells, and those copies would read as one."""
    a, b, grid = np.asarray(a, np.int64), np.asarray(b, np.int64), np.asarray(grid, np.int64)
    cells = _bits(grid) if len(grid) else np.zeros(0, np.int64)
    legs: dict[int, list[int]] = {}
    for i in np.flatnonzero(cells >= min_cells).tolist():
        legs.setdefault(int(a[i]), []).append(i)
        legs.setdefault(int(b[i]), []).append(i)
    have = set(zip(a.tolist(), b.tolist())) | set(zip(b.tolist(), a.tolist()))
    out: list[tuple[int, int]] = []
    for x, mine in legs.items():
        for i, j in combinations(mine, 2):
            if not _one_region(grid, cells, i, j, overlap):
                continue
            y, z = (int(b[k]) if int(a[k]) == x else int(a[k]) for k in (i, j))
            pair = (min(y, z), max(y, z))
            if pair not in have:
                have.add(pair)
                out.append(pair)
    return np.array([p[0] for p in out], np.int64), np.array([p[1] for p in out], np.int64)
