"""The runner (dedup.runner): reuse by fingerprint, forgetting what is downstream of a stage that ran again,
background stages joined before their dependents, failures that name the stage. Plain stages, no Ray."""
import threading
import time

import pytest

from dedup.layout import OutputLayout
from dedup.runner import Runner, RunState, StageFailed
from dedup.stages.base import Stage, StageContext, StageResult


class Cfg:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class Rec(Stage):
    """A stage that records when it ran, with a fingerprint from the config and an artifact of its own."""

    def __init__(self, name, after=(), key="k", background=False, log=None, sleep=0.0, fail=False):
        self.name, self.after, self.key, self.background = name, tuple(after), key, background
        self.log, self.sleep, self.fail = log if log is not None else [], sleep, fail

    def fingerprint(self, ctx):
        return [getattr(ctx.cfg, self.key, None)]

    def artifacts(self, ctx):
        return (ctx.layout.root / f"{self.name}.out",)

    def load(self, ctx, stored):
        return StageResult((ctx.layout.root / f"{self.name}.out").read_text(), {"loaded": True})

    def run(self, ctx):
        self.log.append(("start", self.name, threading.current_thread().name))
        time.sleep(self.sleep)
        if self.fail:
            raise ValueError("boom")
        value = "+".join([self.name] + [str(ctx.values[d]) for d in self.after])
        (ctx.layout.root / f"{self.name}.out").write_text(value)
        self.log.append(("end", self.name))
        return StageResult(value, {"items": 3})


def _run(tmp_path, stages, **cfg):
    ctx = StageContext(Cfg(**cfg), OutputLayout(tmp_path), {}, None)
    r = Runner(stages, ctx, RunState(tmp_path / "state.json"))
    return r.run(), ctx


def test_reuse_and_forgetting_downstream(tmp_path):
    log = []
    chain = lambda: [Rec("a", log=log), Rec("b", ["a"], key="kb", log=log), Rec("c", ["b"], log=log)]  # noqa: E731
    timings, ctx = _run(tmp_path, chain(), k=1, kb=1)
    assert ctx.values["c"] == "c+b+a" and [e[1] for e in log if e[0] == "start"] == ["a", "b", "c"]
    log.clear()
    timings, _ = _run(tmp_path, chain(), k=1, kb=1)
    assert log == [] and all(t.get("reused") for t in timings.values())  # everything taken back
    # b's own parameter changed: b and c (downstream) run again, a is reused
    timings, _ = _run(tmp_path, chain(), k=1, kb=2)
    assert [e[1] for e in log if e[0] == "start"] == ["b", "c"] and timings["a"].get("reused")
    # a missing artifact means: run again
    (tmp_path / "c.out").unlink()
    log.clear()
    _run(tmp_path, chain(), k=1, kb=2)
    assert [e[1] for e in log if e[0] == "start"] == ["c"]


def test_a_rerun_forgets_downstream_before_it_runs(tmp_path):
    _run(tmp_path, [Rec("a"), Rec("b", ["a"])], k=1)
    state = RunState(tmp_path / "state.json")
    assert set(state.data) == {"a", "b"}
    with pytest.raises(StageFailed, match="stage a failed: ValueError: boom"):
        _run(tmp_path, [Rec("a", fail=True), Rec("b", ["a"])], k=2)
    assert RunState(tmp_path / "state.json").data == {}  # neither a nor what was built on it is vouched for


def test_background_stages_run_beside_the_next_and_are_joined_before_their_dependents(tmp_path):
    log = []
    stages = [Rec("a", log=log), Rec("slow", ["a"], background=True, sleep=0.5, log=log), Rec("fast", ["a"], log=log),
              Rec("after_slow", ["slow"], log=log)]
    timings, ctx = _run(tmp_path, stages, k=1)
    order = [(e[0], e[1]) for e in log]
    assert order.index(("end", "fast")) < order.index(("end", "slow"))  # fast did not wait for slow
    assert order.index(("end", "slow")) < order.index(("start", "after_slow"))  # its dependent did
    assert next(e[2] for e in log if e[:2] == ("start", "slow")).startswith("dedup-stage")
    assert ctx.values["after_slow"] == "after_slow+slow+a"


def test_a_failing_background_stage_fails_the_run_with_its_name(tmp_path):
    with pytest.raises(StageFailed, match="stage bg failed"):
        _run(tmp_path, [Rec("a"), Rec("bg", ["a"], background=True, fail=True), Rec("c", ["a"])], k=1)
    assert "bg" not in RunState(tmp_path / "state.json").data


