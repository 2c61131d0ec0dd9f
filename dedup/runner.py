"""The runner: runs the job's stages in order and owns everything that makes them one job.

For each stage (:class:`dedup.stages.base.Stage`), in the order given:

1. wait for the background stages it comes after;
2. fingerprint it: its own :meth:`~Stage.fingerprint` and those of the stages it comes after;
3. reuse: when ``state.json`` holds the same fingerprint, its artifacts exist and :meth:`~Stage.load`
   gives a result back, that is the stage's result (``reused`` in the summary);
4. otherwise forget it and every stage downstream of it in ``state.json``, run it, and record its
   fingerprint (and :attr:`StageResult.state`) once it has finished (a stage without a fingerprint runs
   every time and records nothing: what depends on its result has it in its own fingerprint);
5. time it and keep its metrics for the summary.

Ray starts (``start_ray``) just before the first stage that needs it; the stages before that one (the
weights check, discovery of local inputs) run on the runner's threads beside it. On a re-run (``state.json``
holds stages) a stage that would start it is asked first, once its inputs are done, whether it will be
reused or needs Ray at all (:meth:`~Stage.needs_ray_now`): a run where nothing changed never starts Ray. Stages marked
``background`` run on a thread beside the stages after them; the runner joins each before
the first stage that comes after it, and all of them before it returns (also when a stage fails). A
stage that fails stops the run with an error naming it (:class:`StageFailed`); what finished before is
in ``state.json``, so the same command afterwards resumes from there.

Fault injection for the tests (``DEDUP_FAULT``): ``kill:STAGE`` makes the process SIGKILL itself inside
STAGE, once its work is done (or its earlier result loaded) and before it is recorded as finished (the
worst moment: files on disk that ``state.json`` does not vouch for); ``kill-milvus:STAGE`` kills the run's Milvus Lite server as STAGE
starts.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from dedup.stages.base import Stage, StageContext, StageResult
from dedup.summary import stage_line


class StageFailed(RuntimeError):
    """A stage raised: the message names it; the original exception is the cause."""

    def __init__(self, stage: str, exc: BaseException):
        super().__init__(f"stage {stage} failed: {type(exc).__name__}: {exc}")
        self.stage = stage


def fingerprint(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RunState:
    """``state.json`` in the output folder: the finished stages, each with its fingerprint (atomic writes)."""

    def __init__(self, path: Path, fresh: bool = False):
        self.path = Path(path)
        self.data: dict = {}
        self._lock = threading.Lock()
        if self.path.exists() and not fresh:
            try:
                self.data = json.loads(self.path.read_text())
            except ValueError:
                self.data = {}

    def get(self, stage: str) -> dict:
        return self.data.get(stage) or {}

    def finish(self, stage: str, fp: str, **extra) -> None:
        with self._lock:
            self.data[stage] = {"fingerprint": fp, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
            self._write()

    def forget(self, *stages: str) -> None:
        with self._lock:
            if any(s in self.data for s in stages):
                for s in stages:
                    self.data.pop(s, None)
                self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)


class Runner:
    def __init__(self, stages: list[Stage], ctx: StageContext, state: RunState, given: dict[str, tuple] | None = None,
                 start_ray=None):
        """``given``: results of stages not in ``stages`` (name -> (value, fingerprint)), e.g. the scale
        bench's synthetic vectors standing in for `decode_embed`. ``start_ray``: starts (or joins) Ray, on
        this thread, before the first stage that needs it; the stages before that one run beside it, on
        the runner's threads (None: Ray is up already)."""
        self.stages, self.ctx, self.state = stages, ctx, state
        self.start_ray = start_ray
        self.ray_up = start_ray is None
        self.startup: dict[str, dict] = {}  # the start-up's own lines (Ray's start), beside the stages
        self.fps: dict[str, str | None] = {}
        self._fp_memo: dict[str, str | None] = {}  # a stage's fingerprint, once its inputs are done
        self.timings: dict[str, dict] = {}
        for name, (value, fp) in (given or {}).items():
            ctx.values[name], self.fps[name] = value, fp
        ctx.stages = {st.name for st in stages} | set(given or {})
        self._fault = os.environ.get("DEDUP_FAULT", "")

    def downstream(self, name: str) -> list[str]:
        """Every stage that depends on ``name`` in this run, directly or through others."""
        out: list[str] = []
        frontier = {name}
        for st in self.stages:
            if frontier & set(st.depends(self.ctx)):
                out.append(st.name)
                frontier.add(st.name)
        return out

    def run(self) -> dict[str, dict]:
        pending: dict[str, Future] = {}
        rerun = bool(self.state.data)  # as it was before this run recorded anything
        with ThreadPoolExecutor(2, thread_name_prefix="dedup-stage") as pool:
            try:
                for st in self.stages:
                    if not self.ray_up and not st.needs_ray(self.ctx):
                        self._join_deps(st, pending)
                        pending[st.name] = pool.submit(self._one, st)  # beside Ray's start-up
                        continue
                    if not self.ray_up and rerun:  # this stage may need no Ray after all
                        self._join_deps(st, pending)
                        if self._reusable(st) or not st.needs_ray_now(self.ctx):
                            self._one(st)
                            continue
                    if not self.ray_up:
                        self._start_ray(beside=list(pending))
                    self._join_deps(st, pending)
                    if st.in_background(self.ctx):
                        pending[st.name] = pool.submit(self._one, st)
                    else:
                        self._one(st)
            finally:
                for f in pending.values():  # never leave a background stage running (or its error unseen)
                    f.exception()
        for f in pending.values():
            f.result()
        return self.timings

    def _join_deps(self, st: Stage, pending: dict[str, Future]) -> None:
        for dep in st.depends(self.ctx):
            if dep in pending:
                pending.pop(dep).result()

    def _fingerprint(self, st: Stage) -> str | None:
        """Computed once per run (the kept image's hashes its inputs): asked before Ray starts on a re-run, and
        again when the stage loads or runs, with the same inputs done."""
        if st.name not in self._fp_memo:
            parts = st.fingerprint(self.ctx)
            deps = [self.fps.get(d) for d in st.depends(self.ctx)]
            self._fp_memo[st.name] = None if parts is None else fingerprint(st.name, parts, deps)
        return self._fp_memo[st.name]

    def _reusable(self, st: Stage) -> bool:
        """Whether ``state.json`` holds this stage's fingerprint and its artifacts exist (its inputs done)."""
        fp = self._fingerprint(st)
        return fp is not None and self.state.get(st.name).get("fingerprint") == fp and all(p.exists() for p in st.artifacts(self.ctx))

    def _start_ray(self, beside: list[str]) -> None:
        self.ray_up = True
        t0 = time.perf_counter()
        _say("[dedup] ray start ...")
        self.start_ray()
        self.startup["ray_start"] = {"seconds": round(time.perf_counter() - t0, 3), "beside": beside}
        _say(f"[dedup] ray start: {time.perf_counter() - t0:.1f} s" + (f", beside {', '.join(beside)}" if beside else ""))

    def _one(self, st: Stage) -> None:
        t0 = time.perf_counter()
        _say(f"[dedup] {st.name} ...")
        try:
            res, reused, fp = self._load_or_run(st)
        except StageFailed:
            raise
        except BaseException as e:
            raise StageFailed(st.name, e) from e
        seconds = time.perf_counter() - t0
        self.fps[st.name] = fp
        self.ctx.values[st.name] = res.value
        self.timings[st.name] = self._timing(st, res, reused, seconds)
        _say(f"[dedup] {stage_line(st.name, seconds, res.metrics, st.items, reused)}")

    def _load_or_run(self, st: Stage) -> tuple[StageResult, bool, str | None]:
        fp = self._fingerprint(st)
        stored = self.state.get(st.name)
        if self._reusable(st):
            res = st.load(self.ctx, stored)
            if res is not None:
                self._maybe_kill(st)
                return res, True, fp
        if not self.ray_up and st.needs_ray_now(self.ctx):  # reusable after all it was not (a lower threshold)
            self._start_ray(beside=[])
        if fp is not None:  # a recorded stage reruns: what was built on its old result goes too
            self.state.forget(st.name, *self.downstream(st.name))
        if self._fault == f"kill-milvus:{st.name}":
            self.ctx.services.kill_milvus()
        res = st.run(self.ctx)
        self._maybe_kill(st)
        if fp is not None:
            self.state.finish(st.name, fp, **res.state)
        return res, False, fp

    @staticmethod
    def _timing(st: Stage, res: StageResult, reused: bool, seconds: float) -> dict:
        entry = {"seconds": round(seconds, 3)}
        items = res.metrics.get(st.items) if st.items else None
        if items is not None and not reused:
            entry[f"{st.items}_per_second"] = round(items / seconds, 2) if seconds > 0 else None
        if reused:
            entry["reused"] = True
        entry.update(res.metrics)
        return entry

    def _maybe_kill(self, st: Stage) -> None:
        """The test hook (DEDUP_FAULT=kill:STAGE): die now, as a lost machine or an OOM kill would."""
        if self._fault == f"kill:{st.name}":
            print("[dedup] DEDUP_FAULT: killing the job process", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


def _say(line: str) -> None:
    """One line on stderr in one write: two stages on two threads never share a line (print writes the
    line and its newline apart)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


__all__ = ["Runner", "RunState", "StageFailed", "fingerprint"]
