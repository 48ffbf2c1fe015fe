"""Random variance in phone embeddings (after seed 001): per-speaker phone-embedding dispersion.

For speaker ``s`` at one layer, with tokens ``x`` of phone ``p`` (``n_sp`` of them, centroid
``c_sp``), global phone centroids ``c_p`` and the grand mean ``c``:

    W_s = sum_p sum_{x in (s,p)} ||x - c_sp||^2 / sum_p (n_sp - 1)     (pooled within-phone variance)
    B   = sum_p n_p ||c_p - c||^2 / N                                  (between-phone variance)
    D_s = W_s / B                                                      (dispersion, unitless)

Measuring spread around the speaker's *own* phone centroids keeps a speaker's systematic
shift out of ``D_s``; dividing by ``B`` makes layers comparable. The accuracy beside it is
nearest-centroid phone accuracy of the speaker's tokens against centroids computed without
that speaker (leave-one-speaker-out), a probe-free proxy; the CLI also joins the phone
probe's per-speaker error from the results table when the layer names match.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from probekit.bias.errors import BiasInputError, TooFewSpeakersError
from probekit.bias.speakers import require_columns

__all__ = ["speaker_dispersion", "group_column"]


def group_column(meta: pd.DataFrame, attribute: str | None = None) -> str:
    """The ``group:<attribute>`` column of store metadata (the only one if not given)."""
    cols = [c for c in meta.columns if c.startswith("group:")]
    if attribute is not None:
        col = f"group:{attribute}"
        if col not in meta.columns:
            raise BiasInputError(f"metadata has no column {col!r}; group columns: {cols}")
        return col
    if len(cols) != 1:
        raise BiasInputError(f"say which group attribute to use; metadata has {cols}")
    return cols[0]


def speaker_dispersion(X: np.ndarray, y: np.ndarray, meta: pd.DataFrame, *,
                       attribute: str | None = None, min_speakers: int = 2) -> pd.DataFrame:
    """Per-speaker within/between phone dispersion and leave-speaker-out phone accuracy.

    Parameters
    ----------
    X : array (N, D)
        Phone-token embeddings of one layer.
    y : array (N,)
        Phone labels.
    meta : DataFrame (N rows)
        Needs ``speaker`` and a ``group:<attribute>`` column.

    Returns
    -------
    DataFrame, one row per speaker: ``speaker, group, n_tokens, within, between, dispersion,
    accuracy``.
    """
    require_columns(meta, ["speaker"], "embedding metadata")
    gcol = group_column(meta, attribute)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(str)
    if X.ndim != 2 or X.shape[0] != y.size or y.size != len(meta):
        raise BiasInputError(f"X {X.shape}, y {y.shape} and meta ({len(meta)} rows) disagree")
    spk = meta["speaker"].astype(str).to_numpy()
    two = meta.groupby("speaker")[gcol].nunique()
    if (two > 1).any():
        raise BiasInputError(f"speaker {two.index[two > 1][0]!r} has several {gcol} values")
    speakers, sc = np.unique(spk, return_inverse=True)
    phones, pc = np.unique(y, return_inverse=True)
    S, P, N = speakers.size, phones.size, y.size
    pair = sc * P + pc
    A = sparse.csr_matrix((np.ones(N), (pair, np.arange(N))), shape=(S * P, N))
    sums = (A @ X).reshape(S, P, -1)                                   # (S, P, D)
    cnt = np.bincount(pair, minlength=S * P).reshape(S, P).astype(float)
    sq = np.bincount(pair, weights=np.einsum("nd,nd->n", X, X), minlength=S * P).reshape(S, P)
    with np.errstate(invalid="ignore", divide="ignore"):
        ss = sq - np.einsum("spd,spd->sp", sums, sums) / np.where(cnt > 0, cnt, 1)
        dfree = np.maximum(cnt - 1, 0).sum(1)
        within = np.where(dfree > 0, np.maximum(ss, 0).sum(1) / dfree, np.nan)
    psum, pcnt = sums.sum(0), cnt.sum(0)
    cent = psum / pcnt[:, None]
    between = float((pcnt * ((cent - X.mean(0)) ** 2).sum(1)).sum() / N)
    # leave-one-speaker-out nearest-centroid accuracy
    acc = np.full(S, np.nan)
    for s in range(S):
        rest = pcnt - cnt[s]
        ok = rest > 0
        c = (psum[ok] - sums[s, ok]) / rest[ok, None]
        tok = np.flatnonzero(sc == s)
        d = (X[tok] ** 2).sum(1)[:, None] - 2 * X[tok] @ c.T + (c ** 2).sum(1)[None]
        acc[s] = np.mean(np.flatnonzero(ok)[d.argmin(1)] == pc[tok])
    grp = meta.groupby(meta["speaker"].astype(str))[gcol].first().reindex(speakers).astype(str)
    out = pd.DataFrame({"speaker": speakers, "group": grp.to_numpy(),
                        "n_tokens": cnt.sum(1).astype(int), "within": within,
                        "between": between, "dispersion": within / between, "accuracy": acc})
    few = out["group"].value_counts()
    if (few < min_speakers).any():
        g = few.index[few < min_speakers][0]
        raise TooFewSpeakersError(f"group {g!r} has {few[g]} speaker(s); need {min_speakers}")
    return out
