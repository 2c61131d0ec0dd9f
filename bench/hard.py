"""``python -m bench --hard``: the default job on corpora of hard cases made with AugLy, scored by part and edit.

The corpora come from ``bench/hard/make_corpus.py`` (Meta's AugLy in its own virtualenv, ``bench/hard/install.sh``;
see ``bench/hard/README.md``): templates (different photos in one screenshot, under one meme caption or one
watermark), padded and warped copies, and a ``heldout`` part of other families and other photos that nothing
was chosen on. Each seed is one corpus; its ``heldout`` part is reported last, apart. Per edit family: the
copies found with their photo, the copies put with another photo, and each part's pair precision and recall.
Writes ``RESULTS/hard.md`` and ``RESULTS/hard.json``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.score import score
from dedup.config import DedupConfig

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = Path("bench/work/augly-venv/bin/python")
@dataclass(frozen=True)
class Maker:
    """A maker of hard-case corpora: its venv's python, the script that makes that venv (None: the project's), the generator, the
    work dirs' and results' name (``WORK/<name>-seed<N>``, ``RESULTS/<name>.md``), the title, what was held out."""

    venv: Path
    install: str | None
    script: str
    name: str
    title: str
    held_out: str


MAKERS = {
    "augly": Maker(VENV_PYTHON, "bench/hard/install.sh", "bench/hard/make_corpus.py", "hard",
                   "Hard cases made with AugLy (`python -m bench --hard`)",
                   "The `heldout` part (other families, other photos) was never looked at while choosing; it is reported last."),
    "albu": Maker(Path("bench/work/albu-venv/bin/python"), "bench/hard/install_albu.sh", "bench/hard/make_albu.py", "albu",
                  "Hard cases made with albumentations (`python -m bench --albu`)",
                  "Made after every choice of the AugLy corpora; nothing of the kept image was chosen on it. Seed 0's polaroid cards "
                  "and seed 1's shared tiles led to two rules of the check (`docs/how-it-decides.md`: open triangles, shared "
                  "regions): for those two, its figures are not held out."),
    "tv": Maker(Path(".venv/bin/python"), None, "bench/hard/make_tv.py", "tv",
                "Hard cases made with torchvision (`python -m bench --tv`)",
                "Made after every choice of the AugLy and albumentations corpora, with the project's own torchvision "
                "(`torchvision.transforms.v2`: the augmentation policies RandAugment, TrivialAugment, AugMix, AutoAugment "
                "and single edits). Its first run's solarized copies led to one rule of the check (`docs/how-it-decides.md`: "
                "inverted content agrees), and seeds 0 and 1's reflect_pad copies to one of the kept image (`docs/how-it-decides.md`: "
                "pads that repeat the picture): for those its figures are not held out; seed 2 was made and run after both, "
                "and nothing else was chosen on it."),
}


def build(src: Path, out: Path, seed: int, maker: str = "augly") -> Path:
    """The seed's corpus (built once; the maker's install script makes its venv where it is missing)."""
    if (out / "truth.csv").exists():
        return out / "truth.csv"
    m = MAKERS[maker]
    python = ROOT / m.venv
    if not python.exists() and m.install:
        subprocess.run(["bash", str(ROOT / m.install)], check=True)
    subprocess.run([str(python), str(ROOT / m.script), "--src", str(src), "--out", str(out), "--seed", str(seed)], check=True)
    return out / "truth.csv"


def families(manifest: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per (part, edit) family: copies, those in their photo's cluster, those in a cluster with another photo."""
    df = truth.merge(manifest[["path", "cluster_id"]], on="path", how="left")
    df["cluster_id"] = df["cluster_id"].fillna(pd.Series(-1 - np.arange(len(df)), index=df.index))
    orig = df[df["edit"] == "original"].groupby("group")["cluster_id"].first()
    groups_in = df.groupby("cluster_id")["group"].nunique()
    rows = []
    for (part, edit), g in df[df["edit"] != "original"].groupby(["part", "edit"]):
        photo = orig.reindex(g["group"]).to_numpy()
        rows.append({"part": part, "edit": edit, "copies": len(g),
                     # None where no file of the family has its photo in the corpus (the halves of one photo)
                     "with_photo": int((g["cluster_id"].to_numpy() == photo).sum()) if pd.notna(photo).any() else None,
                     "with_another_photo": int((groups_in.reindex(g["cluster_id"]).to_numpy() > 1).sum())})
    return pd.DataFrame(rows, dtype=object)  # with_photo may be None: no float column of counts


