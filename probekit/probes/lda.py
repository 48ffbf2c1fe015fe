"""Closed-form LDA probe with analytic shrinkage, from the same sufficient statistics as ridge.

Linear discriminant analysis with a shared covariance is the classic closed-form linear
classifier; with few examples per class in hundreds of dimensions its covariance must be
shrunk. The shrinkage intensity is chosen analytically by the Oracle Approximating
Shrinkage rule (Chen, Wiesel, Eldar & Hero 2010, eq. 23, in the form scikit-learn's
``sklearn.covariance.oas`` uses), which needs only the covariance itself, so the whole fit
comes from :class:`~probekit.probes.linear.SufficientStats` (``n``, ``sum_x``, ``sum_xx``,
class counts and class sums) and stats of several groups can be added before fitting.
"""

from __future__ import annotations

import numpy as np
from ._base import LinearScoresBase, safe_scale, spd_solve
from .linear import SufficientStats

__all__ = ["LDAProbe"]


def oas_shrinkage(cov: np.ndarray, n: int) -> float:
    """OAS intensity for a (standardised) covariance estimated from ``n`` rows."""
    p = cov.shape[0]
    mu = np.trace(cov) / p
    alpha = np.mean(cov ** 2)
    den = (n + 1.0) * (alpha - mu ** 2 / p)
    return 1.0 if den <= 0 else float(min((alpha + mu ** 2) / den, 1.0))


class LDAProbe(LinearScoresBase):
    """Shared-covariance LDA with shrinkage, solved in closed form.

    With class means ``m_k``, priors ``pi_k = n_k / n`` and the pooled within-class
    covariance ``S = (sum_i x_i x_i^T - sum_k n_k m_k m_k^T) / n`` (the prior-weighted
    average of the class covariances, as scikit-learn's ``LinearDiscriminantAnalysis``),
    the covariance is standardised (``R = S / (s s^T)``, ``s = sqrt(diag S)``), shrunk
    (``R* = (1 - rho) R + rho * tr(R)/d * I``) and scaled back; the decision function is

        delta_k(x) = x^T S*^{-1} m_k - 1/2 m_k^T S*^{-1} m_k + log pi_k

    (Hastie, Tibshirani & Friedman, *Elements of Statistical Learning*, eq. 4.10).

    Parameters
    ----------
    shrinkage : "oas", float in [0, 1], or None
        ``"oas"``: analytic intensity (default); a float fixes ``rho``; ``None`` means 0
        (then equal to scikit-learn's ``LinearDiscriminantAnalysis(solver="lsqr")``).
    random_state : None
        Accepted for the sklearn/grid contract; the solve is deterministic.

    Attributes
    ----------
    classes_, n_features_in_, coef_ (K, d), intercept_ (K,), shrinkage_ (float),
    means_ (K, d), priors_ (K,), stats_ (SufficientStats)
    """

    def __init__(self, shrinkage="oas", random_state=None):
        self.shrinkage = shrinkage
        self.random_state = random_state

    def fit(self, X, y):
        """Fit on ``X`` (n, d), ``y`` (n,) hashable labels. Returns self."""
        X, y_idx = self._validate_fit(X, y)
        return self.fit_from_stats(SufficientStats.from_data(X, self.classes_[y_idx]))

    def fit_from_stats(self, stats: SufficientStats) -> "LDAProbe":
        """Fit from :class:`SufficientStats`; classes with zero rows are dropped."""
        if not isinstance(stats, SufficientStats):
            raise TypeError(f"expected SufficientStats, got {type(stats).__name__}")
        present = stats.class_counts > 0
        if present.sum() < 2:
            raise ValueError(f"LDAProbe needs at least 2 classes; stats have "
                             f"{stats.classes[present].tolist()!r}")
        if self.shrinkage not in ("oas", None) and not (
                isinstance(self.shrinkage, (int, float)) and 0.0 <= self.shrinkage <= 1.0):
            raise ValueError(f"shrinkage must be 'oas', None or in [0, 1]; got {self.shrinkage!r}")
        counts = stats.class_counts[present]
        sums = stats.sum_xy[:, present]                 # (d, K) class sums
        means = (sums / counts).T                       # (K, d)
        n = stats.n
        # in place, the same arithmetic as the textbook lines in the comments (a fit is ~10
        # passes over d x d floats; the grid fits hundreds per layer)
        cov = sums @ (sums / counts).T
        np.subtract(stats.sum_xx, cov, out=cov)  # within = sum_xx - sum_k n_k m_k m_k^T
        cov /= n                                  # cov = within / n
        scale = safe_scale(np.sqrt(np.clip(np.diag(cov), 0.0, None)))
        corr = np.divide(cov, np.outer(scale, scale), out=cov)
        if self.shrinkage == "oas":
            rho = oas_shrinkage(corr, n)
        else:
            rho = float(self.shrinkage or 0.0)
        d = corr.shape[0]
        # corr = (1 - rho) corr + rho tr(corr)/d I
        shift = rho * (np.trace(corr) / d)
        corr *= 1.0 - rho
        corr.flat[::d + 1] += shift
        rhs = (means / scale).T                         # (d, K) in standardised units
        sol = spd_solve(corr, rhs)
        coef = (sol / scale[:, None]).T                  # (K, d): S*^{-1} m_k on raw features
        priors = counts / counts.sum()
        self.classes_ = stats.classes[present]
        self.n_features_in_ = len(stats.sum_x)
        self.coef_ = coef
        self.intercept_ = -0.5 * np.einsum("kd,kd->k", coef, means) + np.log(priors)
        self.means_, self.priors_, self.shrinkage_, self.stats_ = means, priors, rho, stats
        return self

