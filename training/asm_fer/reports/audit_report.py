"""The dataset audit as one self-contained HTML page (inline CSS and thumbnails, no network)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from PIL import Image, ImageOps

from ..audit.audit import VERDICTS, Audit, most_ambiguous, most_confident_noisy, summary_lines

THUMB = 96
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.gallery { display: flex; flex-wrap: wrap; gap: 0.5rem; margin-bottom: 1rem; }
figure { margin: 0; width: 104px; font-size: 11px; text-align: center; }
figure img { width: 96px; height: 96px; image-rendering: pixelated; border: 2px solid #999; }
figure.noisy img { border-color: #c0392b; } figure.ambiguous img { border-color: #d68910; }
"""
# Counts the thumbnails the browser actually decoded, so a broken page says so instead of looking empty.
STATUS_SCRIPT = """
window.addEventListener('load', () => {
  const imgs = [...document.querySelectorAll('figure img')];
  const shown = imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.getElementById('status').textContent = `${shown} of ${imgs.length} thumbnails shown`;
});
"""


def _thumbnail(path: Path) -> str:
    with Image.open(path) as im:
        rgb = ImageOps.exif_transpose(im).convert("RGB")
    rgb.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _table(header: list[str], rows: list[list[str]], cls: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _verdict_table(audit: Audit) -> str:
    counts = audit.counts()
    rows = []
    for k, name in enumerate(audit.classes):
        n = int(counts[k].sum())
        cells = [f"{c} ({c / n:.1%})" if n else "0" for c in counts[k]]
        tau_n, tau_c = audit.thresholds[k]
        rows.append([html.escape(name), str(n), *cells, f"{tau_n:.3f}", f"{tau_c:.3f}"])
    return _table(["submitted label", "items", *VERDICTS, "τ noisy", "τ clean"], rows, "verdicts")


def _confusion_table(audit: Audit) -> str:
    conf = audit.confusion()
    rows = []
    for k, name in enumerate(audit.classes):
        total = max(int(conf[k].sum()), 1)
        cells = [f'<span style="background: rgba(41,128,185,{c / total:.2f}); padding: 0 0.3rem">{c}</span>' for c in conf[k]]
        rows.append([html.escape(name), *cells])
    return _table(["submitted \\ predicted", *map(html.escape, audit.classes)], rows, "confusion")


def _figure(audit: Audit, i: int, verdict: str) -> str:
    label, pred = audit.classes[audit.labels[i]], audit.classes[audit.predicted[i]]
    caption = f"{label} → {pred} {audit.probs[i].max():.2f}<br>p(label) {audit.label_prob[i]:.2f}"
    title = html.escape(str(audit.samples[i].path), quote=True)
    return (
        f'<figure class="{verdict}"><img src="{_thumbnail(audit.samples[i].path)}" alt="{title}" title="{title}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _galleries(audit: Audit, per_class: int) -> str:
    parts = []
    for k, name in enumerate(audit.classes):
        noisy = most_confident_noisy(audit, k, per_class)
        ambiguous = most_ambiguous(audit, k, per_class)
        parts.append(f"<h3>{html.escape(name)}</h3>")
        for title, idx, verdict in (
            ("most confident noisy", noisy, "noisy"),
            ("most ambiguous", ambiguous, "ambiguous"),
        ):
            figures = "".join(_figure(audit, i, verdict) for i in idx) or "<p>none</p>"
            parts.append(f'<h4>{title}</h4><div class="gallery">{figures}</div>')
    return "".join(parts)


def render_html(audit: Audit, *, title: str, per_class: int = 8) -> str:
    model = f"{audit.bundle['name']}@{audit.bundle['version']}"
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines(audit))
    noisy_share = audit.counts()[:, 2].sum() / max(len(audit.labels), 1)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Model <code>{html.escape(model)}</code>; verdicts: clean if p(label) ≥ τ clean, noisy if p(label) &lt; τ noisy,
ambiguous otherwise, with the model's per-class thresholds. Estimated noise rate: {noisy_share:.1%}.</p>
<ul>{summary}</ul>
<h2>Verdicts per submitted label</h2>
{_verdict_table(audit)}
<h2>Submitted &times; predicted labels</h2>
{_confusion_table(audit)}
<h2>Items to review</h2>
{_galleries(audit, per_class)}
<p id="status">thumbnails loading</p>
<script>{STATUS_SCRIPT}</script>
</body></html>
"""


def write_report(audit: Audit, out: Path, *, title: str, per_class: int = 8) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    path.write_text(render_html(audit, title=title, per_class=per_class), encoding="utf-8")
    return path
