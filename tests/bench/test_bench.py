"""Benchmark pieces: corpus builder, scorer, threshold sweep from stored edges."""
import pandas as pd
import pytest

from bench import corpus
from bench.score import QualityChooser, score, score_parts, sweep
from dedup.config import DedupConfig
from dedup import run
from dedup.synth import base_image, encode, write


def test_score_counts_pairs_losses_and_misses():
    truth = pd.DataFrame({"path": list("abcdef"), "group": ["A", "A", "A", "B", "C", "C"]})
    man = pd.DataFrame(
        {
            "path": list("abcdef"),
            # a,b together (c missed); d wrongly merged with e,f and the kept one is d: e,f's group C loses both
            "cluster_id": [0, 0, 1, 2, 2, 2],
            "is_canonical": [True, False, True, True, False, False],
        }
    )
    s = score(man, truth)
    assert s["true_pairs"] == 3 + 1 and s["predicted_pairs"] == 1 + 3
    assert s["pair_precision"] == 0.5 and s["pair_recall"] == 0.5
    assert s["wrongly_removed"] == 2  # e and f: nothing of group C is kept
    assert s["missed"] == 1  # group A kept twice (a and c)


def test_errors_count_as_kept_singletons():
    truth = pd.DataFrame({"path": ["a", "b"], "group": ["A", "A"]})
    man = pd.DataFrame({"path": ["a"], "cluster_id": [0], "is_canonical": [True]})
    s = score(man, truth)
    assert s["unlisted"] == 1 and s["wrongly_removed"] == 0 and s["missed"] == 1 and s["pair_recall"] == 0.0


@pytest.mark.slow
def test_corpus_builder_and_sweep(ray_local, tmp_path):
    photos = tmp_path / "photos"
    for i in range(10):
        write(photos / f"p{i}.jpg", encode(base_image(200 + i, (320, 240))))
    truth_path = corpus.build(photos, tmp_path / "bench", fraction=0.5, seed=3, hard=0, near_miss=0)
    truth = pd.read_csv(truth_path)
    assert truth["group"].nunique() == 10 and set(truth["part"]) == {"standard"}
    assert (truth["path"].str.contains("/originals/")).sum() == 10
    copies = truth[truth["path"].str.contains("/copies/")]
    assert 5 <= len(copies) <= 20 and copies["group"].nunique() == 5
    assert corpus.build(photos, tmp_path / "bench2", fraction=0.5, seed=3, hard=0, near_miss=0).read_text() == \
        truth_path.read_text().replace("/bench/", "/bench2/")

    out = tmp_path / "out"
    run(DedupConfig(inputs=[str(tmp_path / "bench" / "images")], output=str(out), model="thumb", threshold=0.5))
    at_run = score_parts(pd.read_csv(out / "manifest.csv"), truth)
    curve = sweep(out, truth, [0.5, 0.8, 0.95, 0.999], chooser=QualityChooser(out))
    assert curve.iloc[0].drop(["threshold", "kept_original_largest"]).to_dict() == at_run  # the run's own choice, redone
    assert "kept_original" in at_run and at_run["clusters_with_original"] == 5
    # a higher threshold never predicts more pairs
    assert curve["predicted_pairs"].is_monotonic_decreasing


