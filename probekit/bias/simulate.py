"""Simulated results tables and phone embeddings with planted effects (for checks that can fail).

Results: speakers nested in groups; speaker ``s`` of group ``g`` has a latent error rate at
layer ``l`` drawn from a Beta with mean ``mu_{g,l} = base_l + offset_g * profile_l`` and
concentration ``phi_g`` (``Var = mu(1-mu)/(phi_g+1)``), through one quantile ``u_s`` shared by
every layer, train set and seed (a speaker who is hard at one layer is hard at all). Each cell
(layer, train set, seed) adds the train-set effect and draws per-item Bernoulli errors
(a binomial count per speaker). A planted ``group_offset`` is systematic bias; a
``variance_inflation`` multiplies a group's between-speaker variance at an unchanged mean:
random error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import beta as beta_dist

from probekit.probes.results import RESULT_COLUMNS

__all__ = ["simulate_results", "simulate_embeddings", "full_train_sets"]


def full_train_sets(groups: Sequence[str]) -> list[str]:
    """``["all", <g>..., "all-but:<g>"...]`` for the groups."""
    return ["all"] + list(groups) + [f"all-but:{g}" for g in groups]


def simulate_results(*, n_groups: int = 4, speakers_per_group: int | Sequence[int] = 8,
                     items_per_speaker: int = 60, n_layers: int = 4, seeds: Sequence[int] = (0,),
                     train_sets: Sequence[str] | str = ("all",), base_error=0.3,
                     group_offset: Mapping[str, float] | None = None, offset_profile=None,
                     concentration: float = 30.0,
                     variance_inflation: Mapping[str, float] | None = None,
                     own_group_advantage: Mapping[str, float] | None = None,
                     unseen_penalty: float = 0.0,
                     train_offset: Mapping[str, float] | None = None, seed_sd: float = 0.005,
                     include_all_rows: bool = True, encoder: str = "sim", task: str = "phone",
                     probe: str = "linear", group_attribute: str = "accent",
                     random_state: int = 0) -> pd.DataFrame:
    """A results table (schema of :mod:`probekit.probes.results`) with planted effects.

    Parameters
    ----------
    n_groups : int
        Groups are named ``g0, g1, ...``.
    speakers_per_group : int or sequence of int
    items_per_speaker : int
        Test items per speaker and cell (the binomial ``n``).
    base_error : float or array (n_layers,)
        Mean error of an unaffected group at each layer.
    group_offset : {group: float}
        Added to the group's mean error (probability scale), times ``offset_profile[l]``.
    concentration : float
        Beta concentration ``phi`` of speaker error rates (larger = speakers more alike).
    variance_inflation : {group: float}
        Multiplies that group's between-speaker variance, mean unchanged.
    train_sets : sequence or ``"full"``
        ``"full"`` means ``all``, every group, and ``all-but:<g>`` for every group.
    own_group_advantage : {group: float}
        Subtracted from the error of the probe trained on group ``g`` when tested on ``g``.
    unseen_penalty : float
        Added to the error of ``all-but:<g>`` on group ``g``.
    train_offset : {group: float}
        Added to the error of the probe trained on group ``g`` on every *other* group (how
        well a group's probe generalises).
    seed_sd : float
        Standard deviation of a probe-seed shift of each cell's error rates.
    """
    rng = np.random.default_rng(random_state)
    groups = [f"g{i}" for i in range(n_groups)]
    spg = ([speakers_per_group] * n_groups if np.isscalar(speakers_per_group)
           else list(speakers_per_group))
    codes = np.repeat(np.arange(n_groups), spg)
    speakers = np.array([f"{groups[c]}_s{i}" for i, c in enumerate(codes)])
    S, L = codes.size, n_layers
    base = np.broadcast_to(np.asarray(base_error, float), (L,))
    prof = np.ones(L) if offset_profile is None else np.asarray(offset_profile, float)
    off = np.array([(group_offset or {}).get(g, 0.0) for g in groups])
    infl = np.array([(variance_inflation or {}).get(g, 1.0) for g in groups])
    phi = (concentration + 1.0) / infl - 1.0
    if (phi <= 0).any():
        raise ValueError(f"variance_inflation too large for concentration {concentration}")
    mu = np.clip(base[:, None] + prof[:, None] * off[None, :], 0.01, 0.99)[:, codes]   # (L, S)
    u = rng.uniform(size=S)
    p_spk = beta_dist.ppf(u[None, :], mu * phi[codes], (1 - mu) * phi[codes])           # (L, S)
    tsets = full_train_sets(groups) if train_sets == "full" else list(train_sets)
    adv = own_group_advantage or {}
    rows = []
    for li in range(L):
        for ts in tsets:
            shift = np.zeros(S)
            if ts in groups:
                own = codes == groups.index(ts)
                shift -= np.where(own, adv.get(ts, 0.0), 0.0)
                shift += np.where(own, 0.0, (train_offset or {}).get(ts, 0.0))
            elif ts.startswith("all-but:") and ts[8:] in groups:
                shift += np.where(codes == groups.index(ts[8:]), unseen_penalty, 0.0)
            for sd in seeds:
                p = np.clip(p_spk[li] + shift + rng.normal(0, seed_sd), 0.0, 1.0)
                k = rng.binomial(items_per_speaker, p)
                rows.append(pd.DataFrame({
                    "layer": f"layer{li}", "layer_index": li, "train_set": ts, "seed": sd,
                    "test_group": np.array(groups)[codes], "unit": speakers,
                    "value": k / items_per_speaker, "n": items_per_speaker}))
    df = pd.concat(rows, ignore_index=True)
    if include_all_rows:
        agg = (df.assign(k=df["value"] * df["n"])
                 .groupby(["layer", "layer_index", "train_set", "seed", "test_group"], as_index=False)
                 [["k", "n"]].sum())
        agg["value"], agg["unit"] = agg["k"] / agg["n"], "all"
        df = pd.concat([df, agg.drop(columns="k")], ignore_index=True)
    n_tr_spk = int(min(spg))
    df = df.assign(encoder=encoder, task=task, probe=probe, group_attribute=group_attribute,
                   metric="error", n_train=n_tr_spk * items_per_speaker,
                   n_train_speakers=n_tr_spk)
    return df[RESULT_COLUMNS].astype({"n": "int64", "seed": "int64", "layer_index": "int64"})


def simulate_embeddings(*, n_groups: int = 3, speakers_per_group: int = 6, n_phones: int = 8,
                        tokens_per_phone: int = 6, dim: int = 16, phone_spread: float = 3.0,
                        noise: float = 1.0, dispersion_inflation: Mapping[str, float] | None = None,
                        group_shift: Mapping[str, float] | None = None,
                        speaker_noise_sd: float = 0.1, group_attribute: str = "accent",
                        random_state: int = 0):
    """Phone-token embeddings ``X, y, meta`` like ``EmbeddingStore.load_task(layer, "phone")``.

    Token ``x = c_p + b_s + noise_s * sigma_g * eps`` with phone centroids ``c_p`` (spread
    ``phone_spread``), a small speaker offset ``b_s``, and within-phone noise whose scale is
    multiplied by ``dispersion_inflation[g]`` (random variance) for a group's speakers.
    ``group_shift[g]`` moves every token of a group along one fixed direction (a systematic
    shift, which does not change within-phone dispersion).

    Returns
    -------
    X : float32 array (N, dim); y : phone labels (N,); meta : DataFrame with ``speaker``,
    ``group:<attribute>`` and ``phone``.
    """
    rng = np.random.default_rng(random_state)
    groups = [f"g{i}" for i in range(n_groups)]
    cent = rng.normal(0, phone_spread / np.sqrt(dim), size=(n_phones, dim))
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    Xs, ys, ms = [], [], []
    for gi, g in enumerate(groups):
        sig = noise * (dispersion_inflation or {}).get(g, 1.0)
        for si in range(speakers_per_group):
            spk = f"{g}_s{si}"
            sig_s = sig * np.exp(rng.normal(0, speaker_noise_sd))
            b = rng.normal(0, 0.2 / np.sqrt(dim), size=dim) + (group_shift or {}).get(g, 0.0) * direction
            ph = np.repeat(np.arange(n_phones), tokens_per_phone)
            X = cent[ph] + b + sig_s / np.sqrt(dim) * rng.normal(size=(ph.size, dim))
            Xs.append(X)
            ys.append(np.array([f"p{j}" for j in ph]))
            ms.append(pd.DataFrame({"speaker": spk, f"group:{group_attribute}": g,
                                    "phone": ys[-1]}))
    meta = pd.concat(ms, ignore_index=True)
    return np.vstack(Xs).astype(np.float32), np.concatenate(ys), meta
