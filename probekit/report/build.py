"""Write the report: ``report.html`` (self-contained: figures embedded as base64 PNG, inline
CSS, no scripts) and its markdown twin ``report.md`` (figures linked).

Order: banner (synthetic data / random model), summary in plain words, figures, tables,
then configuration, fingerprints and versions so a reader can reproduce the run.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import pandas as pd

from probekit.report.summary import load_tables, primary_slices, summary_points, task_words

__all__ = ["build_report", "banners", "group_error_table"]

CSS = """body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
.banner{background:#fff3cd;border:2px solid #e0a800;padding:.7em 1em;margin:1em 0;font-weight:600}
.summary li{margin:.5em 0}figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}.sig{font-weight:700;color:#a00}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.8em;white-space:pre-wrap}.muted{color:#666;font-size:.9em}"""


def banners(meta: dict) -> list[str]:
    """Warnings the reader must see first."""
    out = []
    if meta.get("synthetic"):
        out.append("SYNTHETIC DATA: the corpus is espeak-ng voices reading English. These results "
                   "demonstrate the method; they are not findings about people or real accents.")
    if meta.get("random_init"):
        out.append("RANDOMLY INITIALISED MODEL: " + ", ".join(meta["random_init"]) +
                   " has random weights; nothing here describes a trained model.")
    return out


def _fmt(x, p=None, alpha=0.05) -> str:
    s = f"{x:.3f}"
    return f"**{s}**" if p is not None and p == p and p <= alpha else s


def group_error_table(curves: pd.DataFrame, key: tuple, alpha: float = 0.05) -> pd.DataFrame:
    """Groups x layers of the probe trained on every group (bold: group-vs-rest p <= alpha),
    plus the overall error and the max-min gap with its permutation p-value."""
    enc, task, probe, metric = key
    c = curves[(curves["encoder"] == enc) & (curves["task"] == task) & (curves["probe"] == probe) &
               (curves["metric"] == metric)]
    layers = c.sort_values("layer_index")["layer"].drop_duplicates().tolist()
    rows = {}
    for stat, label in ([(s, s[6:]) for s in sorted(c["statistic"].unique()) if s.startswith("group:")]
                        + [("overall", "overall"), ("difference", "gap (max-min)")]):
        x = c[c["statistic"] == stat].set_index("layer")
        rows[label] = [_fmt(x.at[layer, "estimate"], x.at[layer, "p_value"] if stat != "overall"
                            else None, alpha) if layer in x.index else "" for layer in layers]
    gp = c[c["statistic"] == "difference"].set_index("layer")
    rows["gap p-value"] = [f"{gp.at[layer, 'p_value']:.3f}" if layer in gp.index else "" for layer in layers]
    return pd.DataFrame.from_dict(rows, orient="index", columns=layers)


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


_CAPTIONS = {
    "layer_curves": "Error per layer for each group (probe trained on every group) and the "
                    "max-min gap with its speaker-bootstrap interval",
    "transfer": "Cross-group transfer: error of probes trained on one group (rows) on each test "
                "group (columns)",
    "decomposition": "Random vs systematic: mixed-model group effects per layer and the typing",
    "dispersion": "Phone-embedding dispersion per speaker against phone accuracy",
}


def _caption(stem: str) -> str:
    for k, v in _CAPTIONS.items():
        if stem.startswith(k):
            return f"{v} ({stem[len(k):].strip('_').replace('_', ' / ')})."
    return stem


def build_report(analysis: str | Path, out: str | Path, meta: dict | None = None,
                 *, alpha: float | None = None) -> tuple[Path, Path]:
    """Write ``out/report.html`` and ``out/report.md`` from an analysis folder.

    Parameters
    ----------
    analysis : path
        Output of ``probekit analyze`` (CSV tables, ``figures/*.png``, ``findings.md``).
    out : path
        Report folder (created).
    meta : dict, optional
        ``config``, ``fingerprints``, ``versions``, ``timings``, ``synthetic`` (bool),
        ``random_init`` (list of encoder names) - the run's provenance (see
        :func:`probekit.study.run_study`).

    Returns
    -------
    (html_path, md_path)
    """
    analysis, out = Path(analysis), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = dict(meta or {})
    alpha = alpha if alpha is not None else float(meta.get("config", {}).get("alpha", 0.05))
    tables = load_tables(analysis)
    title = meta.get("config", {}).get("title") or "probekit bias report"
    question = meta.get("config", {}).get("question")
    points = summary_points(tables, alpha=alpha)
    figs = sorted((analysis / "figures").glob("*.png"))
    # ASR has CER and WER figures; the report shows CER (its tables use CER too), the WER
    # figures stay in the analysis folder.
    if any("_cer_" in f.stem for f in figs):
        figs = [f for f in figs if "_wer_" not in f.stem]
    order = ["layer_curves", "decomposition", "transfer", "dispersion"]
    tasks = ["_phone_", "_asr_", "_speaker_", "_group-"]  # the summary's reading order
    figs.sort(key=lambda p: (next((i for i, k in enumerate(order) if p.stem.startswith(k)), 9),
                             next((i for i, k in enumerate(tasks) if k in p.stem), 9), p.stem))
    group_tables = []
    if "layer_curves" in tables:
        for key in primary_slices(tables["layer_curves"]):
            df = group_error_table(tables["layer_curves"], key, alpha)
            df.index.name = "group / layer"
            group_tables.append((f"{key[0]}: {task_words(key[1])} ({key[2]}, {key[3]})", df))
    findings = (analysis / "findings.md").read_text() if (analysis / "findings.md").exists() else ""
    prov = {k: meta[k] for k in ("fingerprints", "versions", "timings", "n_utterances",
                                 "n_result_rows", "config_file") if k in meta}
    config_json = json.dumps(meta.get("config", {}), indent=1)
    prov_json = json.dumps(prov, indent=1, default=str)
    stores_json = json.dumps(meta.get("stores", {}), indent=1, default=str)
    table_note = (f"Group error of the probe trained on every group, per layer. Bold: the group "
                  f"differs from the rest (permutation p <= {alpha}), or the gap exceeds speaker "
                  "variation. Full tables (with intervals): the CSV files in the analysis folder.")

    # -- markdown -------------------------------------------------------------------------
    rel = Path(__import__("os").path.relpath(analysis, out))
    md = [f"# {title}", ""]
    md += [f"> **{b}**" for b in banners(meta)] + [""]
    if question:
        md += [f"*Question:* {question}", ""]
    md += ["## Summary", ""] + [f"- {p}" for p in points] + [""]
    from probekit.report.compare import before_after_section  # fine-tuning studies only
    ba_md, ba_html = before_after_section(meta.get("before_after"), out)
    md += ba_md
    md += ["## Figures", ""]
    md += [f"![{_caption(f.stem)}]({(rel / 'figures' / f.name).as_posix()})\n\n*{_caption(f.stem)}*\n"
           for f in figs]
    md += ["## Tables", "", table_note, ""]
    for name, df in group_tables:
        md += [f"### {name}", "", _md_table(df), ""]
    md += ["## Analysis notes (probekit analyze)", "", re.sub(r"^#", "###", findings, flags=re.M), ""]
    md += ["## Configuration", "", "```json", config_json, "```", "",
           "## Fingerprints, versions and timings", "", "```json", prov_json, "```", "",
           "### Embedding stores", "", "```json", stores_json, "```", ""]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md))

    # -- html -----------------------------------------------------------------------------
    def e(s: str) -> str:
        return html.escape(s, quote=False)
    h = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width, initial-scale=1">',
         f"<title>{e(title)}</title><style>{CSS}</style></head><body>", f"<h1>{e(title)}</h1>"]
    h += [f'<div class="banner" role="alert">{e(b)}</div>' for b in banners(meta)]
    if question:
        h.append(f"<p><em>Question:</em> {e(question)}</p>")
    h.append('<h2 id="summary">Summary</h2><ul class="summary">')
    for p in points:
        paras = p.split("\n")
        h.append("<li>" + "<br>".join(_md_inline(x.strip()) for x in paras) + "</li>")
    h.append("</ul>")
    h += ba_html
    h.append("<h2 id=\"figures\">Figures</h2>")
    for f in figs:
        b64 = base64.b64encode(f.read_bytes()).decode("ascii")
        h.append(f'<figure><img alt="{e(f.stem)}" src="data:image/png;base64,{b64}">'
                 f"<figcaption>{e(_caption(f.stem))}</figcaption></figure>")
    h.append(f'<h2 id="tables">Tables</h2><p class="muted">{e(table_note)}</p>')
    for name, df in group_tables:
        h.append(f"<h3>{e(name)}</h3>{_html_table(df)}")
    h.append(f'<h2 id="notes">Analysis notes (probekit analyze)</h2><pre>{e(findings)}</pre>')
    h.append(f'<h2 id="config">Configuration</h2><pre>{e(config_json)}</pre>')
    h.append(f'<h2 id="provenance">Fingerprints, versions and timings</h2><pre>{e(prov_json)}</pre>'
             f"<h3>Embedding stores</h3><pre>{e(stores_json)}</pre>")
    h.append("</body></html>")
    html_path = out / "report.html"
    html_path.write_text("\n".join(h), encoding="utf-8")
    return html_path, md_path