def test_corpus_parts_hard_copies_and_near_misses(tmp_path):
    """Three parts: near-miss sources are never included themselves, each of their pieces is its own group
    and shares no pixels with another piece (halves, quadrants) or only a thin strip; hard copies are
    copies of an original that is in the corpus."""
    from PIL import Image

    photos = tmp_path / "photos"
    for i in range(20):
        write(photos / f"p{i:02d}.jpg", encode(base_image(400 + i, (320, 240))))
    truth = pd.read_csv(corpus.build(photos, tmp_path / "bench", seed=1, hard=0.3, near_miss=0.25))
    near = truth[truth["part"] == "near_miss"]
    assert len(near) >= 10 and near["group"].is_unique  # 5 sources x 2-3 pieces, each its own group
    sources = near["group"].str.split("__").str[0]
    assert not truth["path"].str.contains("/originals/(?:" + "|".join(sources.unique()) + r")\.").any()
    for src, pieces in near.groupby(sources):
        sizes = [Image.open(p).size for p in pieces["path"]]
        if pieces["edit"].iloc[0] in ("halves", "quadrants"):  # disjoint: together no larger than the photo
            assert sum(w * h for w, h in sizes) <= 320 * 240
    hard = truth[truth["part"] == "hard"]
    originals = hard[hard["edit"] == "original"]
    assert len(originals) == 4 and set(hard["group"]) == set(originals["group"])
    assert set(hard["edit"]) - {"original"} <= set(corpus.HARD_EDITS)


def test_score_parts_scores_each_part_from_the_same_clusters():
    from bench.score import score_parts

    truth = pd.DataFrame({"path": list("abcdef"), "group": ["A", "A", "H", "H", "n1", "n2"],
                          "part": ["standard", "standard", "hard", "hard", "near_miss", "near_miss"]})
    # the two near-miss pieces wrongly merged (one removed), the hard pair missed
    man = pd.DataFrame({"path": list("abcdef"), "cluster_id": [0, 0, 1, 2, 3, 3], "is_canonical": [True, False, True, True, True, False]})
    s = score_parts(man, truth)
    assert s["wrongly_removed"] == 1 and s["bench_wrongly_removed"] == 1 and s["near_miss_wrongly_removed"] == 1
    assert s["hard_f1"] == 0.0 and s["hard_missed"] == 1 and s["bench_f1"] == pytest.approx(2 / 3, abs=1e-4)


@pytest.mark.slow
def test_bench_command_writes_the_table(ray_local, tmp_path):
    from bench.run import bench

    photos = tmp_path / "photos"
    for i in range(6):
        write(photos / f"p{i}.jpg", encode(base_image(300 + i, (320, 240))))
    report = bench(photos, tmp_path / "work", tmp_path / "results", with_models=False, with_peers=False)
    md = (tmp_path / "results" / "bench.md").read_text()
    assert "| ours: --model thumb |" in md and "not measurable here" in md
    assert report["rows"][0]["pair_f1"] >= 0.0 and (tmp_path / "results" / "bench.json").exists()


@pytest.mark.slow
def test_scale_mode_finds_the_planted_pairs(ray_local, tmp_path):
    import numpy as np

    from bench.scale import graph_only, planted_pairs, planted_vectors, scale_run

    vecs, groups = planted_vectors(3000, dim=64, seed=1)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    pairs = planted_pairs(vecs, groups, 0.9)
    assert len(pairs) > 100 and all(groups[a] == groups[b] >= 0 for a, b in pairs)
    r = scale_run(3000, tmp_path, dim=64, threshold=0.9)
    assert r["recall"] == 1.0 and r["edges"] == r["planted_pairs"] == len(planted_pairs(*planted_vectors(3000, 64), 0.9))
    assert r["seconds"]["store"] > 0 and r["peak_driver_mb"] > 0
    sampled = scale_run(3000, tmp_path, dim=64, threshold=0.9, query_every=10, index="IVF_FLAT")
    assert sampled["queries"] == 300 and sampled["recall"] == 1.0
    g = graph_only(10_000, 50_000)
    assert g["edges"] == 50_000 and g["rounds"] >= 1


