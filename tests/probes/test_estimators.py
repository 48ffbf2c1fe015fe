"""Probe estimators: agreement with sklearn, stats reuse, batching, MLP capacity, sklearn contract."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.preprocessing import StandardScaler

from sklearn.utils.estimator_checks import parametrize_with_checks

from probekit.probes import (CTCProbe, LinearProbe, MLPProbe, SufficientStats, TorchLogisticProbe,
                             fit_logistic_batched)
from probekit.probes.grid import GridError, available_probes, make_probe, register_probe
from probekit.registry import RegistryError


@pytest.fixture(scope="module")
def blobs():
    """Well-conditioned 4-class problem, (600, 12), not separable (so coefficients are finite)."""
    X, y = make_classification(n_samples=600, n_features=12, n_informative=8, n_redundant=0,
                               n_classes=4, n_clusters_per_class=1, class_sep=1.0, random_state=0)
    return X, y


# ---------------------------------------------------------------- torch logistic vs sklearn
def test_torch_logistic_matches_sklearn(blobs):
    X, y = blobs
    Xtr, ytr, Xte, yte = X[:400], y[:400], X[400:], y[400:]
    ours = TorchLogisticProbe(C=0.5, standardize=False, dtype="float64", tol=1e-9, max_iter=500).fit(Xtr, ytr)
    ref = LogisticRegression(C=0.5, solver="lbfgs", tol=1e-10, max_iter=5000).fit(Xtr, ytr)
    assert abs(ours.score(Xte, yte) - ref.score(Xte, yte)) <= 0.01
    assert np.abs(ours.coef_ - ref.coef_).max() < 1e-4
    # Intercepts of a softmax are defined up to a common shift; compare them centred.
    centred = lambda b: b - b.mean()  # noqa: E731
    assert np.abs(centred(ours.intercept_) - centred(ref.intercept_)).max() < 1e-4
    np.testing.assert_allclose(ours.predict_proba(Xte), ref.predict_proba(Xte), atol=1e-5)


def test_torch_logistic_float32_default_within_one_point(blobs):
    X, y = blobs
    ours = TorchLogisticProbe(C=1.0, standardize=False).fit(X[:400], y[:400])
    ref = LogisticRegression(C=1.0, max_iter=2000).fit(X[:400], y[:400])
    assert abs(ours.score(X[400:], y[400:]) - ref.score(X[400:], y[400:])) <= 0.01
    assert np.abs(ours.coef_ - ref.coef_).max() < 5e-3


def test_torch_logistic_penalty_is_sklearn_scaled(blobs):
    """A stronger penalty (small C) must shrink the weights exactly as sklearn's does."""
    X, y = blobs
    small = TorchLogisticProbe(C=1e-3, standardize=False, dtype="float64", tol=1e-10).fit(X, y)
    ref = LogisticRegression(C=1e-3, tol=1e-12, max_iter=5000).fit(X, y)
    np.testing.assert_allclose(np.linalg.norm(small.coef_), np.linalg.norm(ref.coef_), rtol=1e-4)


# ---------------------------------------------------------------- batched logistic
def test_batched_equals_separate_fits(blobs):
    X, y = blobs
    rng = np.random.default_rng(1)
    labels = np.stack([y, (y + 1) % 4, rng.permutation(y)])              # K=3 label vectors
    masks = (rng.random((3, len(y))) < 0.6).astype(float)                # K=3 row subsets
    W, b, _ = fit_logistic_batched(X, labels, 4, weights=masks, C=[0.5, 1.0, 2.0],
                                   dtype="float64", tol=1e-9, max_iter=1000)
    assert W.shape == (3, X.shape[1], 4) and b.shape == (3, 4)
    for k, c in enumerate([0.5, 1.0, 2.0]):
        rows = masks[k] > 0
        Wk, bk, _ = fit_logistic_batched(X[rows], labels[k, rows], 4, C=c, dtype="float64",
                                         tol=1e-9, max_iter=1000)
        np.testing.assert_allclose(W[k], Wk[0], atol=1e-5)
        np.testing.assert_allclose(b[k] - b[k].mean(), bk[0] - bk[0].mean(), atol=1e-5)


def test_batched_rejects_bad_shapes(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="weights must have shape"):
        fit_logistic_batched(X, y, 4, weights=np.ones((2, len(y) - 1)))
    with pytest.raises(ValueError, match="class indices"):
        fit_logistic_batched(X, y, 3)
    with pytest.raises(ValueError, match="no rows"):
        fit_logistic_batched(X, y, 4, weights=np.zeros((1, len(y))))


