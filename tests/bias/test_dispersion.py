"""Per-speaker phone-embedding dispersion: Mahalanobis, equal weight per phone, cross-fitted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from probekit.bias import BiasInputError, TooFewSpeakersError
from probekit.bias.dispersion import _dispersion, speaker_dispersion, whitening_matrix
from probekit.testing.simulate import simulate_embeddings

COLUMNS = ["speaker", "group", "n_tokens", "n_tokens_fit", "n_tokens_eval", "n_phones",
           "split_by", "dispersion", "error", "accuracy"]


def _codes(y, meta):
    sp, sc = np.unique(meta["speaker"].astype(str), return_inverse=True)
    ph, pc = np.unique(y, return_inverse=True)
    return sc, pc, sp.size, ph.size


def _group_means(d):
    return d.groupby("group")["dispersion"].mean()


def test_inflated_noise_raises_dispersion_and_a_shift_does_not():
    X, y, meta = simulate_embeddings(n_groups=3, speakers_per_group=8, phone_spread=1.0,
                                     tokens_per_phone=8, dispersion_inflation={"g1": 1.5},
                                     group_shift={"g2": 2.0})
    meta = meta.drop(columns="utt_id")
    d = speaker_dispersion(X, y, meta)
    assert list(d.columns) == COLUMNS
    by = _group_means(d)
    assert by["g1"] / by["g0"] == pytest.approx(1.5 ** 2, rel=0.2)
    assert by["g2"] / by["g0"] == pytest.approx(1.0, rel=0.15)       # a shift is not dispersion
    assert d.loc[d.group == "g1", "dispersion"].min() > d.loc[d.group == "g0", "dispersion"].max()
    err = d.groupby("group")["error"].mean()
    assert err["g1"] > err["g0"] and err["g2"] > err["g0"]           # both cost accuracy
    np.testing.assert_allclose(d["accuracy"], 1 - d["error"])
    assert (d["split_by"] == "token").all()                          # no utt_id column
    assert (d["n_tokens_fit"] + d["n_tokens_eval"] == d["n_tokens"]).all()


def test_dispersion_is_invariant_to_an_invertible_linear_map():
    X, y, meta = simulate_embeddings(n_groups=3, speakers_per_group=6, phone_spread=1.0,
                                     dispersion_inflation={"g1": 1.5})
    rng = np.random.default_rng(1)
    A1 = rng.normal(size=(16, 16))
    A2 = rng.normal(size=(16, 16)) * np.exp(rng.normal(0, 2, size=16))   # badly conditioned
    d0 = speaker_dispersion(X, y, meta, shrinkage=0.0)
    d1 = speaker_dispersion(X @ A1, y, meta, shrinkage=0.0)
    np.testing.assert_allclose(d1["dispersion"], d0["dispersion"], rtol=1e-6)   # exact
    np.testing.assert_array_equal(d1["error"], d0["error"])
    a, b = speaker_dispersion(X @ A1, y, meta), speaker_dispersion(X @ A1 @ A2, y, meta)
    assert np.abs(b["dispersion"] / a["dispersion"] - 1).max() < 0.1    # approximate (shrinkage)
    assert np.abs(a["dispersion"] / d0["dispersion"] - 1).max() < 0.1


def test_a_dimension_with_huge_irrelevant_variance_does_not_dominate():
    X, y, meta = simulate_embeddings(n_groups=2, speakers_per_group=8, phone_spread=1.0,
                                     tokens_per_phone=8, dispersion_inflation={"g1": 1.5})
    junk = np.random.default_rng(3).normal(0, 100.0, size=(len(y), 1))
    Xj = np.hstack([X, junk])
    by = _group_means(speaker_dispersion(Xj, y, meta))
    assert by["g1"] / by["g0"] > 1.8                                  # ~ (16 * 2.25 + 1) / 17
    # the isotropic Euclidean version on the same halves sees only the junk dimension
    sc, pc, S, P = _codes(y, meta)
    fit = np.zeros(len(y), bool)
    for s in range(S):
        for p in range(P):
            j = np.flatnonzero((sc == s) & (pc == p))
            fit[j[::2]] = True
    D, _, _ = _dispersion(Xj, np.eye(Xj.shape[1]), pc, sc, S, P, fit, ~fit)  # Z = Xj
    g = meta.groupby("speaker")["group:accent"].first().sort_index().to_numpy()
    assert D[g == "g1"].mean() / D[g == "g0"].mean() < 1.1


def _phone_mix_data(seed=0):
    """Speakers alike in every phone's spread; half have a skewed phone mix."""
    rng = np.random.default_rng(seed)
    P, dim = 6, 8
    cent = rng.normal(0, 3.0, size=(P, dim))
    scale = np.array([0.5, 0.5, 0.5, 2.0, 2.0, 2.0])                 # quiet and noisy phones
    Xs, ys, ms = [], [], []
    for gname, counts in (("bal", [10] * 6), ("skew", [3, 3, 3, 20, 20, 20])):
        for si in range(10):
            ph = np.repeat(np.arange(P), counts)
            Xs.append(cent[ph] + scale[ph, None] * rng.normal(size=(ph.size, dim)))
            ys.append(np.array([f"p{j}" for j in ph]))
            ms.append(pd.DataFrame({"speaker": f"{gname}_{si}", "group:accent": gname,
                                    "phone": ys[-1]}))
    return np.vstack(Xs), np.concatenate(ys), pd.concat(ms, ignore_index=True)


