"""The Milvus Lite server a run starts (no Ray): ``milvus-lite server`` over the output folder's data dir, on
127.0.0.1 only, one process that every writer and search actor of the run connects to by URI (Milvus Lite
lets one process open a data dir). It is stopped when the job ends, also on failure, and dies with the job's
process if that is killed."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now (the Lite server's, the embedded server's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Run in the server's own process before it execs the server: on Linux, ask for SIGTERM when the job's
# process dies, so that a job killed with SIGKILL (OOM, a lost session) leaves no server holding the data dir
# for its re-run. A small interpreter does it, not a preexec_fn: a preexec_fn runs Python in a fork of the
# job's process, which beside Ray's threads could abort before the exec (the server then "exited at start").
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "    if os.getppid() != int(sys.argv[1]):\n"
    "        sys.exit(0)  # the job died before the request took hold\n"
    "except OSError:\n"
    "    pass  # not Linux: the server outlives a killed job until it is stopped by hand\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class MilvusLiteServer:
    """Context manager running ``milvus-lite server`` on loopback for the duration of the job."""

    def __init__(self, data_dir: str, log_path: str | None = None, start_timeout: float = 60.0):
        self.data_dir = data_dir
        self.log_path = log_path or os.path.join(data_dir + ".log")
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self._started = 0.0
        self._ready = False
        self.ready_after: float | None = None  # seconds from start to its port's first answer (a watcher thread)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        exe = shutil.which("milvus-lite", path=os.path.dirname(sys.executable)) or shutil.which("milvus-lite")
        if exe is None:
            return [sys.executable, "-m", "milvus_lite", "server"]
        return [exe, "server"]

    def start(self) -> "MilvusLiteServer":
        """Start the server process without waiting for it (the job starts it early, so it is up by the
        time the vectors are ready); :meth:`wait_ready` waits."""
        if self.proc is not None:
            return self
        os.makedirs(self.data_dir, exist_ok=True)
        self.port = free_port()
        log = open(self.log_path, "ab")
        cmd = self._command() + ["--data-dir", self.data_dir, "--host", "127.0.0.1", "--port", str(self.port)]
        exe = shutil.which(cmd[0]) or cmd[0]
        cmd = [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), exe, *cmd[1:]]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self._started = time.monotonic()
        self._ready = False
        self.ready_after = None
        threading.Thread(target=self._watch, args=(self.proc,), name="milvus-lite-watch", daemon=True).start()
        return self

    def _answers(self) -> bool:
        """Whether the server's port takes a connection now (noting, the first time, how long it took)."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        if self.ready_after is None:
            self.ready_after = round(time.monotonic() - self._started, 3)
        return True

    def _watch(self, proc: subprocess.Popen) -> None:
        """Note when the port first answers (summary.json's start-up line), without blocking anyone."""
        while self.proc is proc and proc.poll() is None and time.monotonic() - self._started < self.start_timeout:
            if self._answers():
                return
            time.sleep(0.05)

    def wait_ready(self) -> "MilvusLiteServer":
        if self.proc is None:
            self.start()
        if self._ready:
            return self
        # Started early, the server has had time already; a server that is not up yet gets the full timeout.
        deadline = max(self._started, time.monotonic() - 1.0) + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"milvus-lite server exited with code {self.proc.returncode} at start; see {self.log_path}"
                )
            if self._answers():
                self._ready = True
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"milvus-lite server did not start within {self.start_timeout:.0f}s; see {self.log_path}")

    def __enter__(self) -> "MilvusLiteServer":
        return self.start().wait_ready()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._ready = False

    def __exit__(self, *exc) -> None:
        self.stop()
