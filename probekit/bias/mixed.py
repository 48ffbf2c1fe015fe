"""Systematic bias as a fixed group effect beside a random speaker intercept (statsmodels MixedLM).

Per layer, on per-(speaker, seed) error rates ``r``:

    r_{s,k} = beta_{g(s)} + u_s + eps_{s,k},   u_s ~ N(0, sigma_s^2),  eps ~ N(0, sigma_e^2)

(after Liu, Veliche & Peng 2021, who use a Poisson mixed model with speaker random effects;
a linear model on rates is our choice: it needs no link and its group effects are error-rate
differences). A group's effect is ``beta_g - mean_h beta_h`` with a Wald CI from the fixed-
effect covariance. The share of between-speaker variance explained by group is
``1 - sigma_s^2(group model) / sigma_s^2(intercept-only model)`` (the proportional reduction
in variance, Raudenbush & Bryk), clipped to [0, 1]. With one row per speaker (a single seed,
or seeds that never change a speaker's rate) ``sigma_s^2`` and ``sigma_e^2`` are not
separable; the model is then ordinary least squares on speaker means and the residual
variance is reported as the speaker variance.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import norm

from probekit.bias._slices import iter_slices

__all__ = ["mixed_effects"]


def _fit(data: pd.DataFrame, formula: str, mixed: bool):
    import statsmodels.formula.api as smf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if mixed:
            res = smf.mixedlm(formula, data, groups=data["speaker"]).fit(reml=True, method="lbfgs")
            return res, float(res.cov_re.iloc[0, 0]), float(res.scale), bool(res.converged)
        res = smf.ols(formula, data).fit()
        return res, float(res.scale), 0.0, True


def mixed_effects(df: pd.DataFrame, *, train_set: str = "all", alpha: float = 0.05) -> pd.DataFrame:
    """Group effects and variance components per slice and layer.

    Returns
    -------
    DataFrame, one row per (slice, layer, group): ``effect`` (group mean error minus the
    mean of group means), ``ci_low, ci_high, p_value`` (Wald), ``group_mean``,
    ``speaker_var, speaker_var_null, residual_var, share_explained, model, converged,
    n_speakers``.
    """
    out = []
    z = norm.ppf(1 - alpha / 2)
    for key, sub in iter_slices(df, [train_set]):
        d = sub[sub["unit"].astype(str) != "all"]
        d = (d.assign(k=d["value"] * d["n"])
              .groupby(["layer_index", "layer", "unit", "test_group", "seed"], as_index=False)
              [["k", "n"]].sum())
        d["rate"] = d["k"] / d["n"]
        d = d.rename(columns={"unit": "speaker", "test_group": "group"})
        for (li, layer), dl in d.groupby(["layer_index", "layer"]):
            # seeds that do not move a speaker's rate (e.g. a closed-form probe) leave no
            # within-speaker variance to separate: then fit OLS on speaker means
            within = dl.groupby("speaker")["rate"].var().fillna(0).max()
            mixed = bool(dl.groupby("speaker").size().min() >= 2 and within > 1e-12)
            try:
                res, s2, e2, conv = _fit(dl, "rate ~ 0 + C(group)", mixed)
                _, s20, _, conv0 = _fit(dl, "rate ~ 1", mixed)
            except (np.linalg.LinAlgError, ValueError):
                mixed = False
            if not mixed:
                dl = dl.groupby(["speaker", "group"], as_index=False)["rate"].mean()
                res, s2, e2, conv = _fit(dl, "rate ~ 0 + C(group)", False)
                _, s20, _, conv0 = _fit(dl, "rate ~ 1", False)
            names = sorted(dl["group"].unique())
            fe = [f"C(group)[{g}]" for g in names]
            beta = res.params[fe].to_numpy()
            V = res.cov_params().loc[fe, fe].to_numpy()
            G = len(names)
            C = np.eye(G) - 1.0 / G                   # row g: contrast beta_g - mean(beta)
            eff, se = C @ beta, np.sqrt(np.maximum(np.einsum("gi,ij,gj->g", C, V, C), 0))
            share = float(np.clip(1 - s2 / s20, 0, 1)) if s20 > 0 else np.nan
            nsp = dl.groupby("group")["speaker"].nunique()
            out.append(pd.DataFrame({**key, "train_set": train_set, "layer_index": li,
                                     "layer": layer, "group": names, "group_mean": beta,
                                     "effect": eff, "ci_low": eff - z * se, "ci_high": eff + z * se,
                                     "p_value": 2 * norm.sf(np.abs(eff) / np.where(se > 0, se, np.nan)),
                                     "speaker_var": s2, "speaker_var_null": s20, "residual_var": e2,
                                     "share_explained": share,
                                     "model": "mixedlm" if mixed else "ols",
                                     "converged": conv and conv0,
                                     "n_speakers": nsp.reindex(names).to_numpy()}))
    return pd.concat(out, ignore_index=True)
