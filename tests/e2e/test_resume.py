"""Re-runs and resume: stored stages are reused, a changed parameter reruns only what it affects (a run
killed in the middle of the embedding, and in every other stage: tests/e2e/test_faults.py)."""
from pathlib import Path

import pandas as pd
import pytest

from dedup import run
from dedup.config import DedupConfig
from dedup.synth import make_corpus

COMPARE = ["path", "cluster_id", "canonical_path", "is_canonical", "similarity_to_canonical", "sha"]


def manifest(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "manifest.csv")[COMPARE].sort_values("path").reset_index(drop=True)


@pytest.mark.slow
def test_rerun_reuses_stages_and_rethreshold_reruns_only_search(ray_local, tmp_path, monkeypatch):
    root = tmp_path / "corpus"
    make_corpus(root)
    out = tmp_path / "out"
    cfg = dict(inputs=[str(root)], output=str(out), model="thumb")
    first = run(DedupConfig(**cfg, threshold=0.9))
    assert first["reused_stages"] == []
    before = manifest(out)

    again = run(DedupConfig(**cfg, threshold=0.9))
    assert set(again["reused_stages"]) == {"discover", "decode_embed", "store", "search", "canonical", "attach"}
    assert "ray_start" not in again["timeline"]  # nothing to do on Ray: it is not started
    pd.testing.assert_frame_equal(manifest(out), before)
    assert again["stages"]["canonical"]["candidates"] == first["stages"]["canonical"]["candidates"]  # its metrics kept

    # an output written before the embedding's resources were recorded in state.json: still reused, Ray not asked
    import json

    from dedup.stages.decode_embed import DecodeEmbedStage

    state = json.loads((out / "state.json").read_text())
    state["decode_embed"].pop("embed_resources")
    (out / "state.json").write_text(json.dumps(state))
    monkeypatch.setattr(DecodeEmbedStage, "_resources", staticmethod(lambda ctx: pytest.fail("Ray asked on a reuse")))
    older = run(DedupConfig(**cfg, threshold=0.9))
    assert "decode_embed" in older["reused_stages"] and older["parameters"]["embed_resources"] == {"recorded": False}
    monkeypatch.undo()

    # a higher threshold filters the stored edges: no search, same result as a fresh run at that threshold
    higher = run(DedupConfig(**cfg, threshold=0.97))
    assert set(higher["reused_stages"]) - {"canonical", "attach"} == {"discover", "decode_embed", "store", "search"}  # canonical: where its edges did not change
    assert higher["stages"]["search"]["filtered_from_threshold"] == 0.9
    fresh_out = tmp_path / "fresh"
    run(DedupConfig(inputs=[str(root)], output=str(fresh_out), model="thumb", threshold=0.97))
    pd.testing.assert_frame_equal(manifest(out), manifest(fresh_out))

    # a lower one searches again, with the stored vectors and the stored Milvus collection
    lower = run(DedupConfig(**cfg, threshold=0.8))
    assert set(lower["reused_stages"]) == {"discover", "decode_embed", "store"}
    assert lower["search"]["queries"] == 17

    # a changed model reruns decode+embed and everything after it; --fresh recomputes all
    assert set(run(DedupConfig(**cfg, threshold=0.8, image_size=192))["reused_stages"]) == {"discover"}
    assert run(DedupConfig(**cfg, threshold=0.8, fresh=True))["reused_stages"] == []


@pytest.mark.slow
def test_a_file_added_or_changed_since_the_stored_run_is_found(ray_local, tmp_path):
    """The same command after the input folder changed: discovery runs again (it is not reused on the
    options alone), so no new or changed file is left out."""
    import shutil

    root = tmp_path / "corpus"
    make_corpus(root)
    out = tmp_path / "out"
    cfg = dict(inputs=[str(root)], output=str(out), model="thumb", threshold=0.9)
    first = run(DedupConfig(**cfg))
    new = root / "added.jpg"
    shutil.copy(sorted(root.rglob("*.jpg"))[0], new)
    again = run(DedupConfig(**cfg))
    assert "discover" not in again["reused_stages"]
    assert again["stages"]["discover"]["files"] == first["stages"]["discover"]["files"] + 1
    assert str(new) in set(manifest(out)["path"])
    assert "discover" in run(DedupConfig(**cfg))["reused_stages"]  # unchanged since: reused