def test_throughput_corpus_is_distinct_and_reused(tmp_path):
    import hashlib

    from bench.throughput import build_corpus

    photos = tmp_path / "photos"
    for i in range(3):
        write(photos / f"p{i}.jpg", encode(base_image(400 + i, (640, 480))))
    images, info = build_corpus(photos, tmp_path / "tc", 24, workers=2)
    files = sorted(images.rglob("*.jpg"))
    assert len(files) == 24 and info["images"] == 24 and not info["reused"]
    assert len({hashlib.sha1(f.read_bytes()).hexdigest() for f in files}) == 24  # no byte-identical copies
    from PIL import Image
    assert all(320 <= max(Image.open(f).size) <= 640 for f in files)
    again, info2 = build_corpus(photos, tmp_path / "tc", 24)
    assert info2["reused"] and sorted(again.rglob("*.jpg")) == files
    assert not build_corpus(photos, tmp_path / "tc", 12)[1]["reused"]  # another N: made again
    assert len(list(again.rglob("*.jpg"))) == 12


@pytest.mark.slow
def test_throughput_mode_compares_the_job_with_the_bare_model(ray_local, tmp_path):
    from bench.throughput import throughput_bench

    photos = tmp_path / "photos"
    for i in range(4):
        write(photos / f"p{i}.jpg", encode(base_image(500 + i, (400, 300))))
    report = throughput_bench(photos, tmp_path / "work", tmp_path / "results", 16, embed_batch=8, bare_seconds=0)
    assert report["device"]["cpus"] and set(report["models"]) == {"sscd", "sscd-default", "multihash"}
    sscd, mh, default = report["models"]["sscd"], report["models"]["multihash"], report["models"]["sscd-default"]
    assert sscd["config"]["verify"] == "off" and default["config"]["verify"] == "band"  # the job as a user runs it
    assert default["baseline"] == "bare model" and "verify" in default["stages"]
    assert sscd["baseline"] == "bare model" and sscd["bare_model"]["before_job"]["batch"] == 8
    assert sscd["end_to_end_over_baseline"] == round(sscd["end_to_end_images_per_second"] / sscd["bare_model_images_per_second"], 3)
    assert mh["baseline"] == "decode alone" and mh["decode_alone"]["images"] == 16
    for m in (sscd, mh):
        assert m["stages"]["decode_embed"]["images"] == 16
        assert {"ray_start", "shutdown"} <= set(m["timeline"])
    md = (tmp_path / "results" / "throughput-cpu.md").read_text()
    assert "| end to end (" in md and "no GPU" in md


def test_side_by_side_times_whole_processes_and_reads_the_timeline(tmp_path, monkeypatch):
    """The side-by-side mode with stand-in commands for the two tools (the peer is not installed in CI):
    each is timed as a whole process, and our run's summary.json gives the timeline."""
    import json
    import sys

    from bench import peers

    calls, real_timed = [], peers._timed

    def fake_timed(cmd, env=None):
        calls.append(cmd)
        if "run" in cmd:
            out = tmp_path / "out-side-by-side"
            out.mkdir(exist_ok=True)
            (out / "summary.json").write_text(json.dumps({
                "timeline": {"ray_start": {"seconds": 4.0, "beside": ["weights", "discover"]}, "shutdown": {"seconds": 1.0}},
                "stages": {"discover": {"seconds": 0.5}, "decode_embed": {"seconds": 3.0}}}))
        return real_timed([sys.executable, "-c", "pass"])

    imm = tmp_path / "venvs" / "immaculate" / "bin"
    imm.mkdir(parents=True)
    (imm / "immaculate").write_text("")
    monkeypatch.setattr(peers, "venv_python", lambda venv: imm / "python")
    monkeypatch.setattr(peers, "_timed", fake_timed)
    sbs = peers.side_by_side(tmp_path / "imgs", tmp_path, rounds=2)
    assert len(calls) == 4 and sum("multihash" in c for c in calls) == 2
    assert all(r["rc"] == 0 and r["wall_seconds"] > 0 for v in sbs["runs"].values() for r in v)
    assert list(sbs["timeline"]) == ["ray_start", "discover", "decode_embed", "shutdown"]
    md = "\n".join(peers.side_by_side_markdown(sbs, "2 images"))
    assert "| ray_start | 4.0 | beside weights, discover |" in md and "the wall time" in md
