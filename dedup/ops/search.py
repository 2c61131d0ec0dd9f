"""Similarity edges from vectors, exactly (no Ray, no Milvus): every pair of a set of vectors
(:func:`exact_edges`, what a FLAT index computes, without a top-k), a sample of them against all
and a set of queries against a batch of vectors
(:func:`brute_force_edges`, for the queries a Milvus search saturated). The edge schema and the marker rows a
Milvus searcher (:class:`dedup.vectordb.searcher.Searcher`) returns among its edges.

The products are computed in tiles, in float32 (numpy/BLAS) or int8 (:class:`Int8Products`, ONNX Runtime's
integer matrix product: on this project's 2-core AVX2 machine 2.6x the float32 rate); either way a tile only
nominates candidates, and each candidate's cosine is computed again in float32 (:func:`_rechecked`), so the
edges and their similarities do not depend on which products found them.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from dedup.ops.models import embeddings_to_numpy

MAX_TOPK = 16384
EDGE_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("sim", pa.float32())])
NEAREST_SCHEMA = pa.schema([("vid", pa.int64()), ("sim", pa.float32())])
# Marker rows among a searcher's edges (b < 0): a saturated query, one re-asked at the largest limit, and a
# query's nearest-neighbour similarity.
SATURATED, REASKED, NEAREST = -1, -2, -3


def brute_force_edges(batch: pa.Table, queries_ref, threshold: float) -> dict:
    """Exact neighbours of the saturated queries against one batch of stored vectors.

    ``queries_ref``: object-store reference to (query vids, query vectors), shared by every task.
    """
    import ray

    query_vids, queries = ray.get(queries_ref) if isinstance(queries_ref, ray.ObjectRef) else queries_ref
    vids = batch.column("vid").to_numpy()
    vectors = embeddings_to_numpy(batch.column("embedding"))
    a, b, s = [], [], []
    for start in range(0, len(query_vids), 1024):  # bounded memory: (batch x 1024) similarities at a time
        qv = query_vids[start : start + 1024]
        sims = vectors @ queries[start : start + 1024].T
        rows, cols = _candidates(sims, threshold, sims.max(axis=1))
        qa, vb = qv[cols], vids[rows]
        keep = qa != vb
        a.append(np.minimum(qa, vb)[keep])
        b.append(np.maximum(qa, vb)[keep])
        s.append(np.minimum(sims[rows, cols][keep], 1.0))
    return {
        "a": np.concatenate(a).astype(np.int64),
        "b": np.concatenate(b).astype(np.int64),
        "sim": np.concatenate(s).astype(np.float32),
    }


def exact_edges(vids: np.ndarray, vectors: np.ndarray, threshold: float, products: str = "float32") -> dict:
    """Every pair with cosine >= ``threshold``, each once (``a < b``), computed exactly from the vectors,
    and ``nearest``: each row's highest similarity to another row (-inf for a lone vector).

    What a FLAT index returns, without a top-k: tiles of the upper triangle (:data:`TILE` x :data:`TILE`
    rows), so memory is bounded by a tile. ``products``: float32 or int8 (:func:`make_products`); with int8,
    ``nearest`` is within :attr:`Int8Products.margin` where it is below the threshold, exact above it."""
    vids, vectors = np.asarray(vids, np.int64), np.ascontiguousarray(vectors, np.float32)
    p = make_products(vectors, products)
    nearest = np.full(len(vids), -np.inf, np.float32)
    found = []
    for q0 in range(0, len(vids), TILE):
        q = p.queries(np.arange(q0, min(len(vids), q0 + TILE)))
        for s0 in range(q0, len(vids), TILE):
            t = p.tile(q, s0, min(len(vids), s0 + TILE))  # stored rows x query rows
            if s0 == q0:
                np.fill_diagonal(t, p.lowest)  # a row is not its own neighbour
            i, j = _scan(p, t, threshold, nearest, q0, s0)
            found.append((i[j > i], j[j > i]))  # the upper triangle: each pair once
    return _rechecked(vids, vectors, threshold, found, nearest)


TILE = 4096  # rows on each side of a tile of products: 64 MB of float32 or int32


def _scan(p, t: np.ndarray, threshold: float, nearest: np.ndarray, q0: int, s0: int) -> tuple[np.ndarray, np.ndarray]:
    """A tile's candidate pairs (query row, stored row), and both sides' highest products into ``nearest``."""
    side_q, side_s = slice(q0, q0 + t.shape[1]), slice(s0, s0 + t.shape[0])
    np.maximum(nearest[side_q], t.max(axis=0) * p.unit, out=nearest[side_q])
    row_max = t.max(axis=1)
    np.maximum(nearest[side_s], row_max * p.unit, out=nearest[side_s])
    r, c = _candidates(t, p.floor(threshold), row_max)
    return q0 + c, s0 + r


def _candidates(t: np.ndarray, floor: float, row_max: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of a tile's products at or above ``floor``; only the rows whose highest product reaches
    it are compared (a comparison of the whole tile costs ten times its two maxima)."""
    rows = np.flatnonzero(row_max >= floor)
    r, c = np.nonzero(t[rows] >= floor)
    return rows[r], c


