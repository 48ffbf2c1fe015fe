"""Markup for the report: the analysis notes' markdown as HTML (:func:`markdown_to_html`),
and DataFrames as markdown or HTML tables (``_md_table``, ``_html_table``, with the summary's
bold as ``<strong>``: ``_md_inline``)."""

from __future__ import annotations

import html
import re

import pandas as pd

__all__ = ["markdown_to_html"]


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