def test_phone_mix_does_not_change_dispersion():
    X, y, meta = _phone_mix_data()
    d = speaker_dispersion(X, y, meta)
    by = _group_means(d)
    assert by["skew"] / by["bal"] == pytest.approx(1.0, abs=0.12)
    assert (d["n_phones"] == 6).all()
    # dof-weighted pooling over phones (the old definition) would follow the phone mix
    Z = X @ whitening_matrix(X, y)
    pooled = {}
    for spk, m in meta.groupby("speaker"):
        ss = dof = 0.0
        for p in np.unique(y):
            z = Z[m.index[m["phone"] == p]]
            ss += ((z - z.mean(0)) ** 2).sum()
            dof += len(z) - 1
        pooled[spk] = ss / dof
    pooled = pd.Series(pooled)
    skew = pooled.index.str.startswith("skew")
    assert pooled[skew].mean() / pooled[~skew].mean() > 1.3


def test_cross_fitting_keeps_dispersion_and_error_uncorrelated_under_equal_spread():
    rho_cf, p_cf, rho_same = [], [], []
    for i in range(40):
        X, y, meta = simulate_embeddings(n_groups=2, speakers_per_group=12, n_phones=8,
                                         tokens_per_phone=8, phone_spread=1.0,
                                         speaker_noise_sd=0.0, random_state=i)
        d = speaker_dispersion(X, y, meta)
        r, p = spearmanr(d["dispersion"], d["error"])
        rho_cf.append(r)
        p_cf.append(p)
        # the same-token version: D and error from every token of the speaker
        sc, pc, S, P = _codes(y, meta)
        allm = np.ones(len(y), bool)
        D, _, e = _dispersion(X.astype(float), whitening_matrix(X, y), pc, sc, S, P, allm, allm)
        rho_same.append(spearmanr(D, e)[0])
    assert abs(np.nanmean(rho_cf)) < 0.1
    assert np.mean(np.array(p_cf) < 0.05) <= 0.10
    # without cross-fitting, chance spread of a speaker's sample shows up in both: biased
    assert np.nanmean(rho_same) > 0.1


