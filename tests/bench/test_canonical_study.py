"""The canonical study's pieces on made images: the reposts hard case, the re-choice per variant, the
lattice scores by relation and the enlarged margin's trade."""
import pandas as pd
import pytest

from dedup import run
from bench import canonical_study as study
from dedup.config import DedupConfig
from dedup.synth import encode, textured_image, write


def test_variants_leave_out_each_rule_once():
    from dedup.ops.canonical import RULE_NAMES

    v = study.variants()
    assert next(iter(v)) == "default" and all(f"without {n}" in v for n in RULE_NAMES)
    assert [n for n, _ in v["central after picture"][0]].index("central") == list(RULE_NAMES).index("picture")


@pytest.mark.slow
def test_reposts_rechosen_per_variant(ray_local, tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        write(src / f"p{i}.jpg", encode(textured_image(60 + i), "JPEG", quality=95))
    truth_path = study.build_reposts(src, tmp_path / "reposts", every=1)
    truth = pd.read_csv(truth_path)
    assert len(truth) == 12 and set(truth["edit"]) == {"original", "caption95", "caption95_q85", "caption95_q70"}
    out = tmp_path / "reposts" / "out"
    run(DedupConfig(inputs=[str(tmp_path / "reposts" / "images")], output=str(out), model="thumb", threshold=0.8))
    groups, measured, info, sims = study._inputs(out)
    assert len(groups) == 3 and all(len(vs) == 4 for vs in groups.values())
    for rules, kw in study.variants().values():
        share, n = study.kept_original(groups, measured, info, sims, truth, rules, kw)
        assert n == 3 and 0 <= share <= 1
    relations = study.requantized_pairs(groups, measured, info, truth)
    assert all(0 <= r["over 0.5"] <= 1 for r in relations)
    margins = study.enlarge_margins(src, every=1)
    assert [r["margin"] for r in margins] == list(study.MARGINS) and margins[0]["photos"] == 3
