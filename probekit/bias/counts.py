"""Systematic bias as a group effect in a count model of per-(speaker, split) errors (GEE).

Per slice and layer, on rows ``i = (speaker s, split k)`` with error count ``k_i = value * n``
out of ``n_i`` items (the results table's ``seed`` is the split):

* ``metric == "error"`` (phone/SID errors, at most one per item): binomial, logit link,
  ``logit E[k_i / n_i] = a + b_{g(s)} + c_k``, the proportion weighted by ``n_i``;
* ``cer`` / ``wer`` (edit counts, which can exceed ``n``): Poisson, log link, offset
  ``log n_i``: ``log E[k_i] = log n_i + a + b_{g(s)} + c_k``, with the Pearson (quasi-Poisson)
  scale estimated.

``b`` is sum-coded (``sum_g b_g = 0``), so each group's ``effect`` is its log-odds (log-rate)
difference from the mean of the groups and ``ratio = exp(effect)`` the odds (rate) ratio
against that mean; the last group's effect and every standard error come from the full
covariance through a contrast matrix. ``c_k`` (split fixed effects, when there are >= 2
splits) absorbs the draw of the training speakers of each split's probe. Estimation: GEE with
speakers as clusters and an exchangeable working correlation (statsmodels), covariance the
bias-reduced sandwich of Mancl & DeRouen (2001), tests and intervals from a t distribution
with ``n_speakers - n_params`` degrees of freedom. The Mancl-DeRouen covariance is computed
here (statsmodels 0.15's ``cov_type="bias_reduced"`` fails with ``weights``), from the
fitted GEE's means and working correlation.

Degenerate layers (zero errors everywhere, a group without errors or with every item wrong,
identical rates, fewer speakers than parameters, no convergence) give rows whose ``status``
says so and whose numbers are NaN; nothing falls back to another model.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import t as t_dist

from probekit.bias._slices import SLICE_KEYS, iter_slices

__all__ = ["count_model", "mancl_derouen_cov"]

#: How the table weighs its data (docs/concepts.md, "Weightings"):
#: the model weighs each (speaker, split) row by its items.
WEIGHTING = "items"

_NUMERIC = ["effect", "ratio", "ci_low", "ci_high", "p_value", "se", "df"]


def _design(group_codes: np.ndarray, split_codes: np.ndarray, G: int, K: int) -> np.ndarray:
    cols = [np.ones(group_codes.size)]
    for g in range(G - 1):                                  # sum (deviation) coding
        cols.append((group_codes == g).astype(float) - (group_codes == G - 1))
    for k in range(1, K):                                   # split fixed effects
        cols.append((split_codes == k).astype(float))
    return np.column_stack(cols)


def mancl_derouen_cov(exog, endog, mu, weights, clusters, rho, family: str,
                      bias_reduced: bool = True) -> np.ndarray:
    """Sandwich covariance of GEE estimates, bias-reduced after Mancl & DeRouen (2001).

    For the estimating equation ``sum_i D_i' V_i^-1 W_i (y_i - mu_i) = 0`` (statsmodels' GEE
    with ``weights``; ``V_i = A_i^1/2 R(rho) A_i^1/2``, exchangeable ``R``), with
    ``B = sum_i D_i' V_i^-1 W_i D_i`` and the cluster leverage
    ``H_i = D_i B^-1 D_i' V_i^-1 W_i``, the residual ``r_i`` is replaced by
    ``(I - H_i)^-1 r_i`` in the meat. ``family`` is ``"binomial"`` (logit) or ``"poisson"``
    (log). The scale cancels.
    """
    if family == "binomial":
        dmu, var = mu * (1 - mu), mu * (1 - mu)
    else:
        dmu, var = mu, mu
    D = exog * dmu[:, None]
    parts = []
    B = 0.0
    for c in np.unique(clusters):
        j = np.flatnonzero(clusters == c)
        m = j.size
        R = (1 - rho) * np.eye(m) + rho * np.ones((m, m)) if m > 1 else np.ones((1, 1))
        sd = np.sqrt(var[j])
        Vinv = np.linalg.inv(R * np.outer(sd, sd))
        Dj, wj = D[j], weights[j]
        B = B + Dj.T @ Vinv @ (wj[:, None] * Dj)
        parts.append((Dj, Vinv, wj, endog[j] - mu[j]))
    Binv = np.linalg.inv(B)
    meat = 0.0
    for Dj, Vinv, wj, r in parts:
        if bias_reduced:
            H = Dj @ Binv @ Dj.T @ Vinv * wj[None, :]
            r = np.linalg.solve(np.eye(r.size) - H, r)
        U = Dj.T @ Vinv @ (wj * r)
        meat = meat + np.outer(U, U)
    return Binv @ meat @ Binv.T


def _fit_layer(dl: pd.DataFrame, family: str, alpha: float) -> tuple[pd.DataFrame, dict]:
    import statsmodels.api as sm
    from statsmodels.genmod.generalized_estimating_equations import GEE
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    names = sorted(dl["group"].astype(str).unique())
    G = len(names)
    gk = dl.groupby("group")[["k", "n"]].sum().reindex(names)
    base = pd.DataFrame({"group": names, "group_rate": (gk["k"] / gk["n"]).to_numpy(),
                         "n_speakers": dl.groupby("group")["speaker"].nunique()
                                         .reindex(names).to_numpy()})
    splits = sorted(dl["split"].unique())
    S, K = dl["speaker"].nunique(), len(splits)
    n_par = G + (K - 1 if K >= 2 else 0)
    info = {"n_splits": K, "df": float(S - n_par), "working_corr": "exchangeable"}

    def status(msg):
        return base.assign(**{c: np.nan for c in _NUMERIC}, status=msg), info

    k, n = dl["k"].to_numpy(float), dl["n"].to_numpy(float)
    if G < 2:
        return status("not fitted: fewer than 2 groups")
    if family == "binomial" and (k > n + 1e-9).any():
        return status("not fitted: counts exceed n (not binomial; an edit-rate metric?)")
    if k.sum() == 0:
        return status("not fitted: zero errors everywhere")
    if (gk["k"] == 0).any():
        return status("not fitted: a group has no errors (separation)")
    if family == "binomial" and (gk["k"] >= gk["n"]).any():
        return status("not fitted: a group has errors on every item (separation)")
    if S - n_par < 1:
        return status(f"not fitted: {S} speakers for {n_par} parameters")
    rate = k / n
    if np.ptp(rate) < 1e-12:
        return status("not fitted: identical rates everywhere")

    gcode = pd.Categorical(dl["group"].astype(str), categories=names).codes
    kcode = pd.Categorical(dl["split"], categories=splits).codes
    X = _design(gcode, kcode, G, K)
    clusters = pd.Categorical(dl["speaker"]).codes
    one_row = bool(dl.groupby("speaker").size().max() == 1)
    cs = sm.cov_struct.Independence() if one_row else sm.cov_struct.Exchangeable()
    if one_row:
        info["working_corr"] = "independence (one row per speaker)"
    def fit(cov_struct):
        if family == "binomial":
            model = GEE(rate, X, groups=clusters, family=sm.families.Binomial(),
                        cov_struct=cov_struct, weights=n)
        else:
            model = GEE(k, X, groups=clusters, family=sm.families.Poisson(),
                        cov_struct=cov_struct, offset=np.log(n))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = model.fit(scale="X2", maxiter=100)
        return res, any(issubclass(c.category, ConvergenceWarning) for c in caught)

    endog, w = (rate, n) if family == "binomial" else (k, np.ones_like(k))

    def estimate(cov_struct, independent):
        res, failed = fit(cov_struct)
        if failed:
            return None
        beta = np.asarray(res.params, float)
        eta = X @ beta + (0.0 if family == "binomial" else np.log(n))
        with np.errstate(over="ignore"):   # a separated fit: mu saturates at 0 or 1
            mu = 1 / (1 + np.exp(-eta)) if family == "binomial" else np.exp(eta)
        rho = 0.0 if independent else float(np.atleast_1d(res.model.cov_struct.dep_params)[0])
        V = mancl_derouen_cov(X, endog, mu, w, clusters, rho, family)
        return (beta, V, rho) if np.isfinite(beta).all() and np.isfinite(V).all() else None

    try:
        got = estimate(cs, one_row)
        if got is None and not one_row:
            # The exchangeable correlation did not settle (few clusters) or made the sandwich
            # singular. GEE stays consistent and its sandwich valid under any working
            # correlation: refit with independence, and say so in the table.
            info["working_corr"] = "independence (exchangeable did not converge)"
            got = estimate(sm.cov_struct.Independence(), True)
    except (np.linalg.LinAlgError, ValueError, ZeroDivisionError, FloatingPointError) as exc:
        return status(f"did not converge: {type(exc).__name__}")
    if got is None:
        return status("did not converge")
    beta, V, rho = got
    L = np.zeros((G, X.shape[1]))
    L[np.arange(G - 1), 1 + np.arange(G - 1)] = 1.0
    L[G - 1, 1:G] = -1.0
    eff = L @ beta
    se = np.sqrt(np.maximum(np.einsum("gi,ij,gj->g", L, V, L), 0))
    if not (se > 0).all():
        return status("not fitted: degenerate covariance")
    df_t = S - n_par
    q = t_dist.ppf(1 - alpha / 2, df_t)
    out = base.assign(effect=eff, ratio=np.exp(eff), ci_low=eff - q * se, ci_high=eff + q * se,
                      p_value=2 * t_dist.sf(np.abs(eff / se), df_t), se=se, df=float(df_t),
                      status="ok")
    info["rho"] = rho
    return out, info


def count_model(df: pd.DataFrame, *, train_set: str = "all", alpha: float = 0.05) -> pd.DataFrame:
    """Group effects on error counts per slice and layer (GEE, bias-reduced sandwich, t test).

    Returns
    -------
    DataFrame, one row per (slice, layer, group): the slice keys, ``train_set, layer_index,
    layer, group, family`` (``"binomial"`` or ``"poisson"``), ``effect`` (log-odds or
    log-rate difference from the mean of groups), ``ratio = exp(effect)``, ``ci_low, ci_high``
    (log scale, t-based), ``p_value`` (two-sided, raw), ``p_holm`` (Holm over layers x
    groups of the slice), ``group_rate`` (pooled observed rate ``sum k / sum n``), ``se``,
    ``df`` (t degrees of freedom, speakers - parameters), ``n_speakers`` (the group's),
    ``n_splits``, ``working_corr``, ``rho`` (exchangeable working correlation) and
    ``status`` (``"ok"`` or why the numbers are NaN).
    """
    from statsmodels.stats.multitest import multipletests

    out = []
    for key, sub in iter_slices(df, [train_set]):
        family = "binomial" if str(key["metric"]) == "error" else "poisson"
        d = sub[(sub["unit"].astype(str) != "all") & (sub["n"] > 0)]
        d = (d.assign(k=d["value"] * d["n"])
              .groupby(["layer_index", "layer", "unit", "test_group", "seed"], as_index=False)
              [["k", "n"]].sum()
              .rename(columns={"unit": "speaker", "test_group": "group", "seed": "split"}))
        d["k"] = np.where(np.abs(d["k"] - d["k"].round()) < 1e-6, d["k"].round(), d["k"])
        rows = []
        for (li, layer), dl in d.groupby(["layer_index", "layer"], sort=True):
            r, info = _fit_layer(dl, family, alpha)
            rows.append(r.assign(**key, train_set=train_set, layer_index=li, layer=layer,
                                 family=family, n_splits=info["n_splits"],
                                 working_corr=info["working_corr"],
                                 rho=info.get("rho", np.nan)))
        sl = pd.concat(rows, ignore_index=True)
        sl["p_holm"] = np.nan
        ok = sl["p_value"].notna().to_numpy()
        if ok.any():
            sl.loc[ok, "p_holm"] = multipletests(sl.loc[ok, "p_value"], method="holm")[1]
        out.append(sl)
    cols = SLICE_KEYS + ["train_set", "layer_index", "layer", "group", "family", "effect",
                        "ratio", "ci_low", "ci_high", "p_value", "p_holm", "group_rate", "se",
                        "df", "n_speakers", "n_splits", "working_corr", "rho", "status", "weighting"]
    # the model weighs each (speaker, split) row by its items (group_rate: pooled counts)
    return pd.concat(out, ignore_index=True).assign(weighting=WEIGHTING)[cols]
