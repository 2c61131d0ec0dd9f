"""Quiet logs for ``dedup run``: Ray's own lines that say nothing to a person running the job are left off
the terminal (``--verbose`` keeps them). Nothing is lost: Ray writes each of them to its session logs too
(``/tmp/ray/session_latest/logs``: the driver's C++ lines in ``python-core-driver-*.log``, Ray Data's in
``ray-data/``).

What a run printed before, and what takes it away:

* ``WARNING authentication_token_setup.py -- Token authentication is enabled for this Ray cluster. Set
  RAY_AUTH_MODE=disabled to opt out``: Ray (2.59 on) warns where ``RAY_AUTH_MODE`` is unset and turns token
  authentication on for a new local cluster. A local run sets ``RAY_AUTH_MODE=token`` (Ray's documented
  variable, https://docs.ray.io/en/latest/ray-security/token-auth.html): the same mode, said explicitly, so
  Ray has nothing to warn about. A run that joins a cluster leaves the variable as the cluster needs it.
* ``[... E ...] core_worker.cc:NNNN: Actor with class name: 'MapWorker(MapBatches(DecodeEmbedder))' ...
  has constructor arguments in the object store and max_restarts > 0``: the driver's C++ logger copies its
  ERROR lines to stderr. The embedding actors take the model's object reference as a constructor argument
  and Ray Data restarts lost actors (the fault tests rely on it), so the line is expected. Ray has no
  setting for the driver's stderr alone (``RAY_BACKEND_LOG_LEVEL`` would also silence every other
  process's log files), so :class:`StderrFilter` reads this process's file descriptor 2 through a pipe
  and leaves out Ray's C++ lines of level I and W and the ERROR lines listed in ``KNOWN_NOISE``; any other
  line, a FATAL one among them, passes.
* ``WARNING ... Progress bars disabled`` and ``INFO streaming_executor.py -- Dataset ... execution
  finished`` / ``Data sink Parquet finished``: Ray Data's console handler; :func:`quiet_ray_data` keeps its
  WARNING and above, less that one (the job turns the bars off itself where stderr is no terminal).
"""
from __future__ import annotations

import io
import logging
import os
import re
import sys
import threading

# A line of Ray's C++ logger, as the driver prints it or a worker's line forwarded to it ("(pid=..) ...").
RAY_CPP_LINE = re.compile(rb"^(?:\([^)]*\) )?\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ([DIWEF]) \d+ \d+\] [\w./-]+:\d+: ")
# ERROR lines of Ray's that are expected in a healthy run (the module docstring says why).
KNOWN_NOISE = (b"has constructor arguments in the object store and max_restarts > 0",)
# Ray Data's console messages left out at WARNING.
RAY_DATA_NOISE = ("Progress bars disabled",)


_quiet = False


def enable(local: bool) -> None:
    """Quiet logs for this process (``dedup run`` without ``--verbose``): :func:`quiet_ray_env` now,
    :func:`quiet_ray_data` once Ray has started (:func:`dedup.ray_env.init_ray` calls :func:`after_ray_init`)."""
    global _quiet
    _quiet = True
    quiet_ray_env(local)


def after_ray_init() -> None:
    if _quiet:
        quiet_ray_data()


def dropped(line: bytes) -> bool:
    """Whether ``line`` is one of Ray's own lines that a quiet run leaves off stderr."""
    m = RAY_CPP_LINE.match(line)
    if not m:
        return False
    level = m.group(1)
    return level in (b"D", b"I", b"W") or (level == b"E" and any(n in line for n in KNOWN_NOISE))


def quiet_ray_env(local: bool) -> None:
    """Before Ray starts: a local run states the token-authentication mode Ray would choose, so Ray does not
    warn that it chose it (module docstring). A user's own ``RAY_AUTH_MODE`` is kept."""
    if local:
        os.environ.setdefault("RAY_AUTH_MODE", "token")


class _RayDataConsoleFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        message = record.getMessage()
        return not any(n in message for n in RAY_DATA_NOISE)


def quiet_ray_data() -> None:
    """Ray Data's console handler keeps WARNING and above (less ``RAY_DATA_NOISE``); its file handler, in the
    session logs, keeps everything."""
    import ray.data  # noqa: F401 - configures the "ray.data" logger and its handlers

    for h in logging.getLogger("ray.data").handlers:
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            if not any(isinstance(f, _RayDataConsoleFilter) for f in h.filters):
                h.addFilter(_RayDataConsoleFilter())


class StderrFilter:
    """This process's file descriptor 2 read through a pipe, less the lines :func:`dropped` names, while the
    ``with`` block runs. Python's ``sys.stderr`` writes to the terminal directly (a duplicate of the original
    descriptor), so progress bars still see a terminal and Python's lines keep their order; only what is
    written to descriptor 2 below Python (Ray's C++ logger) passes through the filter."""

    def __init__(self) -> None:
        self._saved: int | None = None
        self._thread: threading.Thread | None = None
        self._py_stderr = None

    def __enter__(self) -> "StderrFilter":
        try:
            sys.stderr.flush()
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # no real stderr (captured): nothing to filter
            return self
        if fd != 2:
            return self
        self._saved = os.dup(2)
        r, w = os.pipe()
        os.dup2(w, 2)
        os.close(w)
        self._py_stderr = sys.stderr
        sys.stderr = io.TextIOWrapper(io.FileIO(os.dup(self._saved), "w"), encoding=self._py_stderr.encoding,
                                      errors="backslashreplace", line_buffering=True, write_through=True)
        self._thread = threading.Thread(target=self._pump, args=(r, self._saved), name="dedup-stderr-filter", daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _pump(r: int, out: int) -> None:
        with os.fdopen(r, "rb", buffering=0) as f:
            for line in io.BufferedReader(f):
                if not dropped(line):
                    try:
                        os.write(out, line)
                    except OSError:
                        pass

    def __exit__(self, *exc) -> None:
        if self._saved is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        filtered, sys.stderr = sys.stderr, self._py_stderr
        os.dup2(self._saved, 2)  # the pipe's last writer here closes: the pump drains it and ends
        if self._thread is not None:
            self._thread.join(timeout=2)
        try:
            filtered.close()
        except (OSError, ValueError):
            pass
        if self._thread is None or not self._thread.is_alive():
            os.close(self._saved)
        self._saved = None
