"""Permutation tests over speakers: is a group difference more than speaker variation?

Under the null hypothesis the group labels are exchangeable across speakers: speakers of
every group come from one population. Shuffling labels across speakers (each speaker keeps
its items) draws from that null, so the p-value ``(1 + #{T* >= T}) / (1 + P)`` is exact
(Phipson & Smyth 2010) whatever the within-speaker correlation.
"""

from __future__ import annotations

import numpy as np

from probekit.bias.inference import permutation_pvalue, welch_vs_rest
from probekit.bias.resample import speaker_permutation_indices

__all__ = ["permutation_pvalue", "group_vs_rest", "paired_signflip"]


def group_vs_rest(rates: np.ndarray, codes: np.ndarray, *, n_perm: int = 999,
                  rng: np.random.Generator | None = None, alternative: str = "greater"):
    """Test every group's speaker-mean error against the other speakers'.

    Welch t (:func:`probekit.bias.inference.welch_vs_rest`) with group labels shuffled across
    speakers. ``rates`` (..., S): leading axes (e.g. layers) share the permutations;
    ``alternative`` "greater" (the group is worse) or "two-sided". Returns (observed, p),
    each (..., G).
    """
    rng = rng or np.random.default_rng(0)
    rates = np.asarray(rates, float)
    G = int(codes.max()) + 1
    obs = welch_vs_rest(rates, codes, G)
    idx = speaker_permutation_indices(rates.shape[-1], n_perm, rng)
    null = welch_vs_rest(np.moveaxis(rates[..., idx], -2, 0), codes, G)
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