def _rechecked(vids, vectors, threshold: float, found: list, nearest: np.ndarray, unique: bool = False) -> dict:
    """The candidate pairs whose float32 cosine is at or above ``threshold``; ``nearest`` made exact where an
    edge sets it (a row's highest similarity at or above the threshold is one of its edges), and below the
    threshold where none does."""
    i = np.concatenate([f[0] for f in found]) if found else np.zeros(0, np.int64)
    j = np.concatenate([f[1] for f in found]) if found else np.zeros(0, np.int64)
    if unique and len(i):
        key = np.unique(i * len(vids) + j)
        i, j = key // len(vids), key % len(vids)
    sims = np.concatenate([np.einsum("ij,ij->i", vectors[i[k : k + 65536]], vectors[j[k : k + 65536]])
                           for k in range(0, len(i), 65536)] or [np.zeros(0, np.float32)])
    keep = sims >= threshold
    i, j, sims = i[keep], j[keep], np.minimum(sims[keep], 1.0).astype(np.float32)
    exact = np.full(len(vids), -np.inf, np.float32)
    np.maximum.at(exact, i, sims)
    np.maximum.at(exact, j, sims)
    below = np.nextafter(np.float32(threshold), np.float32(-np.inf))  # a row without an edge has none above it
    nearest = np.where(np.isfinite(exact) & np.isfinite(nearest), exact, np.minimum(nearest, below))
    a, b = vids[i], vids[j]
    return {"a": np.minimum(a, b), "b": np.maximum(a, b), "sim": sims, "nearest": np.minimum(nearest, 1.0)}


PRODUCTS = ("float32", "int8")


def make_products(vectors: np.ndarray, kind: str):
    if kind not in PRODUCTS:
        raise ValueError(f"products must be one of {PRODUCTS}, got {kind!r}")
    return Float32Products(vectors) if kind == "float32" else Int8Products(vectors)


class Float32Products:
    """Tiles of float32 products (numpy/BLAS). Candidates within ``margin`` of the threshold: the re-check's
    dot product may differ from BLAS's in the last bits."""

    unit, lowest, margin = 1.0, -np.inf, 1e-5

    def __init__(self, vectors: np.ndarray):
        self.stored = vectors
        self.buffer = np.empty(TILE * TILE, np.float32)  # one tile, reused: a new 64 MB each time costs its page faults

    def queries(self, rows: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.stored[rows].T)

    def tile(self, q: np.ndarray, s0: int, s1: int) -> np.ndarray:
        """Products of stored rows s0..s1 with the queries ``q``; valid until the next tile."""
        out = self.buffer[: (s1 - s0) * q.shape[1]].reshape(s1 - s0, q.shape[1])
        return np.matmul(self.stored[s0:s1], q, out=out)

    def floor(self, threshold: float) -> float:
        return threshold - self.margin