def test_rates_and_given_values(tmp_path):
    class Counted(Rec):
        items = "items"

    ctx = StageContext(Cfg(k=1), OutputLayout(tmp_path), {}, None)
    r = Runner([Counted("b", ["a"])], ctx, RunState(tmp_path / "state.json"), given={"a": ("given", "fp-a")})
    timings = r.run()
    assert ctx.values["b"] == "b+given" and timings["b"]["items"] == 3 and "items_per_second" in timings["b"]


def test_stages_that_need_no_ray_run_beside_its_start(tmp_path):
    class NoRay(Rec):
        def needs_ray(self, ctx):
            return False

    log = []

    def start_ray():
        log.append(("start", "ray", threading.current_thread().name))
        time.sleep(0.3)
        log.append(("end", "ray"))

    stages = [NoRay("w", log=log, sleep=0.2), NoRay("d", log=log, sleep=0.2), NoRay("d2", ["d"], log=log),
              Rec("embed", ["d2", "w"], log=log)]
    ctx = StageContext(Cfg(k=1), OutputLayout(tmp_path), {}, None)
    r = Runner(stages, ctx, RunState(tmp_path / "state.json"), start_ray=start_ray)
    r.run()
    order = [(e[0], e[1]) for e in log]
    assert order.index(("start", "w")) < order.index(("end", "ray")) and order.index(("start", "d")) < order.index(("end", "ray"))
    assert order.index(("end", "d")) < order.index(("start", "d2"))  # a dependency among them is kept
    assert order.index(("end", "ray")) < order.index(("start", "embed")) and order.index(("end", "d2")) < order.index(("start", "embed"))
    assert ctx.values["embed"] == "embed+d2+d+w"
    assert r.startup["ray_start"]["beside"][:1] == ["w"] and r.startup["ray_start"]["seconds"] >= 0.3


def test_a_rerun_with_nothing_changed_never_starts_ray(tmp_path):
    """Ray is started only for a stage that will run and needs it: a re-run that reuses every stage, or
    whose one unfingerprinted stage has nothing to do without Ray (needs_ray_now), starts none; a changed
    parameter starts it just before the first stage that runs."""
    class Cached(Rec):  # no fingerprint (runs every time), but needs Ray only where its cache is short
        def fingerprint(self, ctx):
            return None

        def needs_ray_now(self, ctx):
            return ctx.cfg.cache_short

    starts = []
    log = []

    def go(**cfg):
        ctx = StageContext(Cfg(**cfg), OutputLayout(tmp_path), {}, None)
        stages = [Rec("embed", log=log), Rec("search", ["embed"], key="ks", log=log), Cached("verify", ["search"], log=log)]
        r = Runner(stages, ctx, RunState(tmp_path / "state.json"), start_ray=lambda: starts.append(len(log)))
        return r.run(), ctx

    go(k=1, ks=1, cache_short=True)
    assert starts == [0]  # a first run: Ray before the first stage
    starts.clear()
    timings, ctx = go(k=1, ks=1, cache_short=False)
    assert starts == [] and timings["embed"].get("reused") and timings["search"].get("reused")
    assert ctx.values["verify"] == "verify+search+embed"  # it ran, without Ray
    log.clear()
    go(k=1, ks=2, cache_short=False)  # search's parameter changed: Ray just before it runs
    assert starts == [0] and [e[1] for e in log if e[0] == "start"] == ["search", "verify"]


def test_stage_lines_are_for_a_person():
    from dedup.summary import stage_line

    skipped = {"files": 25, "by_reason": {"not_image": 25}, "by_extension": {".txt": 20, ".json": 5}}
    assert stage_line("discover", 0.61, {"files": 2036, "megabytes": 96.12, "skipped": skipped}, "files") == \
        "discover: 2,036 files, 96.1 MB in 0.6 s - 25 skipped: .txt 20, .json 5"
    assert stage_line("decode_embed", 12.3, {"images": 2036, "decode_errors": 0, "model_seconds": 0.005, "model_images_per_second": 647.46},
                      "images") == "decode_embed: 2,036 images in 12.3 s - 0 decode errors, model 647 images/s"
    assert stage_line("store", 0.8, {"vectors": 3, "step_seconds": {"create": 0.029}, "method": "insert (driver)"}, "vectors") == \
        "store: 3 vectors in 0.8 s - insert (driver)"
    assert stage_line("manifest", 0.1, {"rows": 4}, "rows", reused=True) == "manifest: 4 rows in 0.1 s - reused from an earlier run"
    assert stage_line("other", 1.0, {"a": 1, "b": {"x": 1}, "c": 0.25}) == "other: in 1.0 s - 1 a, 0.25 c"
