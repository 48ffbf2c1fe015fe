"""Shared input checks, label encoding and standardisation for the probe estimators.

Every probe inherits :class:`ProbeBase`, so all of them validate input the same way
(sklearn's ``validate_data``: NaN/inf, ragged or mismatched lengths, too few rows, all
raise ``ValueError``) and map arbitrary hashable labels to ``0..K-1`` the same way.
"""

from __future__ import annotations

import functools

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

# float16 (what the embedding store holds) is not in this list, so it is upcast to
# float64: sums of squares over 1e5 rows overflow / lose all precision in float16.
FLOAT_DTYPES = (np.float64, np.float32)


class ProbeBase(ClassifierMixin, BaseEstimator):
    """Validation and prediction plumbing; subclasses implement ``fit`` and ``decision_function``."""

    def _validate_fit(self, X, y):
        """Check ``X`` (n, d) and ``y`` (n,); set ``classes_`` and ``n_features_in_``.

        Returns
        -------
        X : ndarray (n, d), float32 or float64
        y_idx : ndarray (n,), int64 indices into ``classes_``
        """
        X, y = validate_data(self, X, y, dtype=FLOAT_DTYPES, ensure_min_samples=2)
        check_classification_targets(y)
        classes, y_idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes in y; got only {classes.tolist()!r}"
            )
        self.classes_ = classes
        return X, y_idx.astype(np.int64)

    def _validate_predict(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=FLOAT_DTYPES)

    def predict(self, X):
        """Most probable class per row. X: (n, d) -> (n,) labels from ``classes_``."""
        scores = self.decision_function(X)  # checks fitted-ness before classes_ is touched
        return self.classes_[np.argmax(scores, axis=1)]


def standardizer(X, enabled):
    """Mean (d,) and scale (d,) with sklearn ``StandardScaler`` conventions (ddof=0).

    Constant features get scale 1 so they map to 0 instead of NaN. With ``enabled=False``
    returns the identity (zeros, ones).
    """
    d = X.shape[1]
    if not enabled:
        return np.zeros(d), np.ones(d)
    mean = X.mean(axis=0, dtype=np.float64)
    scale = X.std(axis=0, dtype=np.float64)
    return mean, safe_scale(scale)


def spd_solve(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A^{-1} B`` for a symmetric positive definite ``A`` by Cholesky (LAPACK potrf/potrs,
    what ``scipy.linalg.solve(assume_a="pos")`` computes, without its condition estimate,
    which took ~10x the solve itself on scipy 1.17); least squares when ``A`` is not
    positive definite (e.g. ridge with ``alpha=0`` on rank-deficient features).

    The factorisation runs on one BLAS thread: a d <= ~1000 Cholesky is ~5-40 ms on one
    core, and OpenBLAS's threaded one took 0.2-0.8 s on a loaded 2-core machine. It is
    numpy's, which releases the GIL (scipy's ``cho_factor`` holds it), so solves on
    several threads (:func:`probekit.probes.grid_stats.fit_sets`) run at once."""
    import scipy.linalg

    A = np.asarray_chkfinite(A)  # NaN/inf: ValueError, as scipy's check
    with blas_controller().limit(limits=1, user_api="blas"):
        try:
            L = np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            return np.linalg.lstsq(A, B, rcond=None)[0]
        return scipy.linalg.cho_solve((L, True), B, check_finite=False)


@functools.lru_cache(maxsize=1)
def blas_controller():
    """One ``threadpoolctl`` controller for the process: building one scans the loaded
    libraries (~5 ms), which :func:`threadpool_limits` did on every solve."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def safe_scale(scale):
    scale = np.asarray(scale, dtype=np.float64).copy()
    scale[~(scale > 1e-12 * max(1.0, float(np.max(scale, initial=0.0))))] = 1.0
    return scale


def early_stopping_loop(model, run_epoch, val_loss, *, max_epochs: int,
                        n_iter_no_change: int, validate: bool) -> tuple[int, float | None]:
    """The one early-stopping loop of the torch probes (MLP, CTC).

    Runs ``run_epoch()`` up to ``max_epochs`` times. With ``validate``, ``val_loss()`` follows
    each epoch; the best state of ``model`` is kept (an improvement must beat the best by a
    relative 1e-4, so float noise is not one) and training stops after ``n_iter_no_change``
    epochs without one; the best state is loaded back at the end. Returns the epochs run and
    the best validation loss (``None`` without ``validate``).
    """
    import copy

    best, best_state, stale, epoch = np.inf, None, 0, 0
    for epoch in range(1, int(max_epochs) + 1):
        run_epoch()
        if not validate:
            continue
        loss = val_loss()
        if loss < best - 1e-4 * abs(best if np.isfinite(best) else 1.0):
            best, best_state, stale = loss, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= n_iter_no_change:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return epoch, (float(best) if validate else None)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class LinearScoresBase(ProbeBase):
    """Probes whose scores are ``X @ coef_.T + intercept_`` on the raw features (ridge, LDA,
    logistic): one place for the decision function and its softmax."""

    def decision_function(self, X):
        """Scores, (n, d) -> (n, K)."""
        X = self._validate_predict(X)
        return X.astype(np.float64, copy=False) @ self.coef_.T + self.intercept_

    def predict_proba(self, X):
        """Softmax of the scores, (n, d) -> (n, K); rows sum to 1."""
        return softmax(self.decision_function(X))