class Int8Products:
    """Tiles of int8 products: ONNX Runtime's MatMulInteger of the stored vectors (uint8, zero point 128) and
    the queries (int8 within +-63: AVX2's pairwise u8 x s8 sums cannot saturate), one scale for all.

    A product is the cosine within the rounding of both vectors: its error is a sum over the coordinates of
    independent terms, each within 2 (|x| da + |y| db) wide (da, db: half a rounding step; the sum of their
    squared widths at most 8 n^2 (da^2 + db^2) for vectors of norm n), so by Hoeffding's inequality a pair's
    error passes ``margin`` = 14 n sqrt(da^2 + db^2) with probability under 2 exp(-49), about 1e-21: every
    pair at or above the threshold is nominated (a million vectors hold 5e11 pairs); the float32 re-check
    decides."""

    lowest = np.iinfo(np.int32).min

    def __init__(self, vectors: np.ndarray):
        top = float(np.abs(vectors).max(initial=0.0)) or 1.0
        sa, sb = 127.0 / top, 63.0 / top
        self.vectors, self.sb = vectors, sb  # the queries are rounded per tile: no second copy of every vector
        self.stored = np.empty(vectors.shape, np.uint8)
        for k in range(0, len(vectors), 65536):  # bounded temporaries
            self.stored[k : k + 65536] = (np.rint(vectors[k : k + 65536] * sa) + 128).clip(0, 255)
        self.unit = 1.0 / (sa * sb)
        norm = float(np.sqrt(np.max(np.einsum("ij,ij->i", vectors, vectors), initial=1.0)))
        self.margin = 14.0 * norm * float(np.hypot(0.5 / sa, 0.5 / sb))
        self.session = _matmul_integer()
        self.binding = self.session.io_binding()
        self.binding.bind_cpu_input("Z", np.array(128, np.uint8))
        self.buffer = np.empty(TILE * TILE, np.int32)  # one tile, reused: a new 64 MB each time costs its page faults

    def queries(self, rows: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.rint(self.vectors[rows] * self.sb).clip(-63, 63).astype(np.int8).T)

    def tile(self, q: np.ndarray, s0: int, s1: int) -> np.ndarray:
        """Products of stored rows s0..s1 with the queries ``q``; valid until the next tile."""
        out = self.buffer[: (s1 - s0) * q.shape[1]].reshape(s1 - s0, q.shape[1])
        self.binding.bind_cpu_input("A", self.stored[s0:s1])
        self.binding.bind_cpu_input("B", q)
        self.binding.bind_output("Y", "cpu", element_type=np.int32, shape=out.shape, buffer_ptr=out.ctypes.data)
        self.session.run_with_iobinding(self.binding)
        return out

    def floor(self, threshold: float) -> float:
        return (threshold - self.margin) / self.unit


def _matmul_integer():
    """An ONNX Runtime session of one MatMulInteger node: A (uint8, zero point Z) x B (int8) -> int32."""
    import onnxruntime as ort

    return ort.InferenceSession(MATMUL_INTEGER_ONNX, providers=["CPUExecutionProvider"])


def matmul_integer_model() -> bytes:
    """The model of :func:`_matmul_integer`, built with onnx's helpers (a test checks it is
    :data:`MATMUL_INTEGER_ONNX`: the job keeps the bytes, as importing onnx costs 0.8 s of the driver)."""
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info("A", TensorProto.UINT8, [None, None]),
              helper.make_tensor_value_info("B", TensorProto.INT8, [None, None]),
              helper.make_tensor_value_info("Z", TensorProto.UINT8, [])]
    out = helper.make_tensor_value_info("Y", TensorProto.INT32, [None, None])
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B", "Z"], ["Y"])], "products", inputs, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="dedup")
    model.ir_version = 8
    return model.SerializeToString()


MATMUL_INTEGER_ONNX = bytes.fromhex(
    "0808120564656475703a670a1b0a01410a01420a015a120159220d4d61744d756c496e7465676572120870726f64756374735a0f0a0141"
    "120a0a08080212040a000a005a0f0a0142120a0a08080312040a000a005a0b0a015a12060a0408021200620f0a0159120a0a08080612040a"
    "000a0042040a00100d")
