"""`dedup report`: the HTML page of a finished run, read back as HTML and loaded in a real headless browser.

The main fixture runs the real job (Ray local, Milvus Lite, ``--model thumb``) on generated images with
exact and near copies, a Parquet shard, a WebDataset tar, a file name full of HTML metacharacters and
broken inputs. The 100k fixture is a synthetic output folder (manifest, edges, errors, summary) of that
size, to check that the page stays capped and bounded.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import shutil
import tarfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from dedup.config import DedupConfig
from dedup import run
from dedup.report import add_parser, histogram_svg, main, write_report
from dedup.synth import base_image, encode, make_corpus, write

ODD_NAME = "<b>&\"odd' name.jpg"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


class Page(HTMLParser):
    """The parts of a report page the tests look at: cluster sections and their members."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.clusters: list[dict] = []
        self.ids: set[str] = set()
        self.svg_lines: list[dict] = []
        self.external: list[str] = []
        self.scripts = 0
        self._member: dict | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        cls = a.get("class", "").split()
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if a.get(key, "").startswith(("http:", "https:", "//")):
                self.external.append(a[key])
        if tag == "section" and "cluster" in cls:
            self.clusters.append({"id": int(a["data-cluster-id"]), "size": int(a["data-size"]), "members": []})
        elif tag == "figure" and "member" in cls:
            self._member = {"canonical": "canonical" in cls, "sim": float(a["data-similarity"]), "match": a["data-match"], "img": None, "placeholder": False}
            self.clusters[-1]["members"].append(self._member)
        elif self._member is not None and tag == "img" and "thumb" in cls:
            self._member["img"] = a["src"]
        elif self._member is not None and tag == "div" and "placeholder" in cls:
            self._member["placeholder"] = True
        elif self._member is not None and tag == "span" and "path" in cls:
            self._member["path"] = a["title"]
        elif tag == "line" and a.get("id") == "threshold-line":
            self.svg_lines.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._member = None


