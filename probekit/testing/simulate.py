"""Simulated results tables and phone embeddings with planted effects (for checks that can fail).

Results follow the repeated-split design of the probe grid: every ``seed`` is one split that
holds out ``test_speakers`` of each group's speakers; only those speakers get rows for it.

Speaker ``s`` of group ``g`` has a latent error rate at layer ``l`` drawn from a Beta with mean
``mu_{g,l} = base_l + offset_g * profile_l`` and concentration ``phi_g``
(``Var = mu(1-mu)/(phi_g+1)``), through one quantile ``u_s`` shared by every layer (a
speaker who is hard at one layer is hard at all), plus ``noise_effect * log(sigma_s)``
where ``sigma_s`` is the speaker's embedding noise scale (``sigma_g * exp(N(0, tau))``, see
:func:`simulate_embeddings`): a noisier speaker has more errors (random variance). Each
probe (layer, training set, split) adds a *training-draw* offset ``N(0, split_sd)`` common to
its test speakers: which speakers trained it matters, more when they are few. Errors are
binomial counts of ``items_per_speaker`` items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import beta as beta_dist

from probekit.probes.results import RESULT_COLUMNS
from probekit.probes.splits import TrainSet
from probekit.probes.tasks import PhoneTask, get_task

__all__ = ["simulate_results", "simulate_embeddings", "full_train_sets", "speaker_scales",
           "result_speakers", "SimulatedStore", "simulate_probe_study"]


def full_train_sets(groups: Sequence[str]) -> list[str]:
    """``["all", "all-matched", <g>..., "all-but:<g>"...]`` for the groups."""
    return ["all", "all-matched"] + list(groups) + [str(TrainSet("all-but", g)) for g in groups]


def result_speakers(n_groups: int, speakers_per_group) -> np.ndarray:
    """Speaker ids of :func:`simulate_results` (``g<i>_s<j>``, ``j`` counted over every group):
    pass them to :func:`simulate_embeddings` so a dispersion frame matches the table."""
    spg = [speakers_per_group] * n_groups if np.isscalar(speakers_per_group) else list(speakers_per_group)
    codes = np.repeat(np.arange(n_groups), spg)
    return np.array([f"g{c}_s{i}" for i, c in enumerate(codes)])


def speaker_scales(n_groups: int, speakers_per_group, *, dispersion_inflation=None,
                   scale_sd: float = 0.2, scale_sd_inflation=None,
                   random_state: int = 0) -> np.ndarray:
    """Embedding noise scale of every speaker (groups ``g0, g1, ...`` in order): the group's
    ``dispersion_inflation`` times ``exp(N(0, scale_sd * scale_sd_inflation[g]))``."""
    rng = np.random.default_rng(random_state + 7717)
    spg = [speakers_per_group] * n_groups if np.isscalar(speakers_per_group) else list(speakers_per_group)
    out = []
    for i, n in enumerate(spg):
        g = f"g{i}"
        sd = scale_sd * (scale_sd_inflation or {}).get(g, 1.0)
        z = rng.normal(0, sd, size=n)
        z -= sd ** 2 / 2   # E[exp(z)] = 1: an inflated spread of scales keeps the mean scale
        out.append((dispersion_inflation or {}).get(g, 1.0) * np.exp(z))
    return np.concatenate(out)


def simulate_results(*, n_groups: int = 4, speakers_per_group: int | Sequence[int] = 8,
                     items_per_speaker: int = 60, n_layers: int = 4, seeds: Sequence[int] = (0,),
                     test_speakers: float = 0.5,
                     train_sets: Sequence[str] | str = ("all",), base_error=0.3,
                     group_offset: Mapping[str, float] | None = None, offset_profile=None,
                     concentration: float = 30.0,
                     variance_inflation: Mapping[str, float] | None = None,
                     own_group_advantage: Mapping[str, float] | None = None,
                     unseen_penalty: float = 0.0,
                     train_offset: Mapping[str, float] | None = None, split_sd: float = 0.005,
                     interaction_sd: float = 0.0,
                     scales: np.ndarray | None = None, noise_effect: float = 0.0,
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
    seeds : sequence of int
        One split per seed; ``test_speakers`` of each group's speakers (at least 1, leaving 1)
        are its test speakers. ``test_speakers=1`` tests every speaker in every seed.
    base_error : float or array (n_layers,)
    group_offset : {group: float}
        Added to the group's mean error, times ``offset_profile[l]``.
    concentration : float
        Beta concentration ``phi`` of speaker error rates (larger = speakers more alike).
    variance_inflation : {group: float}
        Multiplies that group's between-speaker variance, mean unchanged.
    train_sets : sequence or ``"full"``
        ``"full"``: ``all``, ``all-matched``, every group and ``all-but:<g>`` for every group.
    own_group_advantage : {group: float}
        Subtracted from the error of the probe trained on group ``g`` when tested on ``g``.
    unseen_penalty : float
        Added to the error of ``all-but:<g>`` on group ``g``.
    train_offset : {group: float}
        Added to the error of the probe trained on ``g`` on every *other* group.
    split_sd : float
        Standard deviation of each probe's training-draw offset (common to its test speakers).
    interaction_sd : float
        Standard deviation of a persistent speaker x training-set shift (the same in every
        split and layer): some speakers suit some probes; it correlates a speaker's
        own-vs-broad differences across splits.
    scales, noise_effect : optional
        Speaker embedding noise scales (:func:`speaker_scales`) and the error added per unit
        of ``log(scale)``: couples errors to embedding dispersion.
    """
    rng = np.random.default_rng(random_state)
    groups = [f"g{i}" for i in range(n_groups)]
    spg = ([speakers_per_group] * n_groups if np.isscalar(speakers_per_group)
           else list(speakers_per_group))
    codes = np.repeat(np.arange(n_groups), spg)
    speakers = result_speakers(n_groups, spg)
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
    if scales is not None and noise_effect:
        p_spk = p_spk + noise_effect * np.log(np.asarray(scales, float))[None, :]
    tsets = full_train_sets(groups) if train_sets == "full" else list(train_sets)
    adv = own_group_advantage or {}
    T = len(tsets)
    shift = np.zeros((T, S))
    for ti, ts in enumerate(tsets):
        if ts in groups:
            own = codes == groups.index(ts)
            shift[ti] = np.where(own, -adv.get(ts, 0.0), (train_offset or {}).get(ts, 0.0))
        elif TrainSet.parse(ts).kind == "all-but" and TrainSet.parse(ts).group in groups:
            shift[ti] = np.where(codes == groups.index(TrainSet.parse(ts).group), unseen_penalty, 0.0)
    K = len(seeds)
    test = np.zeros((K, S), dtype=bool)
    for k in range(K):
        for gi in range(n_groups):
            pos = np.flatnonzero(codes == gi)
            n_t = pos.size if test_speakers >= 1 else \
                min(pos.size - 1, max(1, int(round(test_speakers * pos.size))))
            test[k, rng.permutation(pos)[:n_t]] = True
    draw = rng.normal(0, split_sd, size=(L, T, K, 1))
    if interaction_sd:
        shift = shift + rng.normal(0, interaction_sd, size=(T, S))
    p = np.clip(p_spk[:, None, None, :] + shift[None, :, None, :] + draw, 0.0, 1.0)     # (L,T,K,S)
    kk = rng.binomial(items_per_speaker, p)
    li, ti, ki, si = np.nonzero(np.broadcast_to(test[None, None], p.shape))
    df = pd.DataFrame({"layer": np.char.add("layer", li.astype(str)), "layer_index": li,
                       "train_set": np.asarray(tsets, dtype=object)[ti],
                       "seed": np.asarray(seeds)[ki], "test_group": np.asarray(groups)[codes[si]],
                       "unit": speakers[si], "value": kk[li, ti, ki, si] / items_per_speaker,
                       "n": items_per_speaker})
    if include_all_rows:
        agg = (df.assign(k=df["value"] * df["n"])
                 .groupby(["layer", "layer_index", "train_set", "seed", "test_group"], as_index=False)
                 [["k", "n"]].sum())
        agg["value"], agg["unit"] = agg["k"] / agg["n"], "all"
        df = pd.concat([df, agg.drop(columns="k")], ignore_index=True)
    n_tr_spk = max(1, int(min(spg)) - int(round(test_speakers * min(spg)))) if test_speakers < 1 \
        else int(min(spg))
    df = df.assign(encoder=encoder, task=task, probe=probe, group_attribute=group_attribute,
                   metric="error", n_train=n_tr_spk * items_per_speaker,
                   n_train_speakers=n_tr_spk)
    return df[RESULT_COLUMNS].astype({"n": "int64", "seed": "int64", "layer_index": "int64"})


