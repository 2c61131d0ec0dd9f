"""What the stages share for the length of a run: the Milvus it stores in and searches, started once.

``--milvus-uri`` names a Milvus server or cluster; without it the run owns an embedded Milvus Lite server
(``milvus-lite server`` over ``OUTPUT/milvus``, bound to 127.0.0.1 on a free port): Milvus Lite lets only
one process open a data dir, and a run has many writers and search actors. The job starts it first so that
it is up by the time the store needs it; the job stops it at the end, also on failure. It is started from
the job's main thread: on Linux it gets SIGTERM when the thread that started it ends, so a job killed with
SIGKILL leaves no server holding the data dir.
"""
from __future__ import annotations

import threading

from dedup.vectordb.lite import MilvusLiteServer
from dedup.vectordb.milvus import MilvusTarget


class Services:
    def __init__(self, cfg, layout):
        self.cfg, self.layout = cfg, layout
        self._lite: MilvusLiteServer | None = None
        self._lock = threading.Lock()

    def start_milvus(self) -> None:
        """Start the Milvus Lite server now, without waiting for it (nothing to do with a server)."""
        with self._lock:
            if not self.cfg.milvus_uri and self._lite is None:
                self._lite = MilvusLiteServer(str(self.layout.milvus_lite_dir), str(self.layout.milvus_lite_log)).start()

    def milvus(self) -> MilvusTarget:
        """The run's Milvus, ready (the Lite server started and up, or the server named by --milvus-uri)."""
        if self.cfg.milvus_uri:
            return MilvusTarget(self.cfg.milvus_uri, self.cfg.milvus_token, self.cfg.milvus_db)
        self.start_milvus()
        return MilvusTarget(self._lite.wait_ready().uri)

    def timeline(self) -> dict:
        """The Milvus Lite server's start-up line: from its start to its port's first answer (it comes up
        in the background, beside the other stages)."""
        lite = self._lite
        if lite is None or lite.ready_after is None:
            return {}
        return {"milvus_lite_start": {"seconds": round(lite.ready_after, 3), "background": True}}

    def kill_milvus(self) -> None:
        """SIGKILL the Milvus Lite server (a fault the tests inject: DEDUP_FAULT=kill-milvus:STAGE)."""
        self.start_milvus()
        if self._lite is not None and self._lite.proc is not None:
            self._lite.wait_ready()
            self._lite.proc.kill()
            self._lite.proc.wait()

    def close(self) -> None:
        with self._lock:
            if self._lite is not None:
                self._lite.stop()
                self._lite = None
