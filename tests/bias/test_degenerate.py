"""Degenerate cells are named, never read as "not worse" (issue 18, item 5)."""

import numpy as np

from probekit.bias import layerwise_bias
from probekit.testing.simulate import simulate_results


def _speaker_id_table(**kw):
    df = simulate_results(n_groups=3, speakers_per_group=kw.pop("spk", 6), n_layers=2,
                          seeds=(0, 1, 2), include_all_rows=False, task="speaker",
                          random_state=0, **kw)
    df.loc[df["test_group"] == "g2", "value"] = 1.0       # every item of g2 wrong
    df.loc[df["test_group"] != "g2", "value"] = 0.0       # none of the others
    return df


def test_a_group_at_error_one_against_zero_is_degenerate_and_worse():
    # before: Welch t = 0 for a zero standard error, p = 0.47, "not worse"
    c = layerwise_bias(_speaker_id_table(), n_boot=99, n_perm=199).curves
    g = c[c["statistic"] == "group:g2"]
    assert (g["estimate"] == 1.0).all() and (g["ci_low"] == 1.0).all()
    assert (g["p_value"] <= 0.05).all() and (g["p_fwer"] <= 0.05).all(), g["p_value"]
    assert g["degenerate"].str.contains("all errors in one group").all()
    assert g["degenerate"].str.contains("group at error 1 while the others are not").all()
    eq = c[c["statistic"] == "max_abs_t"]
    assert eq["degenerate"].str.contains(r"all errors in one group \(g2\)").all()
    # an ordinary cell is not named
    ok = layerwise_bias(simulate_results(n_groups=3, speakers_per_group=6, n_layers=2,
                                         seeds=(0, 1, 2), include_all_rows=False),
                        n_boot=49, n_perm=199).curves
    assert (ok.loc[ok["statistic"].str.startswith("group:"), "degenerate"] == "").all()


def test_a_test_that_cannot_reach_the_level_says_so():
    # 3 groups x 2 speakers, one tested per split... every speaker tested: C(6, 2) = 15
    # arrangements of a group: the smallest one-sided p is 1/15 > 0.05
    df = simulate_results(n_groups=3, speakers_per_group=2, n_layers=2, seeds=(0, 1),
                          test_speakers=1.0, include_all_rows=False, random_state=1)
    c = layerwise_bias(df, n_boot=49, n_perm=999).curves
    g = c[c["statistic"].str.startswith("group:")]
    assert np.allclose(g["p_min"], 1 / 15)
    assert g["degenerate"].str.contains("cannot reach 0.05 with 2 vs 4 speakers").all()
    assert (g["p_value"] >= 1 / 15 - 1e-9).all()
