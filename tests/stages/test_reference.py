"""Deduplicating new images against an earlier run (stages `reference`, `search_reference`): exact and
edited copies of reference images, copies among the new ones, new singletons; no reference image is ever
removed, the reference folder is left as it was, and only the new images are embedded."""
import hashlib

import pandas as pd
import pytest
from helpers import tiny_sscd_onnx
from PIL import ImageEnhance

from dedup import run
from dedup.config import ConfigError, DedupConfig
from dedup.stages.reference import ReferenceError
from dedup.synth import encode, textured_image, write


def _snapshot(folder) -> dict:
    """Every file under ``folder`` with its size and SHA-256 (to show nothing was written there)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    model = tmp / "tiny.onnx"
    model.write_bytes(tiny_sscd_onnx())
    old = tmp / "old"
    photos = {name: textured_image(seed) for name, seed in zip("ABCDEF", range(50, 56))}
    for name, img in photos.items():
        write(old / f"{name}.jpg", encode(img))
    write(old / "A_copy.jpg", encode(photos["A"].resize((240, 180))))  # a duplicate inside the reference
    ref_out = tmp / "ref-out"
    run(DedupConfig(inputs=[str(old)], output=str(ref_out), weights=str(model)))
    return tmp, model, photos, old, ref_out


def _make_new(tmp, photos, old):
    """An exact and two edited copies of reference images, a new photo with its copy, two new singletons."""
    new = tmp / "new"
    g = textured_image(70)
    files = {
        "A_exact.jpg": (old / "A.jpg").read_bytes(),
        "B_edited.jpg": encode(ImageEnhance.Brightness(photos["B"].resize((400, 300))).enhance(1.2), quality=70),
        "C_crop.jpg": encode(photos["C"].crop((30, 20, 420, 320))),
        "G.jpg": encode(g),
        "G_small.jpg": encode(g.resize((240, 180))),
        "H.jpg": encode(textured_image(71)),
        "I.jpg": encode(textured_image(72)),
    }
    for name, data in files.items():
        write(new / name, data)
    return new


@pytest.mark.slow
def test_new_images_against_a_reference_run(reference):
    tmp, model, photos, old, ref_out = reference
    new = _make_new(tmp, photos, old)
    before = _snapshot(ref_out), _snapshot(old)
    out = tmp / "new-out"
    summary = run(DedupConfig(inputs=[str(new)], output=str(out), weights=str(model), references=[str(ref_out)]))
    assert (_snapshot(ref_out), _snapshot(old)) == before  # the reference's files, vectors and collection untouched
    man = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    by = man.set_index(man["path"].str.rsplit("/", n=1).str[1])
    assert set(by.index) == {"A_exact.jpg", "B_edited.jpg", "C_crop.jpg", "G.jpg", "G_small.jpg", "H.jpg", "I.jpg"}  # new images only
    for name, ref in (("A_exact.jpg", "A.jpg"), ("B_edited.jpg", "B.jpg"), ("C_crop.jpg", "C.jpg")):
        assert by.loc[name, "match"] == "reference" and not by.loc[name, "is_canonical"], name
        assert by.loc[name, "reference_path"] == str(old / ref) == by.loc[name, "canonical_path"], name
    assert by.loc["A_exact.jpg", "similarity_to_canonical"] == 1.0
    assert by.loc["G_small.jpg", "canonical_path"] == str(new / "G.jpg") and by.loc["G_small.jpg", "match"] == "near"
    assert by.loc["G.jpg", "is_canonical"] and by.loc["H.jpg", "is_canonical"] and by.loc["I.jpg", "is_canonical"]
    assert by.loc["G.jpg", "reference_path"] == ""
    removed = (out / "remove.txt").read_text().split()
    assert set(removed) == {str(new / n) for n in ("A_exact.jpg", "B_edited.jpg", "C_crop.jpg", "G_small.jpg")}
    assert not any(p.startswith(str(old)) for p in (out / "keep.txt").read_text().split())  # keep.txt: new images only
    c = summary["counts"]
    assert c["reference_matches"] == 3 and c["exact_copies_of_reference"] == 1 and c["images"] == 7
    assert summary["stages"]["decode_embed"]["images"] == 6  # the exact copy of A was not embedded
    assert summary["stages"]["reference"]["reference_images"] == 7
    page = (out / "report.html").read_text()
    assert 'id="reference-matches"' in page


@pytest.mark.slow
def test_reference_only_is_the_contamination_check(reference):
    tmp, model, photos, old, ref_out = reference
    new = _make_new(tmp, photos, old)
    out = tmp / "only-out"
    summary = run(DedupConfig(inputs=[str(new)], output=str(out), weights=str(model), references=[str(ref_out)], reference_only=True))
    man = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    by = man.set_index(man["path"].str.rsplit("/", n=1).str[1])
    assert (by["match"] == "reference").sum() == 3
    assert by.loc["G_small.jpg", "is_canonical"]  # no new-vs-new dedup
    assert "search" not in summary["stages"]


def test_a_reference_embedded_differently_is_refused(reference, tmp_path):
    tmp, model, photos, old, ref_out = reference
    new = _make_new(tmp, photos, old)
    with pytest.raises(Exception, match="embedded differently"):
        run(DedupConfig(inputs=[str(new)], output=str(tmp_path / "o"), weights=str(model), preprocess="center-crop",
                        references=[str(ref_out)]))
    with pytest.raises(Exception, match="not the output folder of a finished dedup run"):
        run(DedupConfig(inputs=[str(new)], output=str(tmp_path / "o2"), weights=str(model), references=[str(tmp_path)]))
    with pytest.raises(ConfigError, match="--reference-only needs --reference"):
        DedupConfig(inputs=["x"], reference_only=True).validate()
    assert ReferenceError
