"""python -m bench --hard's scoring (bench.hard): per edit family, the copies found with their photo and
those put with another photo; the held-out part reported last. The corpora themselves need AugLy's own
venv (bench/hard/install.sh), so the job on them is a bench run, not a test."""
import pandas as pd

from bench import hard


def _truth():
    rows = [("o/a.jpg", "a", "template", "original"), ("t/a.jpg", "a", "template", "screenshot"),
            ("o/b.jpg", "b", "template", "original"), ("t/b.jpg", "b", "template", "screenshot"),
            ("o/c.jpg", "c", "heldout", "original"), ("h/c.jpg", "c", "heldout", "shear_pad")]
    return pd.DataFrame(rows, columns=["path", "group", "part", "edit"])


def test_families_count_copies_with_their_photo_and_with_another():
    truth = _truth()
    manifest = pd.DataFrame({"path": ["o/a.jpg", "t/a.jpg", "o/b.jpg", "t/b.jpg", "o/c.jpg", "h/c.jpg"],
                             "cluster_id": [0, 1, 2, 1, 3, 3]})  # the two screenshots together, c found
    fam = hard.families(manifest, truth).set_index("edit")
    assert fam.loc["screenshot", "with_photo"] == 0 and fam.loc["screenshot", "with_another_photo"] == 2
    assert fam.loc["shear_pad", "with_photo"] == 1 and fam.loc["shear_pad", "with_another_photo"] == 0


def test_unlisted_images_are_their_own_clusters():
    manifest = pd.DataFrame({"path": ["o/a.jpg", "t/a.jpg"], "cluster_id": [0, 0]})
    fam = hard.families(manifest, _truth()).set_index("edit")
    assert fam.loc["screenshot", "copies"] == 2 and fam.loc["screenshot", "with_photo"] == 1
    assert fam.loc["screenshot", "with_another_photo"] == 0


def test_the_held_out_part_comes_last():
    part = {"pair_precision": 1.0, "pair_recall": 1.0, "pair_f1": 1.0, "wrongly_removed": 0, "missed": 0, "kept_original": 1.0}
    report = {"machine": {"cpus": 2}, "seeds": {0: {
        "whole": {"pair_precision": 1.0, "pair_recall": 1.0, "wrongly_removed": 0},
        "parts": {"heldout": part, "template": part, "warp": part},
        "families": [{"part": "heldout", "edit": "shear_pad", "copies": 1, "with_photo": 1, "with_another_photo": 0},
                     {"part": "warp", "edit": "letterbox", "copies": 1, "with_photo": 1, "with_another_photo": 0}],
        "verify": {"edges_checked": 3, "template_pairs": 1, "cpu_ms_per_pair": 5.0}}}}
    md = hard.to_markdown(report)
    assert md.index("| template |") < md.index("| heldout |")
    assert md.index("| warp | letterbox") < md.index("| heldout | shear_pad")


def test_the_albumentations_corpus_says_what_was_chosen_on_it():
    part = {"pair_precision": 1.0, "pair_recall": 1.0, "pair_f1": 1.0, "wrongly_removed": 0, "missed": 0, "kept_original": 1.0}
    report = {"machine": {"cpus": 2}, "maker": "albu", "seeds": {0: {
        "whole": {"pair_precision": 1.0, "pair_recall": 1.0, "wrongly_removed": 0}, "parts": {"negatives": part},
        "families": [{"part": "negatives", "edit": "polaroid", "copies": 1, "with_photo": 1, "with_another_photo": 0}],
        "verify": {"edges_checked": 3, "template_pairs": 1, "cpu_ms_per_pair": 5.0}}}}
    md = hard.to_markdown(report)
    assert md.startswith("# Hard cases made with albumentations") and "make_albu.py" in md and "not held out" in md


def test_a_family_without_its_photos_has_no_with_photo_count():
    halves = pd.DataFrame([("n/x_left.jpg", "x__left", "negatives", "split_crops"), ("n/x_right.jpg", "x__right", "negatives", "split_crops")],
                          columns=["path", "group", "part", "edit"])
    truth = pd.concat([_truth(), halves], ignore_index=True)
    manifest = pd.DataFrame({"path": truth["path"], "cluster_id": range(len(truth))})
    rows = hard.families(manifest, truth).to_dict(orient="records")
    counts = {r["edit"]: (r["with_photo"], r["with_another_photo"]) for r in rows}
    assert counts["split_crops"] == (None, 0) and counts["screenshot"] == (0, 0) and type(counts["screenshot"][0]) is int


def test_a_part_without_originals_shows_no_kept_original():
    part = {"pair_precision": 1.0, "pair_recall": 1.0, "pair_f1": 1.0, "wrongly_removed": 0, "missed": 0, "kept_original": float("nan")}
    report = {"machine": {"cpus": 2}, "maker": "tv", "seeds": {0: {
        "whole": {"pair_precision": 1.0, "pair_recall": 1.0, "wrongly_removed": 0}, "parts": {"negatives": part},
        "families": [{"part": "negatives", "edit": "five_crop", "copies": 4, "with_photo": None, "with_another_photo": 0}],
        "verify": {"edges_checked": 3, "template_pairs": 0, "cpu_ms_per_pair": 5.0}}}}
    md = hard.to_markdown(report)
    assert md.startswith("# Hard cases made with torchvision") and "| negatives | 1.000 | 1.000 | 1.000 | 0 | 0 | - |" in md
