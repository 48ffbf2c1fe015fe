"""Permutation tests: calibrated under the null, powerful against planted offsets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from probekit.bias.metrics import GroupMetrics
from probekit.bias.inference import holm
from probekit.bias.permutation import group_vs_rest, paired_signflip

N_SIM, ALPHA = 400, 0.05
# two-sided 99.9 % binomial acceptance region for the number of rejections out of N_SIM
LO, HI = binom.ppf(0.0005, N_SIM, ALPHA) / N_SIM, binom.ppf(0.9995, N_SIM, ALPHA) / N_SIM


def _null_table(rng, G=4, per=6):
    """Speakers with strongly varying error (beta, phi = 8), same distribution in every group."""
    g = np.repeat(np.arange(G), per)
    n = rng.integers(30, 90, g.size)
    return rng.binomial(n, rng.beta(2.4, 5.6, g.size)), n, g


def test_gap_test_rejects_at_nominal_rate_under_null():
    rng = np.random.default_rng(2024)
    rej = []
    for i in range(N_SIM):
        k, n, g = _null_table(rng)
        gm = GroupMetrics(k, n, g.astype(str), n_boot=2, n_perm=199, seed=i)
        rej.append(gm.p_values()["pooled_difference"] <= ALPHA)
    rate = float(np.mean(rej))
    assert LO <= rate <= HI, (rate, LO, HI)


def test_group_vs_rest_calibrated_under_null():
    rng = np.random.default_rng(7)
    ps = []
    for i in range(N_SIM):
        k, n, g = _null_table(rng)
        _, p = group_vs_rest(k / n, g, n_perm=199, rng=rng)
        ps.append(p[0])
    rate = float(np.mean(np.array(ps) <= ALPHA))
    assert LO <= rate <= HI, (rate, LO, HI)


def test_row_level_test_would_be_anticonservative():
    """Why speakers: a binomial test on pooled rows rejects far too often under the same null."""
    rng = np.random.default_rng(5)
    from scipy.stats import chi2_contingency
    rej = 0
    for _ in range(200):
        k, n, g = _null_table(rng)
        K = np.bincount(g, k)
        N = np.bincount(g, n)
        rej += chi2_contingency(np.c_[K, N - K])[1] <= ALPHA
    assert rej / 200 > 3 * ALPHA


def test_planted_offset_detected():
    rng = np.random.default_rng(1)
    hits = 0
    for i in range(50):
        k, n, g = _null_table(rng)
        n2 = n.copy()
        k = np.where(g == 2, rng.binomial(n2, np.clip(k / n + 0.3, 0, 1)), k)
        _, p = group_vs_rest(k / n, g, n_perm=199, rng=rng)
        hits += p[2] <= ALPHA
    assert hits / 50 >= 0.8


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests
    p = np.array([0.01, 0.04, 0.03, 0.2, np.nan])
    ok = ~np.isnan(p)
    np.testing.assert_allclose(holm(p)[ok], multipletests(p[ok], method="holm")[1])
    assert np.isnan(holm(p)[-1])


def test_signflip_null_and_power():
    rng = np.random.default_rng(0)
    d0 = rng.normal(0, 1, size=(300, 12))
    _, p0 = paired_signflip(d0, n_perm=199, rng=rng)
    assert LO - 0.02 <= np.mean(p0 <= ALPHA) <= HI + 0.02
    _, p1 = paired_signflip(d0 + 1.5, n_perm=199, rng=rng)
    assert np.mean(p1 <= ALPHA) > 0.9


def test_signflip_exact_for_few_speakers():
    d = np.array([-0.2, -0.1, -0.3, -0.15, -0.25])     # all five speakers favour one side
    _, p = paired_signflip(d, n_perm=999)
    assert p == pytest.approx(2 / 32)                  # the smallest two-sided p with 5
