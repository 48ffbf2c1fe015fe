"""Permutation tests over speakers: is a group difference more than speaker variation?

Under the null hypothesis the group labels are exchangeable across speakers: speakers of
every group come from one population. Shuffling labels across speakers (each speaker keeps
its items) draws from that null, so the p-value ``(1 + #{T* >= T}) / (1 + P)`` is exact
(Phipson & Smyth 2010) whatever the within-speaker correlation.
"""

from __future__ import annotations

import numpy as np

from probekit.bias.resample import speaker_permutation_indices

__all__ = ["permutation_pvalue", "group_vs_rest", "speaker_icc", "paired_signflip", "holm",
           "group_summaries_per_speaker"]


def permutation_pvalue(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """One-sided p-value ``(1 + #{null >= observed}) / (1 + P)``; ``null`` has P on axis 0.

    NaN statistics (e.g. a ratio with a zero denominator) give NaN p-values.
    """
    observed = np.asarray(observed, float)
    # a tiny tolerance so ties from floating point sums count as ties
    ge = (null >= observed - 1e-12 * np.maximum(1.0, np.abs(observed))).sum(axis=0)
    p = (1.0 + ge) / (1.0 + null.shape[0])
    return np.where(np.isnan(observed), np.nan, p)


def holm(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Holm step-down adjusted p-values along ``axis`` (NaNs stay NaN and do not count)."""
    p = np.moveaxis(np.asarray(p, float), axis, -1)
    out = np.full_like(p, np.nan)
    flat, res = p.reshape(-1, p.shape[-1]), out.reshape(-1, p.shape[-1])
    for i, row in enumerate(flat):
        ok = np.flatnonzero(~np.isnan(row))
        order = ok[np.argsort(row[ok])]
        m = order.size
        adj = np.maximum.accumulate((m - np.arange(m)) * row[order])
        res[i, order] = np.minimum(adj, 1.0)
    return np.moveaxis(out, -1, axis)


def _group_moments(rates, onehot, counts):
    """Speaker-mean and unbiased variance of ``rates`` (..., S) per group: (..., G) each."""
    m = rates @ onehot / counts
    v = (rates ** 2) @ onehot / counts
    v = (v - m ** 2) * counts / np.maximum(counts - 1, 1)
    return m, np.maximum(v, 0.0)


def speaker_icc(rates, inv_n, onehot, counts):
    """Beta-binomial intraclass correlation per group, ``rho = (Var/(m(1-m)) - 1/n)/(1 - 1/n)``.

    For speaker rates from a beta-binomial, ``Var(r) = m(1-m)[rho + (1-rho)/n]``; ``rho`` is
    the share of item-level variance due to speakers and does not move with the group mean
    ``m``, so a group that is merely worse on average does not look more dispersed.
    ``inv_n`` is the per-speaker ``1/n`` (..., S).
    """
    m, v = _group_moments(rates, onehot, counts)
    b = inv_n @ onehot / counts
    with np.errstate(invalid="ignore", divide="ignore"):
        return (v / (m * (1 - m)) - b) / (1 - b)


def group_summaries_per_speaker(rates, codes, G, statistic, inv_n=None):
    """Per-group statistic of speaker rates with the codes held fixed: (..., G)."""
    onehot = np.eye(G)[codes]
    counts = onehot.sum(0)
    if statistic == "mean":
        return _group_moments(rates, onehot, counts)[0]
    return speaker_icc(rates, inv_n, onehot, counts)


def _vs_rest(rates, onehot, counts, statistic, inv_n):
    G = counts.size
    if statistic == "mean":
        # studentized (Welch) so that a group with more speaker variance is not flagged as
        # worse on average by a permutation test that assumes equal variances (Janssen 1997)
        m, v = _group_moments(rates, onehot, counts)
        tot = rates.sum(-1, keepdims=True)
        tot2 = (rates ** 2).sum(-1, keepdims=True)
        S = counts.sum()
        n_r = S - counts
        m_r = (tot - m * counts) / n_r
        v_r = ((tot2 - (v * (counts - 1) + m ** 2 * counts)) - n_r * m_r ** 2) / np.maximum(n_r - 1, 1)
        se = np.sqrt(v / counts + np.maximum(v_r, 0) / n_r)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(se > 0, (m - m_r) / se, 0.0)
    rho = speaker_icc(rates, inv_n, onehot, counts)
    # A group whose spread is undefined (rho inf/nan, e.g. CER > 1) gives nan here and is
    # typed "neither" downstream; the arithmetic on it should not warn.
    with np.errstate(invalid="ignore"):
        others = (np.nansum(rho, -1, keepdims=True) - rho) / (G - 1)
        return rho - others


def group_vs_rest(rates: np.ndarray, codes: np.ndarray, *, statistic: str = "mean",
                  n: np.ndarray | None = None, n_perm: int = 999,
                  rng: np.random.Generator | None = None, alternative: str = "greater"):
    """Test every group against the others, shuffling group labels across speakers.

    Parameters
    ----------
    rates : array (..., S)
        Per-speaker error rates; leading axes (e.g. layers) share the permutations.
    codes : array of int (S,)
        Group index of each speaker.
    statistic : {"mean", "icc"}
        ``"mean"``: Welch t of the group's speaker-mean error against the other speakers
        (systematic bias). ``"icc"``: the group's speaker intraclass correlation minus the
        mean of the other groups' (excess speaker variance: random error); needs ``n``.
    alternative : {"greater", "two-sided"}

    Returns
    -------
    observed, p : arrays (..., G)
    """
    rng = rng or np.random.default_rng(0)
    rates = np.asarray(rates, float)
    G = int(codes.max()) + 1
    onehot = np.eye(G)[codes]
    counts = onehot.sum(0)
    inv_n = None if n is None else 1.0 / np.asarray(n, float)
    if statistic == "icc" and inv_n is None:
        raise ValueError("statistic='icc' needs the per-speaker item counts n")
    obs = _vs_rest(rates, onehot, counts, statistic, inv_n)
    idx = speaker_permutation_indices(rates.shape[-1], n_perm, rng)
    pr = np.moveaxis(rates[..., idx], -2, 0)             # (P, ..., S)
    pn = None if inv_n is None else np.moveaxis(inv_n[..., idx], -2, 0)
    null = _vs_rest(pr, onehot, counts, statistic, pn)
    if alternative == "two-sided":
        return obs, permutation_pvalue(np.abs(obs), np.abs(null))
    return obs, permutation_pvalue(obs, null)


def paired_signflip(diff: np.ndarray, n_perm: int = 999, rng: np.random.Generator | None = None):
    """Two-sided sign-flip test of a mean paired difference over speakers.

    ``diff`` (..., S): per-speaker difference between two probes on the same speakers. Under
    the null the two probes are exchangeable for each speaker, so each difference's sign is
    a coin flip. With ``2**S <= n_perm`` every sign pattern is enumerated and the p-value
    is the exact ``#{|T*| >= |T|} / 2**S`` (so 5 speakers can never give p < 0.0625);
    otherwise ``n_perm`` random patterns. Returns (mean difference, p-value), each (...).
    """
    rng = rng or np.random.default_rng(0)
    diff = np.asarray(diff, float)
    S = diff.shape[-1]
    obs = diff.mean(-1)
    if 2 ** S <= n_perm:
        signs = 1.0 - 2.0 * ((np.arange(2 ** S)[:, None] >> np.arange(S)) & 1)
        null = np.einsum("...s,ps->p...", diff, signs) / S
        tol = 1e-12 * np.maximum(1.0, np.abs(obs))
        return obs, (np.abs(null) >= np.abs(obs) - tol).mean(axis=0)
    signs = rng.choice([-1.0, 1.0], size=(n_perm, S))
    null = np.einsum("...s,ps->p...", diff, signs) / S
    return obs, permutation_pvalue(np.abs(obs), np.abs(null))
