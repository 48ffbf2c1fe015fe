"""The report builder on a real analysis folder (simulated results): order, banners, numbers
from the tables, self-containment, and the ``probekit report`` command."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from probekit.cli import main
from probekit.bias.analysis import Analysis
from probekit.report import build_report, group_error_table, summary_points


def test_summary_names_the_planted_group_and_its_layers(sim_analysis):
    points = summary_points(Analysis.load(sim_analysis).tables)
    text = "\n".join(points)
    assert "most often found worse than the rest are: g2" in text
    curves = pd.read_csv(sim_analysis / "layer_curves.csv")
    gap = curves[curves["statistic"] == "max_abs_t"]
    n_sig = int(gap["decision"].sum())  # the one decision column, at its own level
    sig = gap[gap["decision"]]
    assert n_sig >= 1 and (sig["p_fwer"] <= sig["decision_level"]).all()
    assert f"at {n_sig} of {len(gap)} layers" in text
    assert "How sure: as few as 4 test speakers of a group per split" in text


def test_summary_without_curves_says_so():
    assert "nothing to summarise" in summary_points({})[0]


@pytest.mark.parametrize("meta, expected, absent", [
    ({"synthetic": True}, ["SYNTHETIC DATA"], ["RANDOMLY INITIALISED"]),
    ({"random_init": ["m1"]}, ["RANDOMLY INITIALISED MODEL: m1"], ["SYNTHETIC DATA"]),
    ({}, [], ["SYNTHETIC DATA", "RANDOMLY INITIALISED"]),
])
def test_banners(sim_analysis, tmp_path, meta, expected, absent):
    html, md = build_report(sim_analysis, tmp_path, meta)
    for p in (html, md):
        t = p.read_text()
        assert all(e in t for e in expected) and not any(a in t for a in absent)
    if expected:
        assert 'class="banner"' in html.read_text()


def test_html_is_self_contained_and_ordered(sim_analysis, tmp_path):
    html, md = build_report(sim_analysis, tmp_path, {"synthetic": True, "versions": {"probekit": "9.9"}})
    t = html.read_text()
    assert not re.search(r'(src|href)="(?!data:)', t), "external resource in the HTML"
    assert "<script" not in t
    n = len(list((sim_analysis / "figures").glob("*.png")))
    assert n >= 2 and t.count("data:image/png;base64,") == n + 1  # + the at-a-glance figure
    assert t.index('id="glance"') < t.index('id="summary"') < t.index('id="figures"') < t.index('id="tables"') < t.index('id="config"')
    assert '"probekit": "9.9"' in t
    for link in re.findall(r"\]\((.+?\.png)\)", md.read_text()):
        assert (tmp_path / link).exists(), link


def test_group_table_carries_the_analysis_numbers(sim_analysis):
    curves = pd.read_csv(sim_analysis / "layer_curves.csv")
    df = group_error_table(curves, ("sim", "phone", "linear", "error"))
    assert list(df.index[:3]) == ["g0", "g1", "g2"]
    r = curves[(curves["statistic"] == "group:g2") & (curves["layer"] == "layer1")].iloc[0]
    cell = df.loc["g2", "layer1"]
    assert cell.strip("*") == f"{r.estimate:.3f}"
    assert cell.startswith("**") == bool(r.decision)  # the decision column, not a level of its own


def test_report_cli_refuses_to_overwrite(sim_analysis, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", str(sim_analysis), "--out", str(out), "--synthetic"]) == 0
    assert "SYNTHETIC DATA" in (out / "report.html").read_text()
    # Rebuilding the report of the same analysis is fine; another analysis's report is not.
    assert main(["report", str(sim_analysis), "--out", str(out)]) == 0
    import shutil
    other = shutil.copytree(sim_analysis, tmp_path / "other_analysis")
    capsys.readouterr()
    assert main(["report", str(other), "--out", str(out)]) == 2
    assert "is a report of" in capsys.readouterr().err
    assert main(["report", str(other), "--out", str(out), "--overwrite"]) == 0
    assert main(["report", str(tmp_path), "--out", str(out)]) == 2


def test_report_first_screen_notes_intervals_and_alpha(sim_analysis, tmp_path):
    """Issue 15: at-a-glance figure first (PNG + SVG), notes as HTML, intervals and n per
    cell (collapsible), interval labels following alpha."""
    from probekit.report.build import glance_figure, group_interval_table, markdown_to_html

    from probekit.bias.analysis import analyze
    from probekit.testing.simulate import simulate_results
    from probekit.errors import ProbekitError

    # the labels are the level the intervals were computed at: a report cannot relabel them
    with pytest.raises(ProbekitError, match="alpha 0.1 asked for the report.*at 0.05"):
        build_report(sim_analysis, tmp_path / "no", {"config": {"alpha": 0.1}})
    df = simulate_results(n_groups=3, speakers_per_group=6, n_layers=3, seeds=(0, 1),
                          train_sets="full", group_offset={"g2": 0.3})
    analyze(df, n_boot=30, n_perm=99, alpha=0.1, with_counts=False).save(tmp_path / "an")
    html, md = build_report(tmp_path / "an", tmp_path, power=False)
    t = html.read_text()
    assert "90% CI" in t and "family-wise" in t
    assert "each group's 90% speaker-bootstrap interval" in t  # figure captions too
    assert (tmp_path / "report_figures" / "at_a_glance.png").stat().st_size > 5_000
    assert (tmp_path / "report_figures" / "at_a_glance.svg").read_text().lstrip().startswith("<?xml")
    assert t.index('id="glance"') < t.index('id="summary"')
    notes = t[t.index('id="notes"'):t.index('id="config"')]
    # notes as HTML (not a <pre> dump); the summary's points are not repeated there
    assert "<pre>" not in notes and "<p>" in notes
    assert "<details><summary>90% intervals and n per cell</summary>" in t
    assert "95% CI" not in t[:t.index('id="notes"')]
    curves = pd.read_csv(sim_analysis / "layer_curves.csv")
    ci = group_interval_table(curves, ("sim", "phone", "linear", "error"))
    assert re.fullmatch(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] n=\d+(/split)?", ci.iloc[0, 0])
    assert markdown_to_html("# T\n\n- a **b**\n- c `d`\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\npara") == (
        "<h3>T</h3>\n<ul><li>a <strong>b</strong></li><li>c <code>d</code></li></ul>\n"
        "<table><tr><th>x</th><th>y</th></tr><tr><td>1</td><td>2</td></tr></table>\n<p>para</p>")
    # The typing is read defensively: a typing table without the expected columns still draws.
    tables = {"layer_curves": curves, "typing": pd.DataFrame({"what": [1]})}
    assert glance_figure(tables) is not None


def test_each_summary_sentence_is_printed_once(sim_analysis, tmp_path):
    """The analysis notes no longer repeat the summary (issue 22 item 1): every summary point
    appears once in report.md, and findings.md still holds them all."""
    _, md = build_report(sim_analysis, tmp_path, {}, power=False)
    text = md.read_text()
    points = summary_points(Analysis.load(sim_analysis).tables)
    assert points and all(text.count(p.split("\n")[0]) == 1 for p in points), \
        [p.split("\n")[0] for p in points if text.count(p.split("\n")[0]) != 1]
    # every sentence of the summary once, a sub-point shared by several slices included
    lines = [x.strip() for p in points for x in p.split("\n")]
    assert all(text.count(x) == 1 for x in lines), [x for x in lines if text.count(x) != 1]
    findings = (sim_analysis / "findings.md").read_text()
    assert all(p.split("\n")[0] in findings for p in points)


def test_a_sentence_shared_by_two_slices_is_said_once(sim_analysis):
    """Two task slices with few test speakers each: the "How sure" caveat is the same sentence
    for both, so the summary says it once (issue 22: each summary sentence once)."""
    import pandas as pd

    tables = Analysis.load(sim_analysis).tables
    c = tables["layer_curves"]
    tables = dict(tables, layer_curves=pd.concat([c, c.assign(task="speaker")], ignore_index=True))
    lines = [x.strip() for p in summary_points(tables) for x in p.split("\n")]
    caveats = [x for x in lines if x.startswith("How sure")]
    assert len(caveats) == 1, caveats
    assert len(lines) == len(set(lines)), [x for x in lines if lines.count(x) > 1]