def _per_group(x, g: str) -> float:
    return float((x or {}).get(g, 0.0)) if isinstance(x, Mapping) or x is None else float(x)


def simulate_embeddings(*, n_groups: int = 3, speakers_per_group: int | Sequence[int] = 6, n_phones: int = 8,
                        tokens_per_phone: int = 6, dim: int = 16, phone_spread: float = 3.0,
                        noise: float = 1.0, dispersion_inflation: Mapping[str, float] | None = None,
                        group_shift: Mapping[str, float] | None = None,
                        accent: Mapping[str, float] | float | None = None,
                        channel: Mapping[str, float] | float | None = None,
                        speaker_noise_sd: float = 0.1, scales: np.ndarray | None = None,
                        utterances_per_speaker: int = 4, group_attribute: str = "accent",
                        speaker_names: Sequence[str] | None = None, random_state: int = 0):
    """Phone-token embeddings ``X, y, meta`` like ``EmbeddingStore.load_task(layer, "phone")``.

    Token ``x = c_p + b_s + noise * scale_s * eps`` with phone centroids ``c_p`` (spread
    ``phone_spread``), a small speaker offset ``b_s`` and within-phone noise scaled by the
    speaker's ``scale_s`` (given, e.g. from :func:`speaker_scales`, or
    ``dispersion_inflation[g] * exp(N(0, speaker_noise_sd))``): random variance.
    ``group_shift[g]`` moves every token of a group along one fixed direction (a systematic
    shift, which does not change within-phone dispersion).

    Group-specific structure (a number for every group, or per group): with either, the
    phone centroids are a regular simplex (phone ``p`` at ``phone_spread / sqrt(2) * e_p``,
    every pair ``phone_spread`` apart; needs ``dim >= n_phones``) so that groups can be
    exactly alike. ``accent[g]``: group ``g`` realises phone ``p`` moved by that distance
    towards phone ``(p + g + 1) mod n_phones``; ``channel[g]``: every token of group ``g``
    moves by that distance towards phone ``g``'s centroid. With a prime ``n_phones`` above
    ``n_groups`` (accent) or ``n_phones >= n_groups`` (channel), a relabelling of phones maps
    any group's structure onto any other's, so equal values are group-specific structure at
    exact parity (every group equally served by a probe trained on every group), and a
    larger value for one group makes it worse under that probe. Tokens are spread over
    ``utterances_per_speaker`` utterances (``utt_id``); ``speaker_names`` (in group order,
    e.g. :func:`result_speakers`) default to ``g<i>_s<j>`` counted within each group.

    Returns
    -------
    X : float32 array (N, dim); y : phone labels (N,); meta : DataFrame with ``speaker``,
    ``utt_id``, ``group:<attribute>`` and ``phone``.
    """
    rng = np.random.default_rng(random_state)
    spg = ([speakers_per_group] * n_groups if np.isscalar(speakers_per_group)
           else list(speakers_per_group))
    structured = accent is not None or channel is not None
    if structured and dim < n_phones:
        raise ValueError(f"accent/channel need dim >= n_phones ({dim} < {n_phones})")
    groups = [f"g{i}" for i in range(n_groups)]
    cent = rng.normal(0, phone_spread / np.sqrt(dim), size=(n_phones, dim))
    if structured:
        cent = np.eye(n_phones, dim) * phone_spread / np.sqrt(2)
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    Xs, ys, ms = [], [], []
    i = 0
    for gi, g in enumerate(groups):
        off = np.zeros((n_phones, dim))
        if structured:
            toward = cent[(np.arange(n_phones) + gi + 1) % n_phones] - cent
            off = _per_group(accent, g) * toward / np.linalg.norm(toward, axis=1, keepdims=True)
            if _per_group(channel, g):
                to_g = cent[gi % n_phones] - cent.mean(0)
                off = off + _per_group(channel, g) * to_g / np.linalg.norm(to_g)
        for si in range(spg[gi]):
            spk = f"{g}_s{si}" if speaker_names is None else str(speaker_names[i])
            if scales is not None:
                sig_s = noise * float(scales[i])
            else:
                sig_s = noise * (dispersion_inflation or {}).get(g, 1.0) * np.exp(rng.normal(0, speaker_noise_sd))
            i += 1
            b = rng.normal(0, 0.2 / np.sqrt(dim), size=dim) + (group_shift or {}).get(g, 0.0) * direction
            ph = np.repeat(np.arange(n_phones), tokens_per_phone)
            X = cent[ph] + off[ph] + b + sig_s / np.sqrt(dim) * rng.normal(size=(ph.size, dim))
            utt = np.tile(np.arange(tokens_per_phone), n_phones) % max(utterances_per_speaker, 1)
            Xs.append(X)
            ys.append(np.array([f"p{j}" for j in ph]))
            ms.append(pd.DataFrame({"speaker": spk, "utt_id": [f"{spk}_u{u}" for u in utt],
                                    f"group:{group_attribute}": g, "phone": ys[-1]}))
    meta = pd.concat(ms, ignore_index=True)
    return np.vstack(Xs).astype(np.float32), np.concatenate(ys), meta


