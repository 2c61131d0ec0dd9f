"""Milvus access: the embedded Milvus Lite server, collection set-up, and client creation.

Milvus Lite lets one process open a data dir, but the job has many writers and search actors. So with
Lite the job starts one ``milvus-lite server`` (gRPC, bound to 127.0.0.1 only) over OUTPUT/milvus and
every actor connects to it by URI, exactly as they would to a Milvus server given with --milvus-uri.
The server is stopped when the job ends, also on failure.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

VECTOR_FIELD = "embedding"
ID_FIELD = "vid"
METRIC = "COSINE"  # vectors are L2-normalised, so cosine = inner product


@dataclass(frozen=True)
class MilvusTarget:
    uri: str
    token: str | None = None
    db_name: str | None = None

    def client(self):
        from pymilvus import MilvusClient

        kwargs = {"uri": self.uri, "timeout": 600}
        if self.token:
            kwargs["token"] = self.token
        if self.db_name:
            kwargs["db_name"] = self.db_name
        return MilvusClient(**kwargs)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MilvusLiteServer:
    """Context manager running ``milvus-lite server`` on loopback for the duration of the job."""

    def __init__(self, data_dir: str, log_path: str | None = None, start_timeout: float = 60.0):
        self.data_dir = data_dir
        self.log_path = log_path or os.path.join(data_dir + ".log")
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        exe = shutil.which("milvus-lite", path=os.path.dirname(sys.executable)) or shutil.which("milvus-lite")
        if exe is None:
            return [sys.executable, "-m", "milvus_lite", "server"]
        return [exe, "server"]

    def __enter__(self) -> "MilvusLiteServer":
        os.makedirs(self.data_dir, exist_ok=True)
        self.port = _free_port()
        log = open(self.log_path, "ab")
        cmd = self._command() + ["--data-dir", self.data_dir, "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"milvus-lite server exited with code {self.proc.returncode} at start; see {self.log_path}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"milvus-lite server did not start within {self.start_timeout:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __exit__(self, *exc) -> None:
        self.stop()


def create_collection(target: MilvusTarget, name: str, dim: int, replace: bool = True) -> None:
    """(Re)create the run's collection: int64 primary key ``vid`` and a FLOAT_VECTOR ``embedding``."""
    from pymilvus import DataType, MilvusClient

    client = target.client()
    try:
        if client.has_collection(name):
            if not replace:
                raise RuntimeError(f"collection {name} already exists")
            client.drop_collection(name)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(ID_FIELD, DataType.INT64, is_primary=True)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dim)
        client.create_collection(name, schema=schema)
    finally:
        client.close()


def index_params_for(index: str) -> dict:
    if index == "IVF_FLAT":
        return {"nlist": 1024}
    if index == "HNSW":
        return {"M": 16, "efConstruction": 200}
    return {}


def build_index_and_load(target: MilvusTarget, name: str, index: str) -> None:
    client = target.client()
    try:
        client.flush(name)
        params = client.prepare_index_params()
        params.add_index(field_name=VECTOR_FIELD, index_type=index, metric_type=METRIC, params=index_params_for(index))
        client.create_index(name, params)
        client.load_collection(name)
    finally:
        client.close()


def drop_collection(target: MilvusTarget, name: str) -> None:
    client = target.client()
    try:
        if client.has_collection(name):
            client.drop_collection(name)
    finally:
        client.close()
