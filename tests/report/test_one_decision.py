"""One level, one decision (issues 18.3, 19.5): the figure marks, the bold cells, the glance
marks and the sentences of one report name the same layers; summary and tables agree on types;
adding an encoder changes no other encoder's conclusions."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

#: family-wise p-values written into the tables: one clearly decided, one between the
#: per-encoder finding level and 0.05 / tasks, one between that and 0.05, one not decided.
P_LAYERS = [0.001, 0.004, 0.03, 0.3]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    """An analysis of two tasks (phone with typing, speaker without) whose p-values are set
    so that the levels the report could use (0.05, 0.05 / tasks, the finding level) mark
    different layers; its decision columns are dropped so the library takes them itself."""
    from probekit.bias.analysis import Analysis, analyze
    from probekit.testing.simulate import simulate_results

    ph = simulate_results(n_groups=3, speakers_per_group=6, n_layers=4, seeds=(0, 1, 2),
                          train_sets="full", group_offset={"g2": 0.1}, task="phone")
    sp = simulate_results(n_groups=3, speakers_per_group=6, n_layers=4, seeds=(0, 1, 2),
                          train_sets=("all",), task="speaker", random_state=1)
    an = analyze(pd.concat([ph, sp], ignore_index=True), n_boot=20, n_perm=49)
    t = {k: v.drop(columns=[c for c in v.columns if c.startswith("decision")])
         for k, v in an.tables.items() if k != "decision_families"}
    c = t["layer_curves"]
    grp = c["statistic"].astype(str).str.startswith("group:")
    c.loc[grp, "p_fwer"] = 1.0
    for stat in ("group:g2", "max_abs_t"):
        for li, p in enumerate(P_LAYERS):
            c.loc[(c["statistic"] == stat) & (c["layer_index"] == li), "p_fwer"] = p
    ty = t["typing"]
    ty["systematic_p_fwer"] = 1.0
    t["layer_summary"]["p_value"] = 0.9
    t["own_vs_broad"]["p_less"] = 0.9
    root = tmp_path_factory.mktemp("one_decision")
    return lambda: Analysis(tables={k: v.copy() for k, v in t.items()}, notes=[]), root


def _layers_in(text: str, pattern: str) -> set[str]:
    m = re.search(pattern, text)
    return set(re.findall(r"layer\d", m.group(1))) if m else set()


def test_figure_marks_bold_cells_glance_and_text_name_the_same_layers(crafted):
    from probekit.bias import figures
    from probekit.bias.analysis import Analysis
    from probekit.report import build_report
    from probekit.report.build import _glance_data

    make, root = crafted
    an = make()
    an.save(root / "analysis", overwrite=True)
    build_report(root / "analysis", root / "report", power=False)  # power: test_power.py
    md = (root / "report" / "report.md").read_text()
    tables = Analysis.load(root / "analysis").tables
    summary = md[md.index("## Summary"):md.index("## Figures")]
    phone = [p for p in summary.split("\n- ") if "phone recognition" in p][0]
    text_unequal = _layers_in(phone, r"at \d of 4 layers \(([^)]*)\)")
    text_worse = _layers_in(phone, r"\*\*g2\*\* at ([^.;]*)")
    # bold cells of the phone table (g2 row and the unequal-means row)
    tab = md[md.index("### sim: phone recognition"):]
    head = [h.strip() for h in tab.splitlines()[2].strip("|").split("|")]
    def bold(row):
        line = next(x for x in tab.splitlines() if x.startswith(f"| {row} |"))
        cells = [x.strip() for x in line.strip("|").split("|")]
        return {h for h, v in zip(head[1:], cells[1:]) if v.startswith("**")}
    # the layer-curves figure's circles (unequal means) and triangles (worse)
    c = tables["layer_curves"]
    fig = figures.layer_curves(c[(c["task"] == "phone") & (c["metric"] == "error")])
    labels = dict(zip(c["layer_index"], c["layer"]))
    circles = next(col for col in fig.axes[1].collections
                   if str(col.get_label()).startswith("unequal means"))
    fig_unequal = {labels[int(round(x))] for x, _ in circles.get_offsets()}
    groups, layers, _, marks = _glance_data(tables, ("sim", "phone", "linear", "error"), 0.05)
    glance_g2 = {layers[i] for i, m in enumerate(marks[groups.index("g2")]) if m}
    assert text_unequal == bold("unequal means p (family-wise)") == fig_unequal
    assert text_worse == bold("g2") == glance_g2
    assert text_worse == text_unequal == {"layer0", "layer1"}  # the finding level lies in (0.004, 0.03)


def test_summary_and_typing_table_agree_on_types(crafted, tmp_path):
    """A type the typing table shows is a type the summary states (no stricter re-test)."""
    from probekit.bias.analysis import Analysis
    from probekit.report import summary_points

    make, _ = crafted
    an = make()
    ty = an.tables["typing"]
    g2 = ty["group"] == "g2"
    # the typing's own "worse" p-values, typed at 0.05 / 3 as type_groups does
    ty.loc[g2, "worse_p_fwer"] = ty.loc[g2, "layer_index"].map(dict(enumerate([0.001, 0.004, 0.012, 0.3])))
    ty["type"] = np.where(ty["worse_p_fwer"] <= 0.05 / 3, "worse, unexplained", "neither")
    an.save(tmp_path / "analysis")
    tables = Analysis.load(tmp_path / "analysis").tables
    shown = tables["typing"][tables["typing"]["type"] != "neither"]
    assert len(shown) and (shown["type"] == "worse, unexplained").all()
    text = "\n".join(summary_points(tables))
    m = re.search(r"Systematic or random\? g2: worse, unexplained at ([^.]*)\.", text)
    assert m and set(re.findall(r"layer\d", m.group(1))) == set(shown["layer"])


def test_adding_an_encoder_changes_no_other_encoders_conclusions(crafted):
    from probekit.report import summary_points

    make, _ = crafted
    an = make()
    two = {k: pd.concat([v, v.assign(encoder="other")], ignore_index=True)
           for k, v in an.tables.items()}
    mine = lambda pts: [p for p in pts if p.startswith("**sim,") or "about **sim**" in p]
    one_pts, two_pts = mine(summary_points(an.tables)), mine(summary_points(two))
    assert len(one_pts) >= 2 and one_pts == two_pts


def test_at_a_glance_shows_every_encoder(crafted):
    """A two-encoder, three-task study's first screen has every encoder's panels (it cut at 4
    panels, so the second encoder showed one task)."""
    from probekit.report.build import glance_figure

    make, _ = crafted
    t = make().tables
    three = {k: pd.concat([v, v[v["task"] == "speaker"].assign(task="group:accent")],
                          ignore_index=True) if "task" in v.columns else v for k, v in t.items()}
    two = {k: pd.concat([v, v.assign(encoder="wavlm")], ignore_index=True)
           if "encoder" in v.columns else v for k, v in three.items()}
    fig = glance_figure(two)
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    for enc in ("sim", "wavlm"):
        assert sum(x.startswith(f"{enc}:") for x in titles) == 3, titles


def test_a_level_the_permutations_cannot_reach_is_said():
    from probekit.bias.analysis import analyze
    from probekit.testing.simulate import simulate_results
    from probekit.report import summary_points

    df = simulate_results(n_groups=3, speakers_per_group=6, n_layers=3, seeds=(0, 1, 2),
                          train_sets=("all",), group_offset={"g2": 0.3})
    an = analyze(df, n_boot=10, n_perm=19)   # smallest p 0.05 > the finding level
    assert any("below the smallest p-value 19 permutations can reach" in n and "n_perm >=" in n
               for n in an.notes), an.notes
    text = "\n".join(summary_points(an.tables, notes=an.notes))
    assert "cannot find anything here" in text and "worse" in text