class SimulatedStore:
    """An in-memory stand-in for :class:`~probekit.store.EmbeddingStore` (phone task only)
    holding one :func:`simulate_embeddings` draw per layer (same tokens, ``layer<i>``)."""

    def __init__(self, layers: Sequence[np.ndarray], y: np.ndarray, meta: pd.DataFrame,
                 group_attribute: str = "accent"):
        self.layers = [f"layer{i}" for i in range(len(layers))]
        self._X = dict(zip(self.layers, layers))
        self._y, self._meta = y, meta
        self.index = {"attributes": [group_attribute]}
        self.fingerprint = {"encoder": "sim"}
        self.key = "sim"
        self.poolings = ["mean"]

    def layer_name(self, layer):
        return self.layers[layer] if isinstance(layer, (int, np.integer)) else layer

    def load_task(self, layer, task, lazy=False):
        if not isinstance(get_task(task), PhoneTask):  # the one task this double simulates
            raise ValueError(f"the simulated store holds the phone task only, not {task!r}")
        X = self._X[self.layer_name(layer)]
        if lazy:  # EmbeddingStore.load_task(lazy=True)'s interface: rows read in pieces
            from probekit.store.rows import ArrayRows
            X = ArrayRows(X)
        return X, self._y, self._meta


def simulate_probe_study(*, n_groups: int = 4, speakers_per_group: int | Sequence[int] = 8,
                         n_layers: int = 2, seeds: Sequence[int] = range(5),
                         train_sets: Sequence[str] = ("single", "all", "all-matched"),
                         probe: str = "lda", test_speakers: float = 0.5,
                         random_state: int = 0, **embedding_kw):
    """A results table from *real* probes on simulated embeddings, through the library's own
    split, training-set and scoring code (:func:`probekit.probes.grid.run_grid` on a
    :class:`SimulatedStore`), and the dispersion frame of the same embeddings.

    ``speakers_per_group`` may differ by group (unbalanced designs); ``embedding_kw`` go to
    :func:`simulate_embeddings` (``accent_sd``, ``channel_shift``, ``scales``, ...), one draw per
    layer. Returns ``(results, dispersion)``.
    """
    import tempfile

    from probekit.bias.analysis import dispersion_table
    from probekit.probes.grid import run_grid

    spg = ([speakers_per_group] * n_groups if np.isscalar(speakers_per_group)
           else list(speakers_per_group))
    kw = {"n_phones": 7, "tokens_per_phone": 12, "dim": 12, "phone_spread": 1.5, "noise": 1.2,
          "utterances_per_speaker": 4, **embedding_kw}
    names = result_speakers(n_groups, spg)
    Xs, y, meta = [], None, None
    for li in range(n_layers):
        X, y, meta = simulate_embeddings(n_groups=n_groups, speakers_per_group=spg,
                                         speaker_names=names, **kw,
                                         random_state=10_000 * random_state + li)
        Xs.append(X)
    store = SimulatedStore(Xs, y, meta)
    with tempfile.TemporaryDirectory() as tmp:
        res = run_grid(store, "phone", tmp, seeds=list(seeds), train_sets=tuple(train_sets),
                       probes=(probe,), test_speakers=test_speakers, progress=False)
    return res, dispersion_table(store, ["accent"])
