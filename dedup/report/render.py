"""How the report draws: escaping, numbers in words, the histogram as inline SVG, the page's style."""
from __future__ import annotations

import html
import math

import numpy as np

from dedup.report.data import HIST_BINS

# --------------------------------------------------------------------------------------------- render


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _human_bytes(n: float | None) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "?"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"  # pragma: no cover


def _fmt_num(v: object) -> str:
    if isinstance(v, bool) or v is None:
        return _e(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:,.0f}"
    return _e(v)


def histogram_svg(sims: np.ndarray, threshold: float | None, bins: int = HIST_BINS, width: int = 760, height: int = 280,
                  xlabel: str = "similarity of an edge (cosine)", unit: str = "edges", verify_above: float | None = None) -> str:
    """Inline SVG histogram of similarities (``unit`` counted) with a vertical line at ``threshold`` and,
    with ``verify_above``, the verify band between the two shaded (pairs there count only when checked)."""
    ml, mr, mt, mb = 64, 20, 24, 48
    pw, ph = width - ml - mr, height - mt - mb
    finite = sims[np.isfinite(sims)]
    ends = list(finite[[finite.argmin(), finite.argmax()]]) if len(finite) else []
    ends += [float(threshold)] if threshold is not None else []
    lo = math.floor(min(ends, default=0.0) * 100) / 100
    hi = max(ends + [1.0])  # cosine similarity tops out at 1 (float32 rounding may pass it slightly)
    if hi - lo < 1e-6:
        lo -= 0.01
    counts, edges = np.histogram(finite, bins=bins, range=(lo, hi))
    ymax = int(counts.max()) if len(counts) and counts.max() > 0 else 1

    def x(v: float) -> float:
        return ml + (v - lo) / (hi - lo) * pw

    def y(c: float) -> float:
        return mt + ph - c / ymax * ph

    parts = [
        f'<svg id="histogram-svg" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="histogram of edge similarities">',
        f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" class="plot"/>',
    ]
    for c, e0, e1 in zip(counts, edges[:-1], edges[1:]):
        if c == 0:
            continue
        x0, x1 = x(e0), x(e1)
        parts.append(
            f'<rect class="bar" x="{x0:.2f}" y="{y(c):.2f}" width="{max(x1 - x0 - 0.5, 0.5):.2f}" height="{mt + ph - y(c):.2f}">'
            f"<title>{e0:.4f} to {e1:.4f}: {int(c):,} {unit}</title></rect>"
        )
    for v in np.linspace(lo, hi, 6):
        parts.append(f'<line class="tick" x1="{x(v):.2f}" x2="{x(v):.2f}" y1="{mt + ph}" y2="{mt + ph + 5}"/>')
        parts.append(f'<text x="{x(v):.2f}" y="{mt + ph + 18}" text-anchor="middle">{v:.3f}</text>')
    for c in sorted({0, ymax // 2, ymax}):
        parts.append(f'<line class="tick" x1="{ml - 5}" x2="{ml}" y1="{y(c):.2f}" y2="{y(c):.2f}"/>')
        parts.append(f'<text x="{ml - 8}" y="{y(c) + 4:.2f}" text-anchor="end">{c:,}</text>')
    parts.append(f'<text x="{ml + pw / 2}" y="{height - 8}" text-anchor="middle">{_e(xlabel)}</text>')
    parts.append(f'<text x="14" y="{mt + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {mt + ph / 2})">{_e(unit)}</text>')
    if threshold is not None and verify_above is not None and verify_above > threshold:
        x0, x1 = x(float(threshold)), x(min(float(verify_above), hi))
        parts.append(f'<rect id="verify-band" class="band" x="{x0:.2f}" y="{mt}" width="{x1 - x0:.2f}" height="{ph}">'
                     f"<title>verify band {float(threshold):.3f} to {float(verify_above):.3f}: pairs here are duplicates only when their shared content is confirmed</title></rect>")
        parts.append(f'<line id="verify-line" class="verify" x1="{x1:.2f}" x2="{x1:.2f}" y1="{mt - 6}" y2="{mt + ph}"/>')
        parts.append(f'<text class="verify-label" x="{x1 - 4:.2f}" y="{mt + 24}" text-anchor="end">no check above {float(verify_above):.3f}</text>')
    if threshold is not None:
        tx = x(float(threshold))
        parts.append(f'<line id="threshold-line" class="threshold" x1="{tx:.2f}" x2="{tx:.2f}" y1="{mt - 6}" y2="{mt + ph}"/>')
        anchor = "start" if tx < ml + pw * 0.7 else "end"
        dx = 4 if anchor == "start" else -4
        parts.append(f'<text class="threshold-label" x="{tx + dx:.2f}" y="{mt + 10}" text-anchor="{anchor}">threshold {float(threshold):.3f}</text>')
    if not len(finite):
        parts.append(f'<text class="empty" x="{ml + pw / 2}" y="{mt + ph / 2}" text-anchor="middle">no similarity edges in this run</text>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
:root{--ink:#1d232b;--muted:#5b6673;--line:#d8dee6;--keep:#137333;--remove:#b3261e;--accent:#1a5fb4}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);margin:0;background:#f6f8fa}
header,main,footer{max-width:1280px;margin:0 auto;padding:12px 20px}
h1{font-size:22px;margin:8px 0} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:0 0 8px}
nav a{margin-right:14px;color:var(--accent)}
table{border-collapse:collapse;background:#fff;margin:6px 0}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:var(--muted)} .cap{background:#fff8e1;border:1px solid #f0d98a;padding:6px 10px;border-radius:4px}
.warning{background:#fdecea;border:1px solid #f5b5ae;color:var(--remove);padding:8px 12px;border-radius:4px;font-weight:600}
svg text{font-size:11px;fill:var(--ink)} svg .plot{fill:#fff;stroke:var(--line)} svg .bar{fill:#6b9bd1}
svg .tick{stroke:var(--muted)} svg .threshold{stroke:var(--remove);stroke-width:2;stroke-dasharray:6 3}
svg .threshold-label{fill:var(--remove);font-weight:600}
svg .band{fill:#f3d9a4;opacity:.45} svg .verify{stroke:#9a6700;stroke-width:2;stroke-dasharray:2 3} svg .verify-label{fill:#9a6700}
.verified{color:var(--keep)} svg .empty{fill:var(--muted);font-size:14px}
.cluster{background:#fff;border:1px solid var(--line);border-radius:6px;padding:10px 12px;margin:12px 0;
 content-visibility:auto;contain-intrinsic-size:auto 320px}
.members{display:flex;flex-wrap:wrap;gap:10px}
.member{margin:0;width:calc(var(--px) + 16px);border:2px solid var(--line);border-radius:6px;padding:6px;background:#fff}
.member.canonical{border-color:var(--keep);box-shadow:0 0 0 2px #c9ebd3}
.thumb-box{width:var(--px);height:var(--px);display:flex;align-items:center;justify-content:center;background:#eef1f4}
.thumb{max-width:100%;max-height:100%}
.placeholder{color:var(--muted);font-size:11px;text-align:center;padding:6px;overflow:hidden}
figcaption{font-size:11px;margin-top:4px}
.badge{display:inline-block;border-radius:3px;padding:0 5px;color:#fff;font-weight:700;font-size:10px;text-transform:uppercase}
.badge.keep{background:var(--keep)} .badge.remove{background:var(--remove)} .badge.unique{background:#6b7280}
.sim{font-weight:600;font-variant-numeric:tabular-nums}
.path{display:block;color:var(--muted);word-break:break-all}
.path-inline{word-break:break-all}
.more{color:var(--muted);margin:8px 0 0}
.bar-cell{width:160px} .tbar{display:block;height:8px;background:#6b9bd1;border-radius:2px}
pre{background:#fff;border:1px solid var(--line);padding:8px;overflow:auto;max-height:360px}
"""
