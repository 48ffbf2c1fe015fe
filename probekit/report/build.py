"""Write the report: ``report.html`` (self-contained: figures embedded as base64 PNG, inline
CSS, no scripts) and its markdown twin ``report.md`` (figures linked).

Order: banner (synthetic data / random model), the one-screen **at a glance** figure (groups x
layers, coloured by each group's error minus the mean error of the other groups, marked by
the systematic/random typing; saved as PNG and SVG in ``report_figures/``), summary in plain
words, figures, group x layer tables (each cell's interval and speaker count in a collapsible
block), the analysis notes rendered as HTML, then configuration, fingerprints and versions so
a reader can reproduce the run. Interval labels follow the analysis's ``alpha``.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from probekit.atomic import savefig, write_json, write_text
from probekit.report.glance import TYPE_MARKS, _glance_data, glance_figure  # noqa: F401
from probekit.report.html import CSS, _html_table, _md_inline, _md_table, markdown_to_html
from probekit.report.summary import (interval_label, primary_slices, summary_points,
                                     task_words, with_decisions)
from probekit.report.tables import _fmt, group_error_table, group_interval_table  # noqa: F401

__all__ = ["build_report", "banners", "group_error_table", "group_interval_table",
           "glance_figure", "markdown_to_html", "report_source"]


def banners(meta: dict) -> list[str]:
    """Warnings the reader must see first."""
    out = []
    if meta.get("synthetic"):
        from probekit.provenance import synthetic_banner
        out.append(synthetic_banner(meta["synthetic"]))
    if meta.get("random_init"):
        out.append("RANDOMLY INITIALISED MODEL: " + ", ".join(meta["random_init"]) +
                   " has random weights; nothing here describes a trained model.")
    return out


_CAPTIONS = {
    "layer_curves": "Error per layer for each group (probe trained on every group; faint bands: "
                    "each group's {level} speaker-bootstrap interval, grey: the overall "
                    "error's) and the debiased between-group variance with its interval; "
                    "circles: group means "
                    "unequal, triangles: the group is worse than the rest (the summary's "
                    "decisions, at the level it states)",
    "transfer": "Cross-group transfer: error of probes trained on one group (rows) on each test "
                "group (columns)",
    "decomposition": "Random vs systematic: each group's error minus the others' per layer, coloured by its type",
    "dispersion": "Phone-embedding dispersion per speaker against phone accuracy",
}


def _caption(stem: str, level: str) -> str:
    for k, v in _CAPTIONS.items():
        if stem.startswith(k):
            return f"{v.format(level=level)} ({stem[len(k):].strip('_').replace('_', ' / ')})."
    return stem


def _read_findings(path: Path) -> str:
    if not path.exists():
        return ""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        from probekit.jsonfile import BadFileError
        raise BadFileError(f"{path}: not UTF-8 text (byte {exc.start}); probekit analyze writes "
                           "UTF-8 markdown here: run the analysis again") from None


def _notes_only(findings: str, in_summary: set[str]) -> str:
    """``findings.md`` without its heading and without the points the report's summary
    already states, so each summary sentence is printed once (what remains: the analysis's
    own notes, e.g. cells a model could not fit)."""
    lines = findings.splitlines()
    intro, points = [], []
    for line in lines:
        if line.startswith("# "):
            continue
        if line.startswith("- "):
            points.append(line[2:])
        elif points and line.startswith("  "):
            points[-1] += "\n" + line
        elif not points:
            intro.append(line)
    rest = [p for p in points if p not in in_summary]
    body = [f"- {p}" for p in rest] or ["Every point of the analysis's findings is in the "
                                        "summary above."]
    return "\n".join([*intro, *body]).strip() + "\n"


def _level(an, meta: dict, alpha: float | None) -> float:
    """The level the analysis's intervals and decisions were computed at (module docstring);
    a different one asked for is an error naming both."""
    from probekit.errors import ProbekitError

    recorded = (an.provenance.get("analysis") or {}).get("alpha")
    asked = alpha if alpha is not None else (meta.get("config") or {}).get("alpha")
    if recorded is None:
        return float(asked if asked is not None else an.alpha)
    if asked is not None and abs(float(asked) - float(recorded)) > 1e-12:
        raise ProbekitError(f"alpha {float(asked):g} asked for the report, but the analysis's "
                            f"intervals and decisions are at {float(recorded):g}; run the "
                            "analysis again at that level (probekit analyze --alpha)")
    return float(recorded)


#: Written beside report.html: the analysis folder it was built from, and the run times.
REPORT_STAMP = ".probekit-report.json"
RUN_TIMES_NOTE = ("Run times are not part of the report (so that the same analysis gives the "
                  "same report): see run.json (a study) or .probekit-report.json beside it.")


def build_report(analysis: str | Path, out: str | Path, meta: dict | None = None,
                 *, alpha: float | None = None, power: bool = True) -> tuple[Path, Path]:
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
    alpha : float, optional
        The level of the analysis's intervals and decisions; default the one it recorded
        (``config.alpha`` of ``meta`` for an analysis that recorded none). A level that
        differs from the recorded one is refused: the intervals cannot be relabelled.
    power : bool
        Give, next to each "not detected", the effect the design had 80% power to detect
        (:mod:`probekit.bias.power`: simulated once per design, cached on disk).

    Returns
    -------
    (html_path, md_path)
    """
    from probekit.bias.analysis import Analysis
    from probekit.provenance import split_lines, with_provenance

    analysis, out = Path(analysis), Path(out)
    an = Analysis.load(analysis)  # a finished analysis whose tables are all there, or an error
    meta = with_provenance(meta, analysis)  # a step-by-step analysis carries its own
    alpha = _level(an, meta, alpha)
    out.mkdir(parents=True, exist_ok=True)
    tables = with_decisions({n: t for n, t in an.tables.items() if len(t)}, alpha)
    in_summary = set(summary_points(tables, alpha=alpha))  # before the power sentences join
    if power:
        from probekit.bias.power import add_detectable_effects

        tables = add_detectable_effects(tables)
    title = meta.get("config", {}).get("title") or "probekit bias report"
    question = meta.get("config", {}).get("question")
    points = summary_points(tables, alpha=alpha) + split_lines(meta)
    level = interval_label(alpha).rstrip("%")
    glance = glance_figure(tables, alpha)
    glance_png = None
    if glance is not None:
        gdir = out / "report_figures"
        gdir.mkdir(exist_ok=True)
        glance_png = gdir / "at_a_glance.png"
        savefig(glance, glance_png)
        savefig(glance, gdir / "at_a_glance.svg")
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
            ci = group_interval_table(tables["layer_curves"], key, alpha)
            ci.index.name = "group / layer"
            group_tables.append((f"{key[0]}: {task_words(key[1])} ({key[2]}, {key[3]})", df, ci))
    findings = _notes_only(_read_findings(analysis / "findings.md"), in_summary)
    # No run times in the body (two runs on the same analysis give the same report): they
    # go to the report's metadata file (REPORT_STAMP) and the study's run.json.
    prov = {k: meta[k] for k in ("fingerprints", "versions", "n_utterances",
                                 "n_result_rows", "config_file") if k in meta}
    config_json = json.dumps(meta.get("config", {}), indent=1)
    prov_json = json.dumps(prov, indent=1, default=str)
    stores_json = json.dumps(meta.get("stores", {}), indent=1, default=str)
    table_note = (f"Group error of the probe trained on every group, per layer. Bold: the group "
                  f"is worse than the rest, or the group means differ (unequal means p), by the "
                  f"same decisions as the summary and the figures (family and level: the "
                  f"summary's first lines). Under each table: every cell with its {level}% speaker-bootstrap "
                  "interval and the number of test speakers (n). All tables: the CSV files in "
                  "the analysis folder.")

    # -- markdown -------------------------------------------------------------------------
    rel = Path(__import__("os").path.relpath(analysis, out))
    md = [f"# {title}", ""]
    md += [f"> **{b}**" for b in banners(meta)] + [""]
    if question:
        md += [f"*Question:* {question}", ""]
    if glance_png is not None:
        grel = Path(__import__("os").path.relpath(glance_png, out)).as_posix()
        md += ["## At a glance", "", f"![at a glance]({grel})", ""]
    md += ["## Summary", ""] + [f"- {p}" for p in points] + [""]
    from probekit.report.compare import before_after_section  # fine-tuning studies only
    ba_md, ba_html = before_after_section(meta.get("before_after"), out)
    md += ba_md
    md += ["## Figures", ""]
    md += [f"![{_caption(f.stem, level + '%')}]({(rel / 'figures' / f.name).as_posix()})\n\n*{_caption(f.stem, level + '%')}*\n"
           for f in figs]
    md += ["## Tables", "", table_note, ""]
    for name, df, ci in group_tables:
        md += [f"### {name}", "", _md_table(df), "",
               f"<details><summary>{level}% intervals and n per cell</summary>", "",
               _md_table(ci), "", "</details>", ""]
    md += ["## Analysis notes (probekit analyze)", "", re.sub(r"^#", "###", findings, flags=re.M), ""]
    md += ["## Configuration", "", "```json", config_json, "```", "",
           "## Fingerprints and versions", "", f"*{RUN_TIMES_NOTE}*", "",
           "```json", prov_json, "```", "",
           "### Embedding stores", "", "```json", stores_json, "```", ""]
    md_path = write_text(out / "report.md", "\n".join(md))

    # -- html -----------------------------------------------------------------------------
    def e(s: str) -> str:
        return html.escape(s, quote=False)
    h = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width, initial-scale=1">',
         f"<title>{e(title)}</title><style>{CSS}</style></head><body>", f"<h1>{e(title)}</h1>"]
    h += [f'<div class="banner" role="alert">{e(b)}</div>' for b in banners(meta)]
    if question:
        h.append(f"<p><em>Question:</em> {e(question)}</p>")
    if glance_png is not None:
        b64 = base64.b64encode(glance_png.read_bytes()).decode("ascii")
        h.append('<section class="glance" id="glance"><h2>At a glance</h2>'
                 f'<img alt="at a glance: groups by layers, error difference from the rest" '
                 f'src="data:image/png;base64,{b64}"><p class="muted">Each cell: a group\'s error '
                 "minus the mean error of the other groups, for the probe trained on every group "
                 "(red: worse than the rest). Marks: the typing (S systematic, R random, S+R "
                 "both, W worse unexplained; * worse, for tasks without typing), the same "
                 "decisions as the summary and the bold cells. One row per encoder. SVG: "
                 "report_figures/at_a_glance.svg.</p></section>")
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
                 f"<figcaption>{e(_caption(f.stem, level + '%'))}</figcaption></figure>")
    h.append(f'<h2 id="tables">Tables</h2><p class="muted">{e(table_note)}</p>')
    for name, df, ci in group_tables:
        h.append(f"<h3>{e(name)}</h3>{_html_table(df)}"
                 f"<details><summary>{level}% intervals and n per cell</summary>"
                 f"{_html_table(ci)}</details>")
    h.append('<h2 id="notes">Analysis notes (probekit analyze)</h2>'
             f'<div class="notes">{markdown_to_html(findings)}</div>')
    h.append(f'<h2 id="config">Configuration</h2><pre>{e(config_json)}</pre>')
    h.append(f'<h2 id="provenance">Fingerprints and versions</h2>'
             f'<p class="muted">{e(RUN_TIMES_NOTE)}</p><pre>{e(prov_json)}</pre>'
             f"<h3>Embedding stores</h3><pre>{e(stores_json)}</pre>")
    h.append("</body></html>")
    html_path = write_text(out / "report.html", "\n".join(h))
    # Which analysis this report shows (`probekit report` refuses to replace a report of
    # another analysis without --overwrite), and the run times kept out of the body.
    write_json(out / REPORT_STAMP, {"analysis": str(analysis.resolve()),
                                    **({"timings": meta["timings"]} if "timings" in meta else {})},
               indent=None, default=str)
    return html_path, md_path


def report_source(out: str | Path) -> str | None:
    """The analysis folder the report in ``out`` was built from (``None``: no probekit report)."""
    p = Path(out) / REPORT_STAMP
    try:
        return json.loads(p.read_text()).get("analysis")
    except (OSError, ValueError, AttributeError):
        return None
