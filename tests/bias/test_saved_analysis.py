"""Analysis.save / Analysis.load (issue 22 item 1): one list of table names, every table that
save wrote comes back, and save refuses what is not an analysis table."""

from __future__ import annotations

import pandas as pd
import pytest

from probekit.bias.analysis import TABLES, Analysis, analyze
from probekit.bias.errors import BiasInputError
from probekit.testing.simulate import simulate_results


@pytest.fixture(scope="module")
def small_analysis():
    df = simulate_results(n_groups=3, speakers_per_group=4, n_layers=3, seeds=(0, 1),
                          train_sets="full", group_offset={"g2": 0.2})
    return analyze(df, n_boot=20, n_perm=49, alpha=0.1, with_counts=False)


def test_load_returns_every_table_save_wrote(small_analysis, tmp_path):
    an = small_analysis
    an.tables["count_model"] = pd.DataFrame()  # an empty table is written and read back too
    an.notes.append("a note of the analysis")
    folder, n_figs = an.save(tmp_path / "an")
    assert n_figs > 0 and (folder / "findings.md").is_file()
    from probekit.bias.figures import analysis_figures
    curves = dict(analysis_figures(an.tables, alpha=an.alpha))
    fig = next(f for k, f in curves.items() if k.startswith("layer_curves"))
    assert "90% CI" in fig.axes[0].get_title()  # the bands' label states the analysis's level
    back = Analysis.load(folder)
    assert list(back.tables) == list(an.tables) and set(back.tables) <= set(TABLES)
    for name, t in an.tables.items():
        assert len(back.tables[name]) == len(t), name
        assert list(back.tables[name].columns) == [str(c) for c in t.columns], name
    assert back.notes == an.notes and back.alpha == 0.1
    assert back.provenance["analysis"]["alpha"] == 0.1
    # without a findings text, the note holds the analysis's own notes (no prose in bias/)
    assert "a note of the analysis" in (folder / "findings.md").read_text()


def test_save_refuses_a_table_outside_the_one_list(small_analysis, tmp_path):
    an = Analysis(tables={**small_analysis.tables, "my_table": pd.DataFrame({"a": [1]})})
    with pytest.raises(BiasInputError, match="'my_table' is not one of probekit's tables"):
        an.save(tmp_path / "an")
    assert not (tmp_path / "an").exists()
