"""The README is a front door (at most 300 lines) and its links, and the docs' links, lead somewhere."""
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", text, re.M)}


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for heading in ["## Install", "## Two commands", "## Walk-through: run, look, apply", "## Options that matter",
                    "## Exit codes", "## Outputs", "## Read more"]:
        assert f"\n{heading}\n" in text, heading
    assert "dedup models install" in text and "--help-all" in text


def test_links_in_the_readme_and_the_docs_resolve():
    files = [ROOT / "README.md", ROOT / "cluster" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for f in files:
        text = re.sub(r"```.*?```", "", f.read_text(), flags=re.S)
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+://", link):
                continue
            path, _, anchor = link.partition("#")
            target = Path(os.path.normpath(f.parent / path)) if path else f
            if not target.exists():
                broken.append(f"{f.relative_to(ROOT)}: {link} (no such file)")
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
                broken.append(f"{f.relative_to(ROOT)}: {link} (no such heading)")
    assert not broken, broken
    readme = (ROOT / "README.md").read_text()
    for doc in (ROOT / "docs").glob("*.md"):
        assert f"docs/{doc.name}" in readme, f"README does not lead to docs/{doc.name}"