def score_corpus(out: Path, truth: pd.DataFrame) -> dict:
    manifest = pd.read_parquet(out / "manifest.parquet")
    parts = {}
    for part, sub in truth.groupby("part"):
        s = score(manifest[manifest["path"].isin(sub["path"])], sub)
        parts[part] = {k: s[k] for k in ("pair_precision", "pair_recall", "pair_f1", "wrongly_removed", "missed", "kept_original")}
    summary = json.loads((out / "summary.json").read_text())
    return {"whole": score(manifest, truth), "parts": parts, "families": families(manifest, truth).to_dict(orient="records"),
            "verify": summary["stages"].get("verify", {}), "seconds": summary.get("total_seconds")}


def hard_bench(src: Path, work: Path, results: Path, seeds=(0,), maker: str = "augly") -> dict:
    """The default job on each seed's corpus of ``maker`` (:data:`MAKERS`), scored; RESULTS/<name>.md and .json."""
    from bench.run import first_run

    name = MAKERS[maker].name
    report = {"machine": {"cpus": os.cpu_count()}, "maker": maker, "seeds": {}}
    for seed in seeds:
        truth_path = build(src, work / f"{name}-seed{seed}", seed, maker)
        truth = pd.read_csv(truth_path)
        truth["path"] = [str((truth_path.parent / p).resolve()) for p in truth["path"]]
        out = work / f"out-{name}-seed{seed}"
        first_run(DedupConfig(inputs=[str(truth_path.parent)], output=str(out)))  # a first run: nothing reused, no cache
        report["seeds"][seed] = score_corpus(out, truth)
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(report, indent=2, default=str))
    md = to_markdown(report)
    (results / f"{name}.md").write_text(md)
    print(md)
    return report


def _part_rows(parts: dict, names) -> list[str]:
    kept = lambda k: "-" if k is None or k != k else f"{k:.3f}"  # noqa: E731 - no original in the part (the corners of a photo)
    return [f"| {p} | {s['pair_precision']:.3f} | {s['pair_recall']:.3f} | {s['pair_f1']:.3f} | {int(s['wrongly_removed'])} | "
            f"{int(s['missed'])} | {kept(s['kept_original'])} |" for p, s in parts.items() if p in names]


def to_markdown(report: dict) -> str:
    m = MAKERS[report.get("maker", "augly")]
    lines = [f"# {m.title}", "",
             f"The default job (`dedup run --input CORPUS`, SSCD, verify band 0.30-0.90) on each seed's corpus "
             f"(`{m.script}`), {report['machine']['cpus']} CPUs. {m.held_out}", ""]
    for seed, r in report["seeds"].items():
        v = r["verify"]
        lines += [f"## Seed {seed}", "",
                  f"Whole corpus: pair precision {r['whole']['pair_precision']:.4f}, recall {r['whole']['pair_recall']:.4f}, "
                  f"wrongly removed {r['whole']['wrongly_removed']}; content check: {v.get('edges_checked')} pairs, "
                  f"{v.get('template_pairs')} rejected as templates, {v.get('cpu_ms_per_pair')} ms of CPU per pair checked.", "",
                  "| part | pair precision | pair recall | F1 | wrongly removed | missed | kept original |", "|---|---|---|---|---|---|---|"]
        tuned = [p for p in r["parts"] if p != "heldout"]
        lines += _part_rows(r["parts"], tuned) + _part_rows(r["parts"], ["heldout"])
        lines += ["", "| part | edit | copies | with their photo | with another photo |", "|---|---|---|---|---|"]
        fams = sorted(r["families"], key=lambda f: (f["part"] == "heldout", f["part"], f["edit"]))
        lines += [f"| {f['part']} | {f['edit']} | {f['copies']} | {'-' if f['with_photo'] is None else f['with_photo']} | "
                  f"{f['with_another_photo']} |" for f in fams]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    hard_bench(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
