"""Random variance in phone embeddings (after seed 001): per-speaker phone-embedding dispersion.

At one layer, with tokens ``x`` of phone ``p`` and global phone centroids ``c_p``:

    W = shrink( sum_p sum_{x in p} (x - c_p)(x - c_p)^T / (N - P) )      (pooled within-phone
                                                                          covariance, as LDA sees it)
    z = W^{-1/2} x                                                       (whitening, once per layer)

Each speaker's tokens are split into two halves, by utterance when ``meta`` has ``utt_id``
(sorted utterances alternate between halves), otherwise token by token within each phone
(column ``split_by``). From half A, over the ``P_s`` phones with ``n_sp >= 2`` tokens:

    v_sp = sum_{z in (s,p)} ||z - zbar_sp||^2 / ((n_sp - 1) * dim)       (unbiased, per phone)
    D_s  = mean_p v_sp                                                   (equal weight per phone)

``D_s ~ 1`` when a speaker is as spread as the pooled within-phone scatter. Spread around the
speaker's *own* phone centroids keeps a systematic shift out of ``D_s``; the Mahalanobis
metric keeps high-variance dimensions that do not separate phones from dominating it; the
equal-weight mean keeps it from depending on the speaker's phone mix.

From half B: ``error = 1 - accuracy`` of nearest-centroid phone classification in the whitened
space, centroids from every *other* speaker's tokens (leave-one-speaker-out). Using different
tokens for ``D_s`` and ``error`` (cross-fitting) keeps sampling noise shared by both from
making them correlate under equal true spread.

Shrinkage is applied to the within-phone *correlation* matrix (the target is the diagonal of
``W``), so rescaling a dimension changes nothing; the intensity is Oracle Approximating
Shrinkage (``"oas"``, Chen et al. 2010) or Ledoit-Wolf (``"ledoit_wolf"``) from
:mod:`sklearn.covariance`, or a fixed float in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from probekit.bias.errors import BiasInputError, TooFewSpeakersError
from probekit.bias.speakers import require_columns

__all__ = ["speaker_dispersion", "group_column", "whitening_matrix"]


def group_column(meta: pd.DataFrame, attribute: str | None = None) -> str:
    """The ``group:<attribute>`` column of store metadata (the only one if not given)."""
    from probekit.probes.tasks import group_attribute_of  # not at import: probes loads torch
    cols = [c for c in meta.columns if group_attribute_of(c) is not None]
    if attribute is not None:
        col = f"group:{attribute}"
        if col not in meta.columns:
            raise BiasInputError(f"metadata has no column {col!r}; group columns: {cols}")
        return col
    if len(cols) != 1:
        raise BiasInputError(f"say which group attribute to use; metadata has {cols}")
    return cols[0]


def whitening_matrix(X: np.ndarray, y: np.ndarray, shrinkage="oas") -> np.ndarray:
    """``T`` (dim, dim) with ``X @ T`` whitened by the shrunk pooled within-phone covariance.

    ``T = diag(1/sd) V diag(lam)^-1/2 / sqrt(kappa)`` from the eigendecomposition of the
    shrunk within-phone correlation ``(1 - a) C + a I``; ``kappa`` makes the pooled
    within-phone scatter average exactly 1 per whitened dimension.

    ``shrinkage``: ``"oas"``, ``"ledoit_wolf"``, a float in [0, 1] (weight on the diagonal
    target), or ``None``/``0`` for none (needs an invertible covariance).
    """
    from sklearn.covariance import ledoit_wolf_shrinkage

    phones, pc = np.unique(np.asarray(y).astype(str), return_inverse=True)
    N, P, dim = y.size, phones.size, X.shape[1]
    cnt = np.bincount(pc, minlength=P).astype(float)
    cent = np.zeros((P, dim))
    for sl, Xc in _chunks(X):
        np.add.at(cent, pc[sl], Xc)
    cent = cent / cnt[:, None]                                # global phone centroids
    dof = max(N - P, 1)
    ss = np.zeros(dim)
    for sl, Xc in _chunks(X):
        ss += ((Xc - cent[pc[sl]]) ** 2).sum(0)
    sd = np.sqrt(ss / dof)
    if (sd <= 0).any():
        raise BiasInputError(f"{int((sd <= 0).sum())} embedding dimension(s) have no "
                             f"within-phone variance; drop them")
    G = np.zeros((dim, dim))
    for sl, Xc in _chunks(X):
        Rs = (Xc - cent[pc[sl]]) / sd
        G += Rs.T @ Rs
    C = G / dof                                               # within-phone correlation
    if shrinkage in (None, 0, 0.0):
        a = 0.0
    elif shrinkage == "oas":
        a = _oas_shrinkage(G / N, N)
    elif shrinkage == "ledoit_wolf":  # sklearn's estimator takes the tokens: all at once
        Rs = np.concatenate([(Xc - cent[pc[sl]]) / sd for sl, Xc in _chunks(X)])
        a = float(ledoit_wolf_shrinkage(Rs, assume_centered=True))
        del Rs
    elif isinstance(shrinkage, (int, float)) and 0 <= shrinkage <= 1:
        a = float(shrinkage)
    else:
        raise BiasInputError(f"shrinkage must be 'oas', 'ledoit_wolf' or a float in [0, 1], "
                             f"not {shrinkage!r}")
    C = (1 - a) * C + a * np.eye(C.shape[0])
    lam, V = np.linalg.eigh(C)
    if lam.min() <= 1e-12 * max(lam.max(), 1e-300):
        raise BiasInputError("the within-phone covariance is singular (more dimensions than "
                             "tokens?); use shrinkage='oas'")
    T = (V / np.sqrt(lam)[None, :]) / sd[:, None]             # diag(1/sd) V diag(lam^-1/2)
    # rescale so the pooled within-phone scatter has mean 1 per dimension after whitening
    # (shrinkage alone would bias every D_s down by tr(W_shrunk^-1 W) / dim)
    tot = 0.0
    for sl, Xc in _chunks(X):
        tot += (((Xc - cent[pc[sl]]) @ T) ** 2).sum()
    kappa = tot / (dof * X.shape[1])
    return T / np.sqrt(kappa)


def _oas_shrinkage(emp_cov: np.ndarray, n_samples: int) -> float:
    """Oracle Approximating Shrinkage intensity (Chen et al. 2010, eq. 23) of an empirical
    covariance ``X.T @ X / n`` (centred): :func:`sklearn.covariance.oas`'s formula, taking
    the covariance so that the tokens can be summed chunk by chunk."""
    p = emp_cov.shape[0]
    if p == 1:
        return 0.0
    alpha = np.mean(emp_cov ** 2)
    mu = np.trace(emp_cov) / p
    num = alpha + mu ** 2
    den = (n_samples + 1) * (alpha - mu ** 2 / p)
    return float(1.0 if den == 0 else min(num / den, 1.0))


#: Bytes of one float64 block of tokens in a pass over a layer (:func:`_chunks`): 128 MB,
#: 43,690 tokens at 384 dimensions, 16,384 at 1,024.
CHUNK_BYTES = 2 ** 27


def _chunks(X):
    """``(slice, float64 block)`` over the rows of ``X``: an array, or a store layer read in
    pieces (:class:`~probekit.store.rows.LayerRows`), so no pass holds every token. A layer
    of one block is computed exactly as on the whole array (the sums below add to zeros)."""
    step = max(1, CHUNK_BYTES // (8 * X.shape[1]))
    for a in range(0, X.shape[0], step):
        b = min(a + step, X.shape[0])
        Xc = X[a:b] if isinstance(X, np.ndarray) else X.block(a, b)
        yield slice(a, b), np.asarray(Xc, dtype=np.float64)


def _halves(meta: pd.DataFrame, spk: np.ndarray, pc: np.ndarray):
    """Boolean fit mask (half A) and the ``split_by`` label per speaker."""
    fit = np.zeros(spk.size, dtype=bool)
    split_by = {}
    has_utt = "utt_id" in meta.columns
    utt = meta["utt_id"].astype(str).to_numpy() if has_utt else None
    for s in np.unique(spk):
        idx = np.flatnonzero(spk == s)
        if has_utt and np.unique(utt[idx]).size >= 2:
            u = np.unique(utt[idx])                           # sorted
            half_a = set(u[::2])
            fit[idx] = [v in half_a for v in utt[idx]]
            split_by[s] = "utterance"
        else:
            # alternate tokens within each phone, so both halves see every phone
            for p in np.unique(pc[idx]):
                j = idx[pc[idx] == p]
                fit[j[::2]] = True
            split_by[s] = "token"
    return fit, split_by


def _dispersion(X, T: np.ndarray, pc: np.ndarray, sc: np.ndarray, S: int, P: int,
                fit: np.ndarray, evl: np.ndarray):
    """Per-speaker ``D_s`` (from ``fit`` tokens), phones used, and LOSO error on ``evl``
    tokens, from the whitened tokens ``Z = X @ T`` computed chunk by chunk (two passes)."""
    N, dim = X.shape[0], T.shape[1]
    pair = sc * P + pc
    s1, a1, zz = np.zeros((S * P, dim)), np.zeros((S * P, dim)), np.zeros(N)
    for sl, Xc in _chunks(X):
        Z = Xc @ T
        n = Z.shape[0]
        for acc, mask in ((s1, fit[sl]), (a1, np.ones(n, dtype=bool))):
            acc += sparse.csr_matrix((mask.astype(float), (pair[sl], np.arange(n))),
                                     shape=(S * P, n)) @ Z
        zz[sl] = np.einsum("nd,nd->n", Z, Z)
    s1, a1 = s1.reshape(S, P, dim), a1.reshape(S, P, dim)

    def counts(mask):
        c = np.bincount(pair, weights=mask.astype(float), minlength=S * P).reshape(S, P)
        sq = np.bincount(pair, weights=mask * zz, minlength=S * P).reshape(S, P)
        return c, sq

    c, sq = counts(fit)
    with np.errstate(invalid="ignore", divide="ignore"):
        ss = np.maximum(sq - np.einsum("spd,spd->sp", s1, s1) / np.where(c > 0, c, 1), 0)
        v = np.where(c >= 2, ss / np.maximum(c - 1, 1) / dim, np.nan)
    n_ph = (c >= 2).sum(1)
    D = np.where(n_ph > 0, np.nansum(v, 1) / np.maximum(n_ph, 1), np.nan)
    # leave-one-speaker-out centroids from every token of the other speakers
    ac, _ = counts(np.ones(N, dtype=bool))
    psum, pcnt = a1.sum(0), ac.sum(0)
    wrong, n_ev = np.zeros(S), np.zeros(S, dtype=np.int64)
    for sl, Xc in _chunks(X):
        Z, scc, pcc, ev = Xc @ T, sc[sl], pc[sl], evl[sl]
        for s in np.unique(scc[ev]):
            tok = np.flatnonzero((scc == s) & ev)
            rest = pcnt - ac[s]
            ok = rest > 0
            cen = (psum[ok] - a1[s, ok]) / rest[ok, None]
            d = (Z[tok] ** 2).sum(1)[:, None] - 2 * Z[tok] @ cen.T + (cen ** 2).sum(1)[None]
            wrong[s] += np.sum(np.flatnonzero(ok)[d.argmin(1)] != pcc[tok])
            n_ev[s] += tok.size
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(n_ev > 0, wrong / np.maximum(n_ev, 1), np.nan)
    return D, n_ph, err


def speaker_dispersion(X: np.ndarray, y: np.ndarray, meta: pd.DataFrame, *,
                       attribute: str | None = None, min_speakers: int = 2,
                       shrinkage="oas") -> pd.DataFrame:
    """Per-speaker Mahalanobis phone dispersion (half A) and LOSO phone error (half B).

    Parameters
    ----------
    X : array (N, D), or a store layer read in pieces (``EmbeddingStore.rows``)
        Phone-token embeddings of one layer; read in blocks of :data:`CHUNK_BYTES` of
        float64 (a few passes), so memory depends on the dimension, speakers and phones, not
        on the number of tokens (but a few numbers per token). A layer of more than one
        block sums in another order than the whole array would: equal to ~1e-15.
    y : array (N,)
        Phone labels.
    meta : DataFrame (N rows)
        Needs ``speaker`` and a ``group:<attribute>`` column; ``utt_id`` (as in the store)
        makes the two halves utterance-disjoint.
    shrinkage : "oas", "ledoit_wolf" or float
        Shrinkage of the pooled within-phone covariance (see :func:`whitening_matrix`).

    Returns
    -------
    DataFrame, one row per speaker: ``speaker, group, n_tokens, n_tokens_fit, n_tokens_eval,
    n_phones`` (phones with >= 2 fitting tokens), ``split_by`` (``"utterance"`` or
    ``"token"``), ``dispersion`` (``D_s``; NaN when no phone has 2 fitting tokens),
    ``error`` and ``accuracy = 1 - error`` (NaN when the speaker has no evaluation tokens).
    """
    require_columns(meta, ["speaker"], "embedding metadata")
    gcol = group_column(meta, attribute)
    X = X if hasattr(X, "block") else np.asarray(X)  # a store layer stays on disk
    y = np.asarray(y).astype(str)
    if len(X.shape) != 2 or X.shape[0] != y.size or y.size != len(meta):
        raise BiasInputError(f"X {X.shape}, y {y.shape} and meta ({len(meta)} rows) disagree")
    if not all(np.isfinite(Xc).all() for _, Xc in _chunks(X)):
        raise BiasInputError("X has non-finite values")
    spk = meta["speaker"].astype(str).to_numpy()
    two = meta.groupby(spk)[gcol].nunique()
    if (two > 1).any():
        raise BiasInputError(f"speaker {two.index[two > 1][0]!r} has several {gcol} values")
    grp = meta.groupby(spk)[gcol].first().astype(str)
    few = grp.value_counts()
    if (few < min_speakers).any():
        g = few.index[few < min_speakers][0]
        raise TooFewSpeakersError(f"group {g!r} has {few[g]} speaker(s); need {min_speakers}")
    speakers, sc = np.unique(spk, return_inverse=True)
    phones, pc = np.unique(y, return_inverse=True)
    fit, split_by = _halves(meta.reset_index(drop=True), spk, pc)
    T = whitening_matrix(X, y, shrinkage)
    D, n_ph, err = _dispersion(X, T, pc, sc, speakers.size, phones.size, fit, ~fit)
    n_tok = np.bincount(sc, minlength=speakers.size)
    n_fit = np.bincount(sc, weights=fit, minlength=speakers.size).astype(int)
    return pd.DataFrame({"speaker": speakers, "group": grp.reindex(speakers).to_numpy(),
                         "n_tokens": n_tok, "n_tokens_fit": n_fit, "n_tokens_eval": n_tok - n_fit,
                         "n_phones": n_ph, "split_by": [split_by[s] for s in speakers],
                         "dispersion": D, "error": err, "accuracy": 1 - err})
