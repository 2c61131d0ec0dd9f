"""Stage `verify` in the job: every pair checked on Ray, rejected pairs kept apart and shown in the report,
checks reused on a re-run; the --verify options."""
import pandas as pd
import pytest
from helpers import tiny_sscd_onnx
from PIL import ImageOps

from dedup import run
from dedup.config import ConfigError, DedupConfig
from dedup.ops import verify
from dedup.synth import encode, textured_image, write

P = verify.VerifyParams()


def _corpus(root):
    photo = textured_image(21)
    write(root / "photo.jpg", encode(photo))
    write(root / "photo_crop.jpg", encode(photo.crop((40, 30, 400, 300))))
    write(root / "photo_mirror.jpg", encode(ImageOps.mirror(photo)))
    other = textured_image(22)  # never included itself: its two halves, different content
    write(root / "other_left.jpg", encode(other.crop((0, 0, 240, 360))))
    write(root / "other_right.jpg", encode(other.crop((240, 0, 480, 360))))
    write(root / "third.jpg", encode(textured_image(23)))


@pytest.mark.slow
def test_job_verifies_every_pair_and_keeps_the_halves_apart(ray_local, tmp_path):
    """--verify all at a threshold that lets every pair through: only pairs that share content join."""
    root = tmp_path / "imgs"
    _corpus(root)
    model = tmp_path / "tiny.onnx"
    model.write_bytes(tiny_sscd_onnx())
    out = tmp_path / "out"
    cfg = dict(inputs=[str(root)], output=str(out), weights=str(model), threshold=0.01, verify="all", nn_floor=0.0)
    summary = run(DedupConfig(**cfg))
    first = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    man = first.set_index(first["path"].str.rsplit("/", n=1).str[1])
    assert man.loc["photo_crop.jpg", "cluster_id"] == man.loc["photo.jpg", "cluster_id"] == man.loc["photo_mirror.jpg", "cluster_id"]
    assert man.loc["photo_crop.jpg", "verified"] == "true" and int(man.loc["photo_crop.jpg", "inliers"]) >= P.min_inliers
    assert man.loc["other_left.jpg", "cluster_id"] != man.loc["other_right.jpg", "cluster_id"]
    assert man.loc["other_left.jpg", "is_canonical"] and man.loc["other_right.jpg", "is_canonical"]
    v = summary["stages"]["verify"]
    assert v["edges_checked"] == v["edges"] and v["rejected"] >= 1 and v["images_decoded"] <= 6
    checked = pd.read_parquet(out / "edges_checked.parquet")
    assert set(checked["verified"]) <= {verify.VERIFIED, verify.REJECTED}
    # each passed pair keeps the transform that matched it (the kept-image stage registers with it), no other
    passed = checked["verified"] == verify.VERIFIED
    assert checked.loc[passed, "transform"].notna().all() and checked.loc[~passed, "transform"].isna().all()
    assert all(len(t) == 9 for t in checked.loc[passed, "transform"])
    # the report shows what the check refused, with thumbnails
    page = (out / "report.html").read_text()
    assert 'id="rejected"' in page and page.count('class="rejected-pair"') == min(v["rejected"], 12)
    # a re-run with the same parameters reuses every check
    again = run(DedupConfig(**cfg))
    assert again["stages"]["verify"]["checked_now"] == 0 and again["stages"]["verify"]["reused_checks"] == v["edges_checked"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "manifest.csv", keep_default_na=False), first)


def test_verify_off_and_band_options():
    assert DedupConfig(inputs=["x"]).validate().verify_range() == (0.30, 0.90)
    assert DedupConfig(inputs=["x"], verify="off").validate().verify_range() is None
    assert DedupConfig(inputs=["x"], verify_band=[0.4, 0.7]).validate().threshold == 0.4
    with pytest.raises(ConfigError, match="sets the threshold"):
        DedupConfig(inputs=["x"], verify_band=[0.4, 0.7], threshold=0.5).validate()
    with pytest.raises(ConfigError, match="no calibrated verify band"):
        DedupConfig(inputs=["x"], model="resnet50", verify="band").validate()
    with pytest.raises(ConfigError, match="hash models"):
        DedupConfig(inputs=["x"], model="multihash", verify="all").validate()


def test_the_third_pairs_of_open_triangles_are_checked_and_count_only_as_evidence():
    """The stage's glue: the band's one-frame star (0-1, 0-2, 0-3, one slot differing) gives the pairs that
    close it (:func:`~dedup.stages.verify.wedges`); with their checks added, the band's pairs are a template's,
    and only the band's rows come back (the third pairs are no edges)."""
    import numpy as np

    from dedup.stages.verify import wedges, without_templates

    slot = sum(1 << c for c in range(18, 42))
    band = pd.DataFrame({"a": [0, 0, 0], "b": [1, 2, 3], "ok": [True] * 3, "grid": np.array([slot] * 3, np.int64)})
    a, b = band["a"].to_numpy(), band["b"].to_numpy()
    wa, wb = wedges(band, a, b, P)
    assert sorted(zip(wa.tolist(), wb.tolist())) == [(1, 2), (1, 3), (2, 3)]
    assert not len(wedges(band, a, b, verify.VerifyParams(template_wedges=0))[0])
    alone, found = without_templates(band, a, b)
    assert found == 0 and alone["ok"].all()  # a star alone: no triangle
    third = pd.DataFrame({"a": wa, "b": wb, "ok": [False] * 3, "grid": np.array([slot] * 3, np.int64)})  # one frame, the slot differs
    rows, found = without_templates(pd.concat([band, third], ignore_index=True), a, b, wa, wb)
    assert found == 3 and len(rows) == 3 and not rows["ok"].any()
