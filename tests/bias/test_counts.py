"""Count models of per-(speaker, split) errors: GEE binomial / Poisson with a bias-reduced sandwich."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probekit.bias.counts import count_model, mancl_derouen_cov
from probekit.testing.simulate import simulate_results

COLUMNS = ["encoder", "task", "probe", "metric", "group_attribute", "train_set", "layer_index",
           "layer", "group", "family", "effect", "ratio", "ci_low", "ci_high", "p_value",
           "p_holm", "group_rate", "n_speakers", "n_splits", "status"]


def _table(k, n, groups, speakers, splits, metric="error"):
    return pd.DataFrame({"encoder": "e", "layer": "l0", "layer_index": 0, "task": "phone",
                         "probe": "linear", "group_attribute": "accent", "train_set": "all",
                         "seed": splits, "test_group": groups, "unit": speakers,
                         "metric": metric, "value": np.asarray(k, float) / np.asarray(n, float),
                         "n": n})


def test_point_estimates_match_a_hand_check():
    # one split, one row per speaker: GEE = binomial GLM; with a saturated group model the
    # fitted log-odds are each group's pooled log-odds, so effects are their deviations
    k = [10, 14, 30, 26, 5, 7]
    n = [50, 50, 60, 60, 40, 40]
    g = ["a", "a", "b", "b", "c", "c"]
    r = count_model(_table(k, n, g, [f"s{i}" for i in range(6)], 0)).set_index("group")
    assert (r["status"] == "ok").all() and (r["family"] == "binomial").all()
    pooled = pd.Series({"a": 24 / 100, "b": 56 / 120, "c": 12 / 80})
    lo = np.log(pooled / (1 - pooled))
    np.testing.assert_allclose(r.loc[["a", "b", "c"], "effect"], lo - lo.mean(), rtol=1e-6)
    np.testing.assert_allclose(r["ratio"], np.exp(r["effect"]))
    np.testing.assert_allclose(r.loc[["a", "b", "c"], "group_rate"], pooled)
    assert abs(r["effect"].sum()) < 1e-9
    assert (r["df"] == 6 - 3).all()
    assert set(COLUMNS) <= set(r.reset_index().columns)


def test_sandwich_matches_statsmodels_where_statsmodels_is_right():
    import statsmodels.api as sm
    from statsmodels.genmod.generalized_estimating_equations import GEE

    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(12), 3)
    n = rng.integers(20, 60, size=g.size).astype(float)
    x = (g % 3 == 0).astype(float)
    k = rng.binomial(n.astype(int), 0.2 + 0.1 * x).astype(float)
    X = np.column_stack([np.ones_like(x), x, np.tile([0, 1, 0], 12), np.tile([0, 0, 1], 12)])
    # Poisson, no weights: statsmodels' own bias_reduced covariance
    r = GEE(k, X, groups=g, family=sm.families.Poisson(), cov_struct=sm.cov_struct.Exchangeable(),
            offset=np.log(n)).fit(scale="X2", cov_type="bias_reduced")
    rho = r.model.cov_struct.dep_params
    np.testing.assert_allclose(mancl_derouen_cov(X, k, r.fittedvalues, np.ones_like(k), g, rho,
                                                 "poisson"), r.cov_params(), rtol=1e-8)
    # binomial proportions weighted by n, independence: the uncorrected robust covariance,
    # and the same point estimates as the expanded Bernoulli fit
    r = GEE(k / n, X, groups=g, family=sm.families.Binomial(),
            cov_struct=sm.cov_struct.Independence(), weights=n).fit(scale="X2")
    np.testing.assert_allclose(mancl_derouen_cov(X, k / n, r.fittedvalues, n, g, 0.0, "binomial",
                                                 bias_reduced=False), r.cov_robust, rtol=1e-8)
    rows = np.repeat(np.arange(g.size), n.astype(int))
    yb = np.concatenate([np.r_[np.ones(int(a)), np.zeros(int(b - a))] for a, b in zip(k, n)])
    rb = GEE(yb, X[rows], groups=g[rows], family=sm.families.Binomial(),
             cov_struct=sm.cov_struct.Independence()).fit()
    np.testing.assert_allclose(r.params, rb.params, rtol=1e-6)


def test_null_calibration_with_unequal_speaker_variance_and_power():
    rej, power, failed = [], [], 0
    for i in range(120):
        sim = dict(n_groups=4, speakers_per_group=8, n_layers=1, seeds=(0, 1, 2),
                   items_per_speaker=60, include_all_rows=False, random_state=i)
        r = count_model(simulate_results(variance_inflation={"g1": 6.0}, **sim))
        if not (r["status"] == "ok").all():   # said in the table, never silent
            assert r["p_value"].isna().all() and r["status"].str.contains("converge").all()
            failed += 1
            continue
        rej.append(np.mean(r["p_value"] < 0.05))
        if i < 25:
            a = count_model(simulate_results(group_offset={"g0": 0.2}, **sim))
            power.append(a.loc[a["group"] == "g0", "p_value"].iloc[0] < 0.05)
    assert failed <= 3
    assert 0.01 <= np.mean(rej) <= 0.10, np.mean(rej)
    assert np.mean(power) >= 0.8, np.mean(power)


def test_cer_table_uses_poisson_and_recovers_a_rate_ratio():
    rng = np.random.default_rng(2)
    rows = []
    for gi, g in enumerate(["a", "b", "c"]):
        for s in range(8):
            lam = 0.4 * (1.5 if g == "b" else 1.0) * np.exp(rng.normal(0, 0.2))
            for split in (0, 1):
                n = int(rng.integers(80, 120))
                rows.append((g, f"{g}{s}", split, rng.poisson(lam * n * (1.3 if g == "b" else 1)), n))
    g, spk, split, k, n = map(np.array, zip(*rows))
    t = _table(k, n, g, spk, split, metric="cer")
    t.loc[0, "value"] = 1.5                       # an edit rate above 1 is fine for Poisson
    t.loc[0, "n"] = 10
    r = count_model(t).set_index("group")
    assert (r["family"] == "poisson").all() and (r["status"] == "ok").all()
    assert r.loc["b", "effect"] > 0 and r.loc["b", "p_value"] < 0.01
    assert r.loc["b", "ci_low"] < r.loc["b", "effect"] < r.loc["b", "ci_high"]
    # the same counts as an "error" metric are not binomial: a status row, no exception
    bad = count_model(t.assign(metric="error"))
    assert bad["status"].str.startswith("not fitted: counts exceed n").all()
    assert bad["effect"].isna().all()


@pytest.mark.parametrize("mutate,status", [
    (lambda t: t.assign(value=0.0), "not fitted: zero errors everywhere"),
    (lambda t: t.assign(value=np.where(t["test_group"] == "g1", 0.0, t["value"])),
     "not fitted: a group has no errors (separation)"),
    (lambda t: t.assign(value=np.where(t["test_group"] == "g1", 1.0, t["value"])),
     "not fitted: a group has errors on every item (separation)"),
    (lambda t: t.assign(value=0.25), "not fitted: identical rates everywhere"),
    (lambda t: t[t["unit"].str.endswith(("_s0", "_s4", "_s8"))],
     "not fitted: 3 speakers for"),
])
def test_degenerate_tables_give_status_rows(mutate, status):
    t = simulate_results(n_groups=3, speakers_per_group=4, n_layers=2, seeds=(0, 1, 2),
                         items_per_speaker=40)
    r = count_model(mutate(t))
    assert r["status"].str.startswith(status).all(), r["status"].unique()
    assert r[["effect", "ratio", "ci_low", "ci_high", "p_value", "p_holm"]].isna().all().all()
    assert len(r) == 2 * 3


def test_one_row_per_speaker_and_holm_over_layers_and_groups():
    t = simulate_results(n_groups=3, speakers_per_group=6, n_layers=3, seeds=(0,),
                         items_per_speaker=60, group_offset={"g2": 0.15})
    r = count_model(t)
    assert (r["status"] == "ok").all() and (r["n_splits"] == 1).all()
    assert (r["working_corr"] == "independence (one row per speaker)").all()
    from statsmodels.stats.multitest import multipletests

    np.testing.assert_allclose(r["p_holm"], multipletests(r["p_value"], method="holm")[1])
    assert (r.loc[r["group"] == "g2", "effect"] > 0).all()
