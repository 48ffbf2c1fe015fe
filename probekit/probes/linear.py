"""Closed-form linear probe: ridge regression on one-hot targets, from sufficient statistics.

Why ridge rather than LDA as the main closed form: the ridge solution is one ``d x d`` solve
per regularisation strength and needs no covariance estimate per class, so it stays stable
when a group has few examples of a phone; it is the probe of the layer-wise probing papers
that report "linear probe" accuracies without iterative training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array

from ._base import FLOAT_DTYPES, LinearScoresBase, safe_scale, spd_solve


@dataclass(frozen=True)
class SufficientStats:
    """Everything ridge (and the standardisation) needs from ``(X, y)``, summed over rows.

    Stats of disjoint row sets add (``a + b``) and remove (``ab - b``), so a grid over
    training groups computes each group's stats once and fits "all groups pooled" or
    "all but one group" without touching the rows again. Sums are float64 because the
    centred Gram matrix is formed as ``sum_xx - n * mean mean^T``; keep that in mind for
    features with a mean far larger than their spread (precision loss ~ (mean/std)^2 * 1e-16).

    Attributes
    ----------
    classes : ndarray (K,)     sorted labels the columns of ``class_counts``/``sum_xy`` refer to
    n : int                    number of rows
    sum_x : ndarray (d,)       sum_i x_i
    sum_xx : ndarray (d, d)    sum_i x_i x_i^T
    class_counts : ndarray (K,) rows per class  (= sum_i y_i for one-hot y_i)
    sum_xy : ndarray (d, K)    sum_i x_i y_i^T for one-hot y_i
    """

    classes: np.ndarray
    n: int
    sum_x: np.ndarray
    sum_xx: np.ndarray
    class_counts: np.ndarray
    sum_xy: np.ndarray

    @classmethod
    def from_data(cls, X, y, classes=None):
        """Stats of ``X`` (n, d) with labels ``y`` (n,).

        ``classes`` (optional, any order) fixes the label set, e.g. so that a group lacking
        a phone still has a (zero) column for it; labels outside it raise ``ValueError``.
        """
        X = check_array(X, dtype=FLOAT_DTYPES, ensure_min_samples=1)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"y must have shape ({len(X)},) to match X; got {y.shape}")
        check_classification_targets(y)
        if classes is None:
            classes, idx = np.unique(y, return_inverse=True)
        else:
            classes = np.unique(np.asarray(classes))
            idx = np.searchsorted(classes, y)
            idx = np.clip(idx, 0, len(classes) - 1)
            unknown = classes[idx] != y
            if unknown.any():
                raise ValueError(f"labels not in classes: {sorted(set(y[unknown].tolist()))!r}")
        X = X.astype(np.float64, copy=False)
        onehot = np.zeros((len(X), len(classes)))
        onehot[np.arange(len(X)), idx] = 1.0
        return cls(classes, len(X), X.sum(0), X.T @ X, onehot.sum(0), X.T @ onehot)

    def _aligned(self, other):
        if not isinstance(other, SufficientStats):
            return NotImplemented
        if self.sum_x.shape != other.sum_x.shape:
            raise ValueError(f"feature dims differ: {self.sum_x.shape[0]} vs {other.sum_x.shape[0]}")
        classes = np.union1d(self.classes, other.classes)

        def widen(s):
            pos = np.searchsorted(classes, s.classes)
            counts = np.zeros(len(classes))
            xy = np.zeros((len(s.sum_x), len(classes)))
            counts[pos], xy[:, pos] = s.class_counts, s.sum_xy
            return counts, xy

        return classes, widen(self), widen(other)

    def __add__(self, other):
        classes, (ca, xa), (cb, xb) = self._aligned(other)
        return SufficientStats(classes, self.n + other.n, self.sum_x + other.sum_x,
                               self.sum_xx + other.sum_xx, ca + cb, xa + xb)

    def __sub__(self, other):
        classes, (ca, xa), (cb, xb) = self._aligned(other)
        if other.n > self.n or np.any(cb > ca + 1e-9):
            raise ValueError("cannot subtract stats of rows that are not part of these stats")
        return SufficientStats(classes, self.n - other.n, self.sum_x - other.sum_x,
                               self.sum_xx - other.sum_xx, ca - cb, xa - xb)


class LinearProbe(LinearScoresBase):
    """Ridge regression on one-hot targets, solved in closed form from :class:`SufficientStats`.

    With features standardised (``z = (x - mean) / scale``, population std as in sklearn's
    ``StandardScaler``) and targets ``Y`` one-hot (n, K), it minimises

        ||Y - Z W - 1 b^T||_F^2 + alpha ||W||_F^2        (intercept b not penalised)

    whose solution is ``W = (Zc^T Zc + alpha I)^{-1} Zc^T Yc`` (c: centred), ``b = mean(Y)``
    (Hastie, Tibshirani & Friedman, *Elements of Statistical Learning*, eq. 3.44). This is
    sklearn's ``RidgeClassifier`` up to its {-1, 1} target coding: its decision function is
    ``2 * ours - 1`` on the same standardised data, so predictions coincide.

    Parameters
    ----------
    alpha : float, default 1.0
        L2 strength, in units of the standardised Gram matrix (so it scales with n).
    standardize : bool, default True
        Standardise features with the training mean and std before the ridge solve.
    random_state : None
        Accepted for the sklearn/grid contract; the solve is deterministic.

    Attributes
    ----------
    classes_ : ndarray (K,)
    n_features_in_ : int
    coef_ : ndarray (K, d)     weights on the *raw* features (standardisation folded in)
    intercept_ : ndarray (K,)
    mean_, scale_ : ndarray (d,)  the standardisation used
    stats_ : SufficientStats   the statistics of the training data, for reuse

    Notes
    -----
    ``predict_proba`` is the softmax of the ridge scores: a monotone map that keeps
    ``predict == argmax predict_proba`` but is not a calibrated probability.
    """

    def __init__(self, alpha=1.0, standardize=True, random_state=None):
        self.alpha = alpha
        self.standardize = standardize
        self.random_state = random_state

    def fit(self, X, y):
        """Fit on ``X`` (n, d), ``y`` (n,) hashable labels. Returns self."""
        X, y_idx = self._validate_fit(X, y)
        return self._solve(SufficientStats.from_data(X, self.classes_[y_idx]))

    def fit_from_stats(self, stats):
        """Fit from precomputed :class:`SufficientStats` (e.g. ``stats_a + stats_b``).

        Classes with zero rows in ``stats`` are dropped from ``classes_``. Returns self.
        """
        if not isinstance(stats, SufficientStats):
            raise TypeError(f"expected SufficientStats, got {type(stats).__name__}")
        present = stats.class_counts > 0
        if present.sum() < 2:
            raise ValueError(f"LinearProbe needs at least 2 classes; stats have {stats.classes[present].tolist()!r}")
        if not present.all():
            stats = SufficientStats(stats.classes[present], stats.n, stats.sum_x, stats.sum_xx,
                                    stats.class_counts[present], stats.sum_xy[:, present])
        self.classes_ = stats.classes
        self.n_features_in_ = len(stats.sum_x)
        return self._solve(stats)

    def _solve(self, s):
        if not self.alpha >= 0:
            raise ValueError(f"alpha must be >= 0; got {self.alpha!r}")
        n = s.n
        mean = s.sum_x / n
        # Centred moments: Σ (x-m)(x-m)^T = Σ xx^T - n m m^T ; Σ (x-m)(y-ȳ)^T = Σ xy^T - n m ȳ^T
        cov = s.sum_xx - n * np.outer(mean, mean)
        ybar = s.class_counts / n
        cross = s.sum_xy - n * np.outer(mean, ybar)
        if self.standardize:
            scale = safe_scale(np.sqrt(np.clip(np.diag(cov) / n, 0.0, None)))
        else:
            scale = np.ones_like(mean)
        gram = cov / np.outer(scale, scale)
        gram[np.diag_indices_from(gram)] += self.alpha
        # Cholesky; with alpha=0 and rank-deficient X it falls back to lstsq.
        rhs = cross / scale[:, None]
        W = spd_solve(gram, rhs)
        coef = W / scale[:, None]  # (d, K) on raw features
        self.coef_ = coef.T
        self.intercept_ = ybar - mean @ coef
        self.mean_, self.scale_, self.stats_ = mean, scale, s
        return self

