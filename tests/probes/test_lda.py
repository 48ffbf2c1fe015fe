"""Closed-form LDA probe: equals sklearn without shrinkage, stats add, shrinkage helps."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from probekit.probes import LDAProbe, SufficientStats
from probekit.probes.lda import oas_shrinkage


def _data(n=600, d=10, k=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = rng.normal(0, 1, (k, d))
    X = centres[y] + rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.5
    return X, np.array(list("abcdefgh"))[y]


def test_equals_sklearn_lda_without_shrinkage():
    X, y = _data()
    ours = LDAProbe(shrinkage=None).fit(X, y)
    ref = LinearDiscriminantAnalysis(solver="lsqr").fit(X, y)
    np.testing.assert_allclose(ours.decision_function(X), ref.decision_function(X), atol=1e-8)
    assert list(ours.classes_) == list(ref.classes_)
    # a wrong prior or covariance would show: perturbing the fitted intercept breaks it
    bad = clone(ours).fit(X, y)
    bad.intercept_ = bad.intercept_ + np.arange(len(bad.intercept_))
    assert np.abs(bad.decision_function(X) - ref.decision_function(X)).max() > 0.5


def test_stats_of_groups_add_up():
    X, y = _data()
    a, b = slice(0, 250), slice(250, None)
    classes = np.unique(y)
    stats = SufficientStats.from_data(X[a], y[a], classes) + SufficientStats.from_data(X[b], y[b], classes)
    np.testing.assert_allclose(LDAProbe().fit_from_stats(stats).coef_, LDAProbe().fit(X, y).coef_,
                               rtol=1e-8, atol=1e-10)


def test_shrinkage_helps_when_dimensions_exceed_examples():
    rng = np.random.default_rng(1)
    d, k = 200, 5
    centres = rng.normal(0, 0.15, (k, d))
    def draw(n):
        y = rng.integers(0, k, n)
        return centres[y] + rng.normal(size=(n, d)), y
    Xtr, ytr = draw(150)
    Xte, yte = draw(2000)
    shrunk = LDAProbe().fit(Xtr, ytr)
    raw = LDAProbe(shrinkage=1e-6).fit(Xtr, ytr)
    assert 0.0 < shrunk.shrinkage_ <= 1.0
    assert shrunk.score(Xte, yte) > raw.score(Xte, yte) + 0.1


def test_oas_is_zero_free_and_full_for_isotropic():
    eye = np.eye(5)
    assert oas_shrinkage(eye, 10) == pytest.approx(1.0)  # already spherical: shrink fully
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 5))
    assert 0.0 < oas_shrinkage(A @ A.T / 5, 10_000) < 0.05  # lots of data: little shrinkage


@pytest.mark.parametrize("bad", [-0.1, 1.5, "auto"])
def test_bad_shrinkage_is_named(bad):
    X, y = _data()
    with pytest.raises((ValueError, TypeError), match="shrinkage"):
        LDAProbe(shrinkage=bad).fit(X, y)


def test_sklearn_contract_bits():
    X, y = _data()
    p = LDAProbe()
    assert p.fit(X.astype(np.float16), y) is p
    assert clone(p).get_params() == {"shrinkage": "oas", "random_state": None}
    assert p.predict_proba(X).sum(1) == pytest.approx(np.ones(len(X)))
    with pytest.raises(ValueError):
        LDAProbe().fit(X, np.array(["a"] * len(X)))
