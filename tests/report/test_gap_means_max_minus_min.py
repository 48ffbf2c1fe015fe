"""Issue 22 item 4: "gap" means max - min only. The debiased between-group variance
(``between_var``) is called by its name in the report's group tables and its sentences."""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def tables():
    from probekit.bias.analysis import analyze
    from probekit.testing.simulate import simulate_results

    df = simulate_results(n_groups=3, speakers_per_group=6, n_layers=4, seeds=(0, 1, 2),
                          train_sets=("all",), group_offset={"g2": 0.1}, task="phone")
    return analyze(df, n_boot=20, n_perm=49).tables


def test_group_tables_call_between_var_by_its_name(tables):
    from probekit.report.tables import (BETWEEN_VAR_LABEL, group_error_table,
                                        group_interval_table)

    c = tables["layer_curves"]
    key = tuple(c[["encoder", "task", "probe", "metric"]].iloc[0])
    for tab in (group_error_table(c, key), group_interval_table(c, key)):
        assert BETWEEN_VAR_LABEL in tab.index
        assert "between-group variance" in BETWEEN_VAR_LABEL
        assert not [r for r in tab.index if "gap" in r.lower()], list(tab.index)
        bv = c[(c["statistic"] == "between_var")].sort_values("layer_index")
        assert tab.loc[BETWEEN_VAR_LABEL].str.startswith(tuple(f"{x:.3f}" for x in bv["estimate"])
                                                         ).all()


def test_summary_sentences_do_not_call_between_var_a_gap(tables):
    from probekit.report.summary import summary_points

    text = "\n".join(summary_points(tables))
    assert "between-group variance" in text  # the trend sentence is there...
    assert "debiased gap" not in text and "Does the gap" not in text  # ...under its name
    s = tables["layer_summary"]
    assert (s["bias_measure"] == "between_var").any()


def test_dispersion_tests_name_the_error_difference():
    import numpy as np

    from probekit.bias.decomposition import dispersion_tests

    rng = np.random.default_rng(0)
    rows = [{"layer": "l0", "speaker": f"s{g}{i}", "group": f"g{g}",
             "dispersion": rng.normal() + g, "error": 0.2 + 0.1 * g + 0.01 * rng.normal()}
            for g in range(2) for i in range(5)]
    out = dispersion_tests(pd.DataFrame(rows), ["l0"], ["g0", "g1"], n_perm=9, rng=rng)
    assert "gap" not in out
    np.testing.assert_allclose(out["error_vs_rest"][0], [-0.1, 0.1], atol=0.02)