# ---------------------------------------------------------------- closed-form linear probe
def test_linear_probe_equals_ridge_classifier(blobs):
    X, y = blobs
    X = X * np.arange(1, 13) + 5.0  # unequal scales and non-zero means, so standardisation matters
    ours = LinearProbe(alpha=3.0).fit(X, y)
    Z = StandardScaler().fit_transform(X)
    ref = RidgeClassifier(alpha=3.0).fit(Z, y)
    # RidgeClassifier codes targets as {-1, 1}: its scores are 2 * ours - 1.
    np.testing.assert_allclose(2 * ours.decision_function(X) - 1, ref.decision_function(Z), atol=1e-8)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(Z))


def test_linear_probe_equals_explicit_solve_without_standardisation(blobs):
    X, y = blobs
    Y = np.eye(4)[y]
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    W = np.linalg.solve(Xc.T @ Xc + 2.0 * np.eye(X.shape[1]), Xc.T @ Yc)
    ours = LinearProbe(alpha=2.0, standardize=False).fit(X, y)
    np.testing.assert_allclose(ours.coef_, W.T, atol=1e-10)
    np.testing.assert_allclose(ours.intercept_, Y.mean(0) - X.mean(0) @ W, atol=1e-10)


def test_stats_reuse_add_and_subtract(blobs):
    X, y = blobs
    labels = np.array(["aa", "b", "ch", "d"])[y]
    a, b = slice(0, 250), slice(250, None)
    only_a = labels[a] != "aa"  # group A lacks the first phone: stats must still align by label
    sa = SufficientStats.from_data(X[a][only_a], labels[a][only_a])
    sb = SufficientStats.from_data(X[b], labels[b])
    Xab = np.concatenate([X[a][only_a], X[b]])
    yab = np.concatenate([labels[a][only_a], labels[b]])
    pooled = LinearProbe(alpha=1.0).fit_from_stats(sa + sb)
    direct = LinearProbe(alpha=1.0).fit(Xab, yab)
    np.testing.assert_array_equal(pooled.classes_, direct.classes_)
    np.testing.assert_allclose(pooled.coef_, direct.coef_, atol=1e-9)
    np.testing.assert_allclose(pooled.intercept_, direct.intercept_, atol=1e-9)
    back = LinearProbe(alpha=1.0).fit_from_stats((sa + sb) - sa)
    np.testing.assert_allclose(back.coef_, LinearProbe(alpha=1.0).fit(X[b], labels[b]).coef_, atol=1e-8)
    with pytest.raises(ValueError, match="not part of"):
        sa - (sa + sb)


# ---------------------------------------------------------------- MLP capacity
def test_mlp_learns_xor_a_linear_probe_cannot():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(800, 2))
    y = np.where((X[:, 0] > 0) ^ (X[:, 1] > 0), "odd", "even")
    Xtr, ytr, Xte, yte = X[:600], y[:600], X[600:], y[600:]
    mlp = MLPProbe(hidden_size=32, learning_rate=1e-2, batch_size=64, random_state=0).fit(Xtr, ytr)
    lin = LinearProbe().fit(Xtr, ytr)
    assert mlp.score(Xte, yte) >= 0.9
    assert lin.score(Xte, yte) <= 0.65
    lbfgs = MLPProbe(hidden_size=32, solver="lbfgs", max_epochs=100, early_stopping=False,
                     random_state=0).fit(Xtr, ytr)
    assert lbfgs.score(Xte, yte) >= 0.9


# ---------------------------------------------------------------- the sklearn contract, all probes
def _fast(name: str, **fast):
    """Registered probe ``name`` as :func:`make_probe` builds it, made quick by parameter name
    (never by probe name), so that every probe registered later is checked alike."""
    est = make_probe(name, 3)
    params = est.get_params()
    fast = fast or {"max_epochs": 2, "max_iter": 20, "hidden_size": 8, "batch_size": 64}
    est.set_params(**{k: v for k, v in fast.items() if params.get(k) is not None})
    return est


def _is_sequence_probe(est) -> bool:
    """A probe whose input is a list of (frames, hidden) arrays, one per utterance."""
    return isinstance(est, CTCProbe)


#: Our convention, not sklearn's: decision_function of a two-class probe has one column per
#: class, (n, 2), as for more classes; sklearn's checks want (n,) for two classes.
#: (check_decision_proba_consistency passes for ridge by the structure of its scores: XPASS.)
_TWO_COLUMNS = "binary decision_function is (n, 2), one column per class (probekit convention)"
_BINARY = {c: _TWO_COLUMNS for c in ("check_classifiers_train", "check_classifiers_classes",
                                     "check_decision_proba_consistency")}
