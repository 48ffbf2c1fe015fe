"""Group metrics: agreement with fairlearn, input errors, determinism, speaker-level CIs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from probekit.bias import GroupMetrics, TooFewSpeakersError, BiasInputError
from probekit.testing.simulate import simulate_results


def _speakers(rng, n_groups=4, per=6, spread=20.0):
    g = np.repeat([f"g{i}" for i in range(n_groups)], per)
    n = rng.integers(20, 80, g.size)
    p = rng.beta(0.3 * spread, 0.7 * spread, g.size)
    return rng.binomial(n, p), n, g


def test_matches_fairlearn_metricframe():
    fairlearn = pytest.importorskip("fairlearn.metrics")
    rng = np.random.default_rng(3)
    k, n, g = _speakers(rng)
    gm = GroupMetrics(k, n, g, n_boot=50, n_perm=50)
    # expand speakers into items: k errors then n - k correct items
    y_true = np.ones(n.sum(), int)
    y_pred = np.concatenate([np.r_[np.zeros(ki, int), np.ones(ni - ki, int)] for ki, ni in zip(k, n)])
    sens = np.repeat(g, n)
    err = lambda yt, yp: float(np.mean(yt != yp))
    mf = fairlearn.MetricFrame(metrics=err, y_true=y_true, y_pred=y_pred, sensitive_features=sens)
    assert gm.overall == pytest.approx(mf.overall, abs=1e-12)
    pd.testing.assert_series_equal(gm.by_group, mf.by_group.rename("error").rename_axis("group"),
                                   check_exact=False, atol=1e-12)
    assert gm.difference() == pytest.approx(mf.difference(), abs=1e-12)
    assert gm.ratio() == pytest.approx(mf.ratio(), abs=1e-12)


def test_from_results_equals_arrays_and_types_fixed():
    df = simulate_results(n_groups=3, speakers_per_group=4, n_layers=1, seeds=(0, 1))
    df = df[df.train_set == "all"]
    a = GroupMetrics.from_results(df, n_boot=100, n_perm=100, seed=1)
    per = (df[df.unit != "all"].assign(k=lambda d: d.value * d.n)
           .groupby(["unit", "test_group"], as_index=False)[["k", "n"]].sum())
    b = GroupMetrics(per.k.tolist(), per.n.tolist(), per.test_group.tolist(), per.unit.tolist(),
                     n_boot=100, n_perm=100, seed=1)
    pd.testing.assert_frame_equal(a.summary(), b.summary())
    for m in (a, b):
        assert isinstance(m.overall, float) and isinstance(m.difference(), float)
        assert isinstance(m.by_group, pd.Series) and m.by_group.dtype == float
        assert list(m.summary().columns) == ["statistic", "weighting", "estimate", "ci_low",
                                             "ci_high", "p_value", "n_speakers"]
        # item-pooled rows are named so: one name never means two estimators
        assert set(m.summary()["weighting"]) == {"items"}
        assert m.summary()["statistic"].str.startswith("pooled_").all()


def test_deterministic_given_seed_and_seed_matters():
    k, n, g = _speakers(np.random.default_rng(0))
    s1 = GroupMetrics(k, n, g, seed=5, n_boot=200, n_perm=200).summary()
    s2 = GroupMetrics(k, n, g, seed=5, n_boot=200, n_perm=200).summary()
    s3 = GroupMetrics(k, n, g, seed=6, n_boot=200, n_perm=200).summary()
    pd.testing.assert_frame_equal(s1, s2)
    assert not s1.equals(s3)


def test_errors_name_the_bad_item():
    k, n, g = _speakers(np.random.default_rng(0))
    g = g.astype(object)
    g[-1] = "lonely"
    with pytest.raises(TooFewSpeakersError, match="'lonely'"):
        GroupMetrics(k, n, g)
    df = simulate_results(n_groups=2, speakers_per_group=3, n_layers=1, seeds=(0, 1))
    with pytest.raises(BiasInputError, match="'n'"):
        GroupMetrics.from_results(df.drop(columns="n"))
    with pytest.raises(BiasInputError, match="'layer'"):
        GroupMetrics.from_results(simulate_results(n_groups=2, speakers_per_group=3, n_layers=2))
    bad = df.copy()
    spk = bad.loc[bad.unit != "all", "unit"].value_counts().index[0]   # tested in both splits
    bad.loc[bad.index[bad.unit == spk][0], "test_group"] = "g1" if spk.startswith("g0") else "g0"
    with pytest.raises(BiasInputError, match=spk):
        GroupMetrics.from_results(bad)
    with pytest.raises(BiasInputError, match="unit == 'all'"):
        GroupMetrics.from_results(df[df.unit == "all"])


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_by_group_invariant_to_speaker_order(seed):
    rng = np.random.default_rng(seed)
    k, n, g = _speakers(rng, n_groups=3, per=3)
    perm = rng.permutation(k.size)
    a = GroupMetrics(k, n, g, n_boot=20, n_perm=20)
    b = GroupMetrics(k[perm], n[perm], g[perm], n_boot=20, n_perm=20)
    pd.testing.assert_series_equal(a.by_group, b.by_group)
    assert a.difference() == pytest.approx(b.difference())


def test_cluster_bootstrap_wider_than_row_bootstrap_when_speakers_differ():
    rng = np.random.default_rng(11)
    k, n, g = _speakers(rng, n_groups=2, per=10, spread=4.0)   # very unequal speakers
    gm = GroupMetrics(k, n, g, n_boot=2000, n_perm=10, seed=0)
    ci = gm.ci()
    # row bootstrap: items resampled within each group, ignoring speakers
    K = pd.Series(k).groupby(g).sum().to_numpy()
    N = pd.Series(n).groupby(g).sum().to_numpy()
    row = rng.binomial(N, K / N, size=(2000, 2)) / N
    row_width = np.subtract(*np.quantile(row, [0.975, 0.025], axis=0))
    cl_width = (ci["ci_high"] - ci["ci_low"]).loc[["pooled_group:g0", "pooled_group:g1"]].to_numpy()
    assert (cl_width > 1.5 * row_width).all(), (cl_width, row_width)
    # and with identical speakers (no speaker variance) the two agree within 25 %
    n2 = np.full(20, 60)
    k2 = rng.binomial(n2, 0.3)
    ci2 = GroupMetrics(k2, n2, g, n_boot=4000, n_perm=10, seed=0, ci_method="percentile").ci()
    w2 = (ci2["ci_high"] - ci2["ci_low"]).loc[["pooled_group:g0", "pooled_group:g1"]].to_numpy()
    row2 = rng.binomial(600, k2.reshape(2, 10).sum(1) / 600, size=(4000, 2)) / 600
    rw2 = np.subtract(*np.quantile(row2, [0.975, 0.025], axis=0))
    assert np.allclose(w2, rw2, rtol=0.25), (w2, rw2)


def test_one_core_serves_both_weightings_on_any_leading_axes():
    from probekit.bias.inference import between_group_variance
    from probekit.bias.metrics import group_statistics, statistic_name, statistics_of

    rng = np.random.default_rng(3)
    codes = np.repeat([0, 1, 2], [2, 3, 4])
    K = rng.integers(0, 20, (5, codes.size)).astype(float)
    N = rng.integers(20, 200, (5, codes.size)).astype(float)   # unequal items per speaker
    it = group_statistics(K, N, codes, 3, weighting="items")
    sp = group_statistics(K, N, codes, 3, weighting="speakers")
    for r in range(5):
        pooled = np.array([K[r, codes == g].sum() / N[r, codes == g].sum() for g in range(3)])
        mean = np.array([(K[r] / N[r])[codes == g].mean() for g in range(3)])
        assert np.allclose(it["by_group"][r], pooled) and np.allclose(sp["by_group"][r], mean)
        assert it["overall"][r] == pytest.approx(K[r].sum() / N[r].sum())
        assert sp["overall"][r] == pytest.approx((K[r] / N[r]).mean())
        for e, st in ((pooled, it), (mean, sp)):
            assert st["difference"][r] == pytest.approx(e.max() - e.min())
            assert st["macro"][r] == pytest.approx(e.mean())
            assert st["std"][r] == pytest.approx(e.std())
            assert st["ratio"][r] == pytest.approx(e.min() / e.max())
        # a replicate axis gives the same numbers row by row
        one = group_statistics(K[r], N[r], codes, 3, weighting="items")
        assert one["difference"] == pytest.approx(it["difference"][r])
    assert not np.allclose(it["by_group"], sp["by_group"])      # two estimators, two names
    assert np.allclose(sp["between_var"], between_group_variance(K / N, codes, 3))
    assert "between_var" not in it and "between_var" in statistics_of("speakers")
    assert statistic_name("group", "a", weighting="items") != statistic_name("group", "a")
    # a gap needs two groups with data; a group without data takes no part
    one_group = group_statistics(K[:, codes == 0], N[:, codes == 0], np.zeros(2, int), 1,
                                 weighting="items")
    assert np.isnan(one_group["difference"]).all() and np.isnan(one_group["ratio"]).all()
    holes = np.where(codes == 2, np.nan, K / N)
    h = group_statistics(holes, None, codes, 3, weighting="speakers")
    assert np.allclose(h["difference"], np.abs(sp["by_group"][:, 0] - sp["by_group"][:, 1]))
    with pytest.raises(ValueError, match="weighting"):
        group_statistics(K, N, codes, 3, weighting="utterances")


def test_maxt_stepdown_sits_between_raw_and_single_step():
    from probekit.bias.inference import maxt_adjust, maxt_stepdown, permutation_pvalue

    rng = np.random.default_rng(0)
    null = rng.normal(size=(999, 6))
    T = np.array([3.5, 2.6, 2.2, 0.5, np.nan, 1.0])
    sd = maxt_stepdown(T, null)
    ss = maxt_adjust(T, null)
    raw = permutation_pvalue(T, null)
    ok = ~np.isnan(T)
    assert np.isnan(sd[~ok]).all()
    assert (sd[ok] <= ss[ok] + 1e-12).all() and (sd[ok] >= raw[ok] - 1e-12).all()
    # the most extreme hypothesis gets the single-step p; the least extreme its raw p
    # among the survivors (monotone in T)
    assert sd[0] == pytest.approx(ss[0])
    assert sd[3] == pytest.approx(max(raw[3], sd[ok].max()))
    order = np.argsort(-np.nan_to_num(T, nan=-np.inf))[: ok.sum()]
    assert (np.diff(sd[order]) >= -1e-12).all()
