"""The report's markdown and HTML helpers: the analysis notes' markdown as HTML
(:func:`markdown_to_html`), DataFrames as markdown or HTML tables (``_md_table``,
``_html_table``, with the summary's bold as ``<strong>``: ``_md_inline``) and the page's
stylesheet (``CSS``). Used by :mod:`probekit.report.build` and :mod:`probekit.report.compare`,
so that neither imports the other for them."""

from __future__ import annotations

import html
import re

import pandas as pd

__all__ = ["markdown_to_html", "CSS"]

#: The report page's stylesheet (inline: the report is one self-contained file).
CSS = """body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
.banner{background:#fff3cd;border:2px solid #e0a800;padding:.7em 1em;margin:1em 0;font-weight:600}
.summary li{margin:.5em 0}figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}.sig{font-weight:700;color:#a00}
details{margin:.3em 0 1em}summary{cursor:pointer;color:#335}.notes h3{font-size:1.05em}
.glance img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.8em;white-space:pre-wrap}.muted{color:#666;font-size:.9em}"""


def markdown_to_html(text: str) -> str:
    """The markdown that ``probekit analyze`` writes (headings, bullet lists, pipe tables,
    paragraphs, bold and code spans) as HTML; everything is escaped first."""
    def inline(s: str) -> str:
        s = html.escape(s, quote=False)
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
        return re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"<em>\1</em>", s)

    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line.strip():
            i += 1
            continue
        m = re.match(r"^(#{1,6})\s+(.*)$", line)
        if m:
            level = min(6, len(m.group(1)) + 2)  # the report's own h1/h2 come first
            out.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
            i += 1
            continue
        if re.match(r"^\s*[-*]\s+", line):
            items = []
            while i < len(lines) and lines[i].strip():
                cur = lines[i]
                if re.match(r"^\s*[-*]\s+", cur):
                    items.append(re.sub(r"^\s*[-*]\s+", "", cur).strip())
                elif items:
                    items[-1] += " " + cur.strip()
                i += 1
            out.append("<ul>" + "".join(f"<li>{inline(x)}</li>" for x in items) + "</ul>")
            continue
        if line.lstrip().startswith("|"):
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                    rows.append(cells)
                i += 1
            if rows:
                head = "".join(f"<th>{inline(c)}</th>" for c in rows[0])
                body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>"
                               for r in rows[1:])
                out.append(f"<table><tr>{head}</tr>{body}</table>")
            continue
        para = []
        while i < len(lines) and lines[i].strip() and not re.match(r"^(#|\s*[-*]\s|\s*\|)", lines[i]):
            para.append(lines[i].strip())
            i += 1
        out.append(f"<p>{inline(' '.join(para))}</p>")
    return "\n".join(out)


def _md_table(df: pd.DataFrame) -> str:
    cols = [df.index.name or ""] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for i, r in df.iterrows():
        lines.append("| " + " | ".join([str(i)] + [str(v) for v in r]) + " |")
    return "\n".join(lines)


def _md_inline(s: str) -> str:
    """The tiny bit of markdown the summary uses (bold) as HTML."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(s))


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [df.index.name or ""] + list(df.columns))
    body = "".join("<tr>" + "".join(f"<td>{_md_inline(str(v))}</td>" for v in [i] + list(r)) + "</tr>"
                   for i, r in df.iterrows())
    return f"<table><tr>{head}</tr>{body}</table>"