def _tar(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def finished_run(ray_local, tmp_path_factory) -> Path:
    """Output folder of a real run: 3 groups of copies (files, Parquet rows, tar members), 3 broken inputs."""
    root = tmp_path_factory.mktemp("corpus")
    make_corpus(root, groups=3)
    imgs = [base_image(100 + g) for g in range(3)]
    shard_rows = [encode(imgs[0].resize((300, 225)), "JPEG", quality=70), encode(imgs[1].resize((300, 225)), "JPEG", quality=70),
                  encode(base_image(555), "PNG")]
    (root / "shards").mkdir()
    pq.write_table(pa.table({"image": shard_rows}), root / "shards" / "rows.parquet")
    _tar(root / "shards" / "web.tar", {"s000.jpg": encode(imgs[0].rotate(2), "JPEG", quality=80),
                                        "s001.jpg": encode(imgs[2].rotate(2), "JPEG", quality=80)})
    write(root / "odd" / ODD_NAME, encode(imgs[1], "JPEG", quality=85))
    write(root / "bad" / "notes.jpg", b"this is not an image")
    write(root / "bad" / "empty.png", b"")
    write(root / "bad" / "cut.jpg", encode(base_image(7))[:600])
    out = tmp_path_factory.mktemp("out")
    run(DedupConfig(inputs=[str(root)], output=str(out), model="thumb", threshold=0.9))
    return out


def _expected_clusters(out: Path) -> pd.DataFrame:
    man = pd.read_parquet(out / "manifest.parquet")
    return man[man["cluster_size"] > 1]


def test_report_of_a_real_run_shows_clusters_canonicals_and_similarities(finished_run):
    page_path = write_report(finished_run)
    assert page_path == finished_run / "report.html"
    text = page_path.read_text()
    page = Page(text)
    dup = _expected_clusters(finished_run)
    sizes = dup.groupby("cluster_id").size()
    assert len(sizes) == 3 and sorted(sizes) == [5, 6, 6]
    # Largest clusters first (ties by cluster id), every cluster with duplicates shown.
    assert [c["id"] for c in page.clusters] == list(sizes.sort_values(ascending=False, kind="stable").index)
    for c in page.clusters:
        rows = dup[dup["cluster_id"] == c["id"]]
        assert c["size"] == len(rows) == len(c["members"])
        shown = {m["path"]: m for m in c["members"]}
        assert set(shown) == set(rows["path"])  # paths come back unescaped, exactly
        assert c["members"][0]["canonical"] and sum(m["canonical"] for m in c["members"]) == 1
        canon = rows.loc[rows["is_canonical"], "path"].item()
        assert shown[canon]["canonical"] and shown[canon]["match"] == "canonical"
        for r in rows.itertuples():
            assert shown[r.path]["sim"] == pytest.approx(r.similarity_to_canonical, abs=1e-6)
            assert shown[r.path]["match"] == r.match
        # Every member has a real thumbnail: plain files, Parquet rows and tar members alike.
        for m in c["members"]:
            assert not m["placeholder"], m
            assert m["img"].startswith("data:image/jpeg;base64,")
            thumb = Image.open(io.BytesIO(base64.b64decode(m["img"].split(",", 1)[1])))
            assert thumb.format == "JPEG" and max(thumb.size) <= 128
    kinds = {p for c in page.clusters for p in (m["path"] for m in c["members"])}
    assert any("rows.parquet#row=" in p for p in kinds) and any("web.tar#s00" in p for p in kinds)
    # Histogram with the run's threshold, counts, errors by reason, stage timings.
    assert {"histogram-svg", "threshold-line", "counts-table", "errors-table", "timings-table"} <= page.ids
    assert "threshold 0.900" in text
    for reason in ("empty file", "not a recognised image format", "could not decode"):
        assert reason in text
    for stage in ("discover", "decode_embed", "search", "graph", "manifest"):
        assert f"<td>{stage}</td>" in text
    # Self-contained and escaped: no scripts, nothing fetched from elsewhere, no raw path markup.
    assert page.scripts == 0 and page.external == []
    assert ODD_NAME not in text and "&lt;b&gt;&amp;&quot;odd&#x27; name.jpg" in text


def test_no_edges_no_duplicates_no_errors(finished_run, tmp_path):
    """A run where nothing matched: an empty edges table, only singletons, no errors."""
    man = pd.read_parquet(finished_run / "manifest.parquet")
    solo = man[man["cluster_size"] == 1]
    solo.to_parquet(tmp_path / "manifest.parquet", index=False)
    pd.read_parquet(finished_run / "errors.parquet").iloc[:0].to_parquet(tmp_path / "errors.parquet", index=False)
    pq.write_table(pq.read_table(finished_run / "edges.parquet").slice(0, 0), tmp_path / "edges.parquet")
    shutil.copy(finished_run / "summary.json", tmp_path / "summary.json")
    text = write_report(tmp_path).read_text()
    page = Page(text)
    assert page.clusters == []
    assert {"no-clusters", "no-errors", "histogram-svg", "threshold-line"} <= page.ids
    assert "no similarity edges in this run" in text


def test_missing_or_broken_images_get_placeholders(finished_run, tmp_path):
    """Items that vanished or are broken since the run: placeholders, never an exception.

    No files.parquet here, so the kind of each item (file, Parquet row, tar member) comes from its name.
    """
    man = pd.read_parquet(finished_run / "manifest.parquet")
    dup = man[man["cluster_size"] > 1].copy()
    victims = dup.index[dup["match"] == "near"][:4]  # exact copies share their canonical's bytes, hence its thumbnail
    garbage = write(tmp_path / "garbage.jpg", b"\xff\xd8\xff\xe0 definitely not a jpeg")
    shard = next(p for p in dup["path"] if "#row=" in p).split("#")[0]
    tar = next(p for p in dup["path"] if ".tar#" in p).split("#")[0]
    broken = [str(tmp_path / "gone.jpg"), str(garbage), f"{shard}#row=999", f"{tar}#nope.jpg"]
    dup.loc[victims, "path"] = broken
    out = tmp_path / "out"
    out.mkdir()
    dup.to_parquet(out / "manifest.parquet", index=False)
    page = Page(write_report(out).read_text())
    members = {m["path"]: m for c in page.clusters for m in c["members"]}
    assert len(members) == len(dup)
    for p in broken:
        assert members[p]["placeholder"] and members[p]["img"] is None
    assert sum(m["placeholder"] for m in members.values()) == len(broken)  # the others still have thumbnails


def test_a_near_copy_says_how_the_check_matched_it():
    from dedup.report.sections import _checked_html

    assert "checked: 41 inliers" in _checked_html(41)
    assert "checked: same frame" in _checked_html(0)  # the check's identity pass: no features matched


def test_histogram_draws_the_threshold_where_it_is():
    sims = np.linspace(0.9, 1.0, 1000)
    svg = histogram_svg(sims, 0.95)
    assert svg.count('class="bar"') == 50
    line = Page(svg).svg_lines[0]
    # Plot area is x 64..740 for [0.9, 1.0]: 0.95 is its middle.
    assert float(line["x1"]) == pytest.approx(64 + 0.5 * (760 - 64 - 20), abs=0.5)
    empty = histogram_svg(np.zeros(0), 0.9)
    assert 'class="bar"' not in empty and 'id="threshold-line"' in empty and "no similarity edges" in empty


@pytest.fixture(scope="module")
def big_output(tmp_path_factory) -> Path:
    """A synthetic 100k-image output folder: 300 clusters of 30, 20k pairs, singletons, 300k edges, 5k errors.

    The 10 largest clusters' images exist (so their thumbnails are decoded); the rest are missing.
    """
    out = tmp_path_factory.mktemp("big")
    imgs = out / "images"
    imgs.mkdir()
    n = 100_000
    sizes = np.array([30] * 300 + [2] * 20_000 + [1] * (n - 300 * 30 - 40_000))
    cid = np.repeat(np.arange(len(sizes)), sizes)
    first = np.r_[0, np.cumsum(sizes)[:-1]]
    canonical = np.zeros(n, bool)
    canonical[first] = True
    paths = np.array([f"{imgs}/img{i:06d}.jpg" for i in range(n)], object)
    blobs = [encode(base_image(s, (240, 180)), "JPEG") for s in range(6)]
    for i in range(10 * 30):
        Path(paths[i]).write_bytes(blobs[i % len(blobs)])
    rng = np.random.default_rng(0)
    pd.DataFrame({
        "path": paths, "cluster_id": cid, "canonical_path": paths[first][cid], "is_canonical": canonical,
        "similarity_to_canonical": np.where(canonical, 1.0, rng.uniform(0.9, 1.0, n)), "width": 240, "height": 180,
        "bytes": 9000, "sha": [f"{i:064x}" for i in range(n)], "match": np.where(canonical, "canonical", "near"),
        "cluster_size": sizes[cid], "component_id": cid, "format": "JPEG", "mode": "RGB", "source": str(imgs),
    }).to_parquet(out / "manifest.parquet", index=False)
    pd.DataFrame({
        "path": [f"/gone/bad{i}.jpg" for i in range(5000)],
        "error": [f"reason {i % 80}: details of file {i}" for i in range(5000)], "stage": "decode", "source": "/gone",
    }).to_parquet(out / "errors.parquet", index=False)
    m = 300_000
    pq.write_table(pa.table({"a": rng.integers(0, n, m), "b": rng.integers(0, n, m), "sim": rng.uniform(0.9, 1.0, m).astype(np.float32)}), out / "edges.parquet")
    (out / "summary.json").write_text(json.dumps({
        "counts": {"inputs": n + 5000, "images": n, "errors": 5000}, "parameters": {"threshold": 0.92, "model": "thumb"},
        "stages": {"hash": {"seconds": 10.0, "files_per_second": 10500.0}, "graph": {"seconds": 1.0}}, "total_seconds": 11.0,
    }))
    write_report(out)
    return out


def test_100k_images_page_is_capped_and_bounded(big_output):
    text = (big_output / "report.html").read_text()
    page = Page(text)
    assert len(page.clusters) == 200  # max_clusters
    assert [c["size"] for c in page.clusters] == [30] * 200
    assert all(len(c["members"]) == 24 and c["members"][0]["canonical"] for c in page.clusters)  # max_members, canonical first
    assert "Showing the 200 largest of 20,300 clusters with duplicates" in text and "+ 6 more images of this cluster" in text
    thumbs = [m["img"] for c in page.clusters for m in c["members"] if m["img"]]
    assert len(thumbs) == 10 * 24  # only the images that exist, of the shown members, were decoded
    assert max(len(t) for t in thumbs) < 16_000
    # Bounded by the caps, whatever the corpus: about 1 kB of markup per shown member plus its thumbnail.
    assert len(text.encode()) < 200 * 24 * 1500 + sum(len(t) for t in thumbs) + 200_000
    assert "Showing the 50 most frequent of 80 reasons" in text
    assert "threshold 0.920" in text


def test_command_line_entry(finished_run, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="dedup")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", str(finished_run), "--max-clusters", "1", "--max-members", "2"])
    assert args.func is main and args.func(args) == 0
    assert str(finished_run / "report.html") in capsys.readouterr().out
    page = Page((finished_run / "report.html").read_text())
    assert len(page.clusters) == 1 and len(page.clusters[0]["members"]) == 2 and page.clusters[0]["members"][0]["canonical"]
    missing = parser.parse_args(["report", str(tmp_path / "nothing")])
    assert main(missing) == 2 and "not the output folder of a finished dedup run" in capsys.readouterr().err


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def _load(driver, page: Path) -> list[dict]:
    """Open the page; return the browser console's SEVERE entries (errors)."""
    driver.get_log("browser")  # drop anything from before
    driver.get(page.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_page_in_headless_chromium(browser, finished_run):
    from selenium.webdriver.common.by import By

    page = write_report(finished_run)
    assert _load(browser, page) == []
    assert browser.title.startswith("dedup report")
    sections = browser.find_elements(By.CSS_SELECTOR, "section.cluster")
    assert len(sections) == 3 and all(s.is_displayed() for s in sections)
    for s in sections:
        canon = s.find_elements(By.CSS_SELECTOR, "figure.member.canonical")
        assert len(canon) == 1 and canon[0].is_displayed() and "keep" in canon[0].text.lower()
        assert len(s.find_elements(By.CSS_SELECTOR, "figure.member")) == int(s.get_attribute("data-size"))
    # Every thumbnail decoded by the browser itself; nothing was fetched from anywhere.
    images = browser.execute_script("return Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
    assert len(images) == 17 and all(done and w > 0 for done, w in images)
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    svg = browser.find_element(By.ID, "histogram-svg")
    assert svg.is_displayed() and svg.size["width"] > 300
    assert len(svg.find_elements(By.CSS_SELECTOR, "rect.bar")) > 0
    # A vertical line has no width, which WebDriver's is_displayed() counts as hidden: check its box and stroke.
    height, stroke = browser.execute_script(
        "const l = document.getElementById('threshold-line'); return [l.getBoundingClientRect().height, getComputedStyle(l).stroke]"
    )
    assert height > 100 and stroke == "rgb(179, 38, 30)"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#errors-table tr.error-reason")) == 3


def test_100k_page_in_headless_chromium(browser, big_output):
    from selenium.webdriver.common.by import By

    assert _load(browser, big_output / "report.html") == []
    assert len(browser.find_elements(By.CSS_SELECTOR, "section.cluster")) == 200
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure.member.canonical")) == 200
    assert browser.execute_script("return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length") == 0
    assert browser.find_element(By.ID, "histogram-svg").is_displayed()


def _blocks(seed: int):
    """A picture whose 8x8 thumbnail is the same for every seed (a colour gradient) under blocks drawn per
    seed: the thumb model finds every pair similar, the content check tells the seeds apart."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:240, 0:320]
    base = np.stack([x * 255 / 320, y * 255 / 240, 255 - x * 255 / 320], -1)
    blocks = rng.integers(0, 2, (30, 40, 1)).repeat(8, 0).repeat(8, 1) * 60 - 30
    return Image.fromarray(np.clip(base + blocks, 0, 255).astype(np.uint8))


def test_rejected_pairs_say_what_happened_to_each_image_and_timings_show_no_dicts(ray_local, tmp_path):
    import html
    import re

    root = tmp_path / "in"
    a = _blocks(1)
    write(root / "a.png", encode(a, "PNG"))
    write(root / "a_copy.jpg", encode(a, "JPEG", quality=80))  # shares a's content: one of the two is removed
    write(root / "b.png", encode(_blocks(2), "PNG"))  # like both, shares content with neither: unique
    out = tmp_path / "out"
    run(DedupConfig(inputs=[str(root)], output=str(out), model="thumb", verify="all", threshold=0.8))
    man = pd.read_parquet(out / "manifest.parquet").set_index("path")
    text = write_report(out).read_text()
    rejected = text[text.index('<section id="rejected">'):text.index('<section id="errors">')]
    figures = re.findall(r'<figure .*?</figure>', rejected)
    assert len(figures) == 4  # two rejected pairs: (a, b) and (a_copy, b)
    seen = {}
    for fig in figures:
        path = html.unescape(re.search(r'<span class="path" title="([^"]*)"', fig).group(1))
        badge = re.search(r'<span class="badge (\w+)"[^>]*>([^<]*)</span>', fig).groups()
        row = man.loc[path]
        want = ("remove", "removed") if not row["is_canonical"] else ("keep", "kept") if row["cluster_size"] > 1 else ("unique", "unique")
        assert badge == want, (path, badge)
        assert f'{int(row["width"])}×{int(row["height"])}' in fig and "? · ?" not in fig  # its real size
        seen[Path(path).name] = badge[1]
    assert seen["b.png"] == "unique" and sorted([seen["a.png"], seen["a_copy.jpg"]]) == ["kept", "removed"]
    timings = text[text.index('<section id="timings">'):]
    assert "{" not in html.unescape(timings) and "&#x27;" not in timings
    assert "step seconds (create " in timings  # the store's nested timings, readable
    from dedup.report.sections import _fmt_detail

    assert _fmt_detail({"create": 0.029, "band": [0.3, None], "ok": True}) == "(create 0.029, band 0.3–none, ok yes)"