#: A sequence probe (CTC) is fitted on a list of (frames, hidden) arrays and transcripts, so
#: every check that feeds it one 2-D array (and those that test error messages on one) fails.
_SEQUENCE = "a sequence probe takes a list of (frames, hidden) arrays, not one 2-D array"
_SEQUENCE_CHECKS = (
    "check_fit_score_takes_y", "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters", "check_estimators_fit_returns_self",
    "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_complex_data",
    "check_dtype_object", "check_estimators_empty_data_messages", "check_pipeline_consistency",
    "check_estimators_nan_inf", "check_estimator_sparse_tag", "check_estimator_sparse_array",
    "check_estimator_sparse_matrix", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_fit2d_1sample", "check_fit2d_1feature",
    "check_dict_unchanged", "check_fit_idempotent", "check_fit_check_is_fitted",
    "check_n_features_in", "check_fit2d_predict1d")


def _expected_failures(est) -> dict[str, str]:
    if _is_sequence_probe(est):
        return {c: _SEQUENCE for c in _SEQUENCE_CHECKS}
    return dict(_BINARY)


@parametrize_with_checks([_fast(name) for name in available_probes()],
                         expected_failed_checks=_expected_failures)
def test_every_registered_probe_passes_sklearn_checks(estimator, check):
    """scikit-learn's own estimator checks over the probe registry itself (issue 22, item 10):
    a probe registered later is checked without editing this file."""
    check(estimator)


def test_the_registry_is_what_is_checked():
    assert {"lda", "ridge", "logistic", "mlp", "ctc"} <= set(available_probes())
    assert not _is_sequence_probe(_fast("lda")) and _is_sequence_probe(_fast("ctc"))


def test_a_taken_probe_name_raises_registry_error():
    from probekit.probes.grid import _PROBES

    taken = _PROBES["lda"]
    register_probe("lda", taken)                     # the same factory again: allowed
    with pytest.raises(RegistryError, match="probe name 'lda' is taken"):
        register_probe("lda", lambda seed: LinearProbe(random_state=seed))
    assert _PROBES["lda"] is taken                   # no silent overwrite
    with pytest.raises(GridError, match="factory must be callable"):
        register_probe("svm", "sklearn.svm.SVC")
    assert make_probe("lda", 0).get_params()["shrinkage"] == "oas"


@pytest.fixture(scope="module")
def phones():
    X, y = make_classification(n_samples=300, n_features=8, n_informative=6, n_redundant=0,
                               n_classes=3, n_clusters_per_class=1, class_sep=2.0, random_state=1)
    return X, np.array(["aa", "iy", "sh"])[y]


@pytest.mark.parametrize("name", [n for n in available_probes()
                                  if not _is_sequence_probe(_fast(n))])
def test_sklearn_contract(name, phones):
    """Our own contract on top of sklearn's (string labels, float16, NaN messages), for every
    registered probe that takes 2-D input (the CTC probe's is in test_ctc.py)."""
    X, y = phones
    est = _fast(name, max_epochs=30, hidden_size=16)
    params = est.get_params()
    assert "random_state" in params
    assert est.set_params(random_state=3) is est

    with pytest.raises(NotFittedError):
        est.predict(X)
    assert est.fit(X, y) is est
    fitted = [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]
    assert {"classes_", "n_features_in_"} <= set(fitted)
    assert est.n_features_in_ == X.shape[1]
    np.testing.assert_array_equal(est.classes_, ["aa", "iy", "sh"])
    pred = est.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= set(y)
    proba = est.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(est.classes_[proba.argmax(1)], pred)
    assert est.score(X, y) > 0.85

    # clone: same params, unfitted
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "classes_")

    # float16 input (what the store holds) is upcast, and gives the same model up to rounding
    half = clone(est).fit(X.astype(np.float16), y)
    assert half.predict_proba(X.astype(np.float16)).dtype == np.float64
    assert np.mean(half.predict(X) == pred) > 0.95

    # deterministic under random_state
    again = clone(est).fit(X, y)
    np.testing.assert_allclose(again.predict_proba(X), proba, atol=1e-12)

    # bad input
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clone(est).fit(bad, y)
    with pytest.raises(ValueError, match="NaN"):
        est.predict(bad)
    with pytest.raises(ValueError, match="at least 2 classes"):
        clone(est).fit(X, np.full(len(X), "aa"))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clone(est).fit(X, y[:-1])
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :-1])