def test_matches_direct_computation_and_splits_by_utterance():
    X, y, meta = simulate_embeddings(n_groups=2, speakers_per_group=3, n_phones=3,
                                     tokens_per_phone=6, dim=3)
    X = X.astype(float)
    meta = meta.copy()
    meta["utt_id"] = [f"{s}_u{i % 3}" for s, i in zip(meta["speaker"], range(len(meta)))]
    one = meta["speaker"] == "g1_s2"                                  # one utterance only
    meta.loc[one, "utt_id"] = "g1_s2_u0"
    d = speaker_dispersion(X, y, meta, shrinkage=0.0).set_index("speaker")
    assert d.loc["g1_s2", "split_by"] == "token" and d.loc["g0_s0", "split_by"] == "utterance"
    phones = np.unique(y)
    R = X - np.array([X[y == p].mean(0) for p in phones])[np.searchsorted(phones, y)]
    Winv = np.linalg.inv(R.T @ R / (len(y) - len(phones)))
    for spk in ["g0_s0", "g1_s2"]:
        m = (meta["speaker"] == spk).to_numpy()
        if spk == "g1_s2":
            fit = np.zeros(len(y), bool)
            for p in phones:
                fit[np.flatnonzero(m & (y == p))[::2]] = True
        else:                                   # sorted utterances u0, u1, u2 -> A = u0, u2
            fit = m & meta["utt_id"].isin([f"{spk}_u0", f"{spk}_u2"]).to_numpy()
        vs = []
        for p in phones:
            x = X[fit & (y == p)]
            if len(x) >= 2:
                r = x - x.mean(0)
                vs.append(np.einsum("nd,de,ne->", r, Winv, r) / (len(x) - 1) / 3)
        assert d.loc[spk, "dispersion"] == pytest.approx(np.mean(vs), rel=1e-8)
        assert d.loc[spk, "n_tokens_fit"] == fit.sum()
        ev = m & ~fit
        others = ~m
        cents = np.array([X[others & (y == p)].mean(0) for p in phones])
        dist = [[(x - c) @ Winv @ (x - c) for c in cents] for x in X[ev]]
        err = np.mean(phones[np.argmin(dist, 1)] != y[ev])
        assert d.loc[spk, "error"] == pytest.approx(err)


def test_speaker_without_a_repeated_phone_gets_nan_not_an_error():
    X, y, meta = simulate_embeddings(n_groups=2, speakers_per_group=3, n_phones=4,
                                     tokens_per_phone=4)
    keep = ~((meta["speaker"] == "g0_s0") & meta.groupby(["speaker", "phone"]).cumcount().ge(2))
    keep = keep.to_numpy()
    d = speaker_dispersion(X[keep], y[keep], meta[keep].reset_index(drop=True)).set_index("speaker")
    assert np.isnan(d.loc["g0_s0", "dispersion"]) and d.loc["g0_s0", "n_phones"] == 0
    assert np.isfinite(d.loc["g0_s0", "error"])
    assert d.drop(index="g0_s0")["dispersion"].notna().all()


def test_more_dimensions_than_tokens_works_with_shrinkage():
    X, y, meta = simulate_embeddings(n_groups=2, speakers_per_group=3, n_phones=4,
                                     tokens_per_phone=4, dim=200)
    d = speaker_dispersion(X, y, meta)
    assert d["dispersion"].notna().all() and (d["dispersion"] > 0).all()
    with pytest.raises(BiasInputError, match="singular"):
        speaker_dispersion(X, y, meta, shrinkage=0.0)


def test_dispersion_errors_name_the_item():
    X, y, meta = simulate_embeddings(n_groups=2, speakers_per_group=2)
    with pytest.raises(BiasInputError, match="'speaker'"):
        speaker_dispersion(X, y, meta.drop(columns="speaker"))
    with pytest.raises(BiasInputError, match="group:dialect"):
        speaker_dispersion(X, y, meta, attribute="dialect")
    with pytest.raises(BiasInputError, match="shrinkage"):
        speaker_dispersion(X, y, meta, shrinkage="huge")
    one = meta.copy()
    one.loc[one.speaker == "g1_s0", "speaker"] = "g1_s1"
    with pytest.raises(TooFewSpeakersError, match="'g1'"):
        speaker_dispersion(X, y, one)
