"""Random variance vs systematic bias, as seed 001 defines them, and the typing rule.

Seed 001 types unfairness *against* a group: a group that is served worse. For every slice of
a task whose groups have their own probes (phone; CTC/ASR when the grid trained single-group
ASR probes), layer and group, four families of tests:

* **worse**: the group's speakers have a higher mean error than the other speakers under the
  probe trained on every group (one-sided Welch t, the larger p of a label permutation and a
  centred speaker bootstrap: :func:`probekit.bias.resample.null_replicates`, Westfall-Young
  max-T over layers x groups: the layer curves' ``group:<g>`` test);
* **group-specific structure** (descriptive of the embeddings, *never* a bias label): the
  group's *own* probe beats the broadly trained probe on the group's held-out speakers, with
  equal training data (``all-matched``: the same number of speakers and examples, when the
  grid has it; else ``all``: the same examples), tested with the training draw as a unit
  (two-way speaker x split cluster-robust t, one-sided, Holm over layers x groups). Accents,
  channels and voices give *every* group such structure, at parity as well;
* **systematic** (seed 001): the group is worse *and* its own probe closes more of its error
  than the other groups' own probes close theirs: the difference in differences
  ``did = (own - broad)_g - mean_{h != g} (own - broad)_h`` (every test speaker in every
  split, each group's speakers against their own group's probe) is below 0, tested with the
  same two-way cluster t (one-sided, Holm over layers x groups), and ``own_minus_broad < 0``;
* **random** (seed 001): the group is worse, its speakers have a larger within-phone
  embedding spread ``D_s`` (Mahalanobis, equal weight per phone, cross-fitted: see
  :func:`probekit.bias.dispersion.speaker_dispersion`) than the other speakers (one-sided
  Welch t, permutation, max-T over layers x groups) *and*, within groups, a larger spread
  goes with more errors *of the probe trained on every group* at that layer (pooled
  within-group correlation of ``D_s`` with the speaker's split-averaged probe error,
  permutation of ``D`` within groups, max-T over layers). Needs the embedding store; without
  it "random" is not assessed.

Each family is tested at ``alpha / 3`` (Bonferroni over worse, systematic and random), and
both bias types require "worse" (intersection-union tests), so the chance of any typed label
anywhere in the slice under the global null is at most ``alpha / 3``. Types:

    systematic and random -> "both";   systematic only -> "systematic";
    random only -> "random";           worse but neither -> "worse, unexplained";
    otherwise -> "neither".

Columns of the typing table (one row per slice, layer, group; the names other modules read):

* ``group_error, worse_t, worse_p, worse_p_fwer``: the "worse" test;
* ``reference``: the broad probe compared with (``all-matched`` or ``all``);
* ``own_minus_broad, structure_p, structure_p_fwer``: own-vs-broad on the group's speakers
  (group-specific structure; ``group_structure`` is its flag, outside ``type``);
* ``others_own_minus_broad, did, systematic_p, systematic_p_fwer``: the difference in
  differences behind "systematic";
* ``dispersion_t, dispersion_p_fwer, dispersion_corr, dispersion_corr_p_fwer,
  share_explained, random_source``: the random-variance evidence (``dispersion_corr`` with
  the probe's own errors);
* ``worse, systematic, random, group_structure, type, level, reason, n_speakers,
  n_per_split``.

``share_explained`` is the share of the group's probe error above the rest that its extra
dispersion accounts for: ``beta_w * (D_g - D_rest) / (e_g - e_rest)`` with the pooled within-group slope
``beta_w`` of the probe error on ``D`` (descriptive).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from probekit.bias._slices import SLICE_KEYS, iter_slices
from probekit.bias.design import group_moments, split_matrix
from probekit.bias.errors import BiasInputError
from probekit.bias.inference import (twoway_cluster_t, holm, maxt_adjust, permutation_pvalue,
                                     welch_vs_rest, within_group_permutation_indices)
from probekit.bias.resample import map_null_replicates, speaker_permutation_indices
from probekit.bias.transfer import REFERENCES, own_vs_broad_cells

__all__ = ["type_groups", "TYPES", "typing_rule", "type_at_level",
           "dispersion_tests", "did_cells", "probe_error_frame"]

#: How the table weighs its data (docs/concepts.md, "Weightings"):
#: each test speaker's split-averaged rate counts once.
WEIGHTING = "speakers"

TYPES = ("neither", "systematic", "random", "both", "worse, unexplained")
# The typing applies to content tasks only (Task.content: their groups can have their own
# probe); the dispersion test to tasks of phone segments (Task.dispersion).


def typing_rule(worse, systematic, random) -> np.ndarray:
    """Vectorised typing rule from three boolean arrays (NaN / missing = False)."""
    w, s, r = (np.asarray(x, dtype=bool) for x in (worse, systematic, random))
    out = np.where(s & r, "both", np.where(s, "systematic", np.where(r, "random", np.where(
        w, "worse, unexplained", "neither"))))
    return out.astype(object)


def type_at_level(ty: pd.DataFrame, level: float) -> pd.DataFrame:
    """The typing table's flags and types recomputed from its family-wise p-values at
    ``level`` (per family): what :func:`type_groups` does at ``alpha / 3``, and what the
    summary does at a stricter level when it controls over several tasks. Both bias types
    need "worse" at the same level; ``group_structure`` is flagged at the level too but is
    never a type."""
    def flag(col):
        return ty[col].fillna(1.0).to_numpy(float) <= level

    worse = flag("worse_p_fwer")
    sysm = worse & flag("systematic_p_fwer") & (ty["own_minus_broad"].fillna(0.0).to_numpy(float) < 0)
    rnd = (worse & flag("dispersion_p_fwer") & flag("dispersion_corr_p_fwer") &
           (ty["dispersion_t"].fillna(0.0).to_numpy(float) > 0))
    return ty.assign(worse=worse, systematic=sysm, random=rnd,
                     group_structure=flag("structure_p_fwer"),
                     type=typing_rule(worse, sysm, rnd), level=level)


def did_cells(rates: np.ndarray, own_rows, ref_row: int, codes: np.ndarray, gi: int) -> np.ndarray:
    """Cells (K, S) whose split-weighted mean (:func:`twoway_cluster_t`) is the difference in
    differences ``mean_g(own - broad) - mean_{h != g} mean_h(own - broad)`` of each split.

    ``rates`` is (R, K, S); ``own_rows[h]`` is the row of group ``h``'s own probe (``None``
    when it has none), ``ref_row`` the broad probe's. Every speaker is compared against its
    own group's probe; in split ``k`` with ``n_k`` usable cells a speaker of ``g`` carries
    ``n_k / n_gk`` times its difference and a speaker of another group ``h`` ``-n_k /
    (G'_k n_hk)`` times (``G'_k`` other groups present), so the equal-weight cell mean of the
    split is the contrast. Each weighted cell is centred at its group's mean difference and
    shifted by the contrast of those means: the mean is unchanged, and the two-way variance
    sees each cell's deviation from its own group (the influence of the cell on the
    contrast) rather than the gap between the groups. A split without speakers of ``g`` or
    of any other group is NaN.
    """
    K, S = rates.shape[1], rates.shape[2]
    G = len(own_rows)
    d = np.full((K, S), np.nan)
    for h, row in enumerate(own_rows):
        if row is None:
            continue
        pos = np.flatnonzero(codes == h)
        d[:, pos] = own_vs_broad_cells(rates, row, ref_row, pos)
    ok = ~np.isnan(d)
    onehot = np.eye(G)[codes]
    n_hk = ok.astype(float) @ onehot                                            # (K, G)
    n_k = n_hk.sum(1, keepdims=True)
    others = np.delete(n_hk > 0, gi, axis=1).sum(1, keepdims=True)              # (K, 1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # a group without its own probe
        w = np.where(codes[None, :] == gi, n_k / n_hk[:, [gi]],
                     -n_k / (others * np.take(n_hk, codes, axis=1)))
        # each group's own mean difference (equal weight per split): the cells are centred
        # at it, so the speaker-cluster variance is not inflated by the contrast itself
        split_means = (np.where(ok, d, 0.0) @ onehot) / n_hk                    # (K, G)
        mu = np.nanmean(np.where(n_hk > 0, split_means, np.nan), axis=0)        # (G,)
    usable = ok & (n_hk[:, [gi]] > 0) & (others > 0)
    if not usable.any():
        return np.full((K, S), np.nan)
    wc = np.where(usable, w * (d - mu[codes][None, :]), np.nan)
    wm = np.where(usable, w * mu[codes][None, :], np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        k_ok = usable.any(1)
        centre = np.nanmean(np.nanmean(wm[k_ok], axis=1))
    return wc + centre


def _within_corr(D: np.ndarray, E: np.ndarray, codes: np.ndarray, G: int) -> np.ndarray:
    """Pooled within-group Pearson correlation of D and E over speakers: (..., S) -> (...)."""
    ok = ~(np.isnan(D) | np.isnan(E))
    D, E = np.where(ok, D, np.nan), np.where(ok, E, np.nan)
    mD, _, _ = group_moments(D, codes, G)
    mE, _, _ = group_moments(E, codes, G)
    Dc = np.where(ok, D - np.take(mD, codes, axis=-1), 0.0)
    Ec = np.where(ok, E - np.take(mE, codes, axis=-1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (Dc * Ec).sum(-1) / np.sqrt((Dc ** 2).sum(-1) * (Ec ** 2).sum(-1))


def dispersion_tests(disp: pd.DataFrame, layers, group_names, *, n_perm: int,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random-variance evidence per (layer, group) from a dispersion frame.

    ``disp`` has ``layer, speaker, group, dispersion`` and ``error`` (or ``accuracy``):
    :func:`type_groups` puts the broad probe's own errors there.
    Returns arrays (L, G): ``t, p_fwer`` (group spread above the rest), ``share``,
    ``error_vs_rest`` (the group's mean error minus the rest's, the denominator of ``share``)
    and arrays (L,): ``corr, corr_p_fwer`` (within-group spread-error correlation).
    """
    d = disp.copy()
    if "error" not in d:
        d["error"] = 1.0 - d["accuracy"]
    d["layer"] = d["layer"].astype(str)
    names = list(group_names)
    unknown = sorted(set(d["group"].astype(str)) - set(names))
    if unknown:
        raise BiasInputError(f"dispersion has group(s) {unknown} absent from the results table")
    grp = d.groupby(d["speaker"].astype(str))["group"].first().astype(str)
    codes_of = grp.map({g: i for i, g in enumerate(names)})
    order = sorted(grp.index, key=lambda s: (codes_of[s], s))
    speakers, codes = order, codes_of.reindex(order).to_numpy(int)
    G, L = len(names), len(layers)
    piv = lambda col: (d.pivot_table(index="layer", columns="speaker", values=col, aggfunc="mean")
                       .reindex(index=[str(x) for x in layers], columns=speakers).to_numpy(float))
    D, E = piv("dispersion"), piv("error")
    t = welch_vs_rest(D, codes, G)
    pidx = speaker_permutation_indices(codes.size, n_perm, rng)
    t_null = welch_vs_rest(np.moveaxis(D[:, pidx], 1, 0), codes, G)
    c = _within_corr(D, E, codes, G)
    widx = within_group_permutation_indices(codes, n_perm, rng)
    c_null = _within_corr(np.moveaxis(D[:, widx], 1, 0), E[None], codes, G)
    mD, _, _ = group_moments(D, codes, G)
    mE, _, _ = group_moments(E, codes, G)
    Dc = D - np.take(mD, codes, axis=-1)
    Ec = E - np.take(mE, codes, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = np.nansum(Dc * Ec, -1) / np.nansum(Dc ** 2, -1)                 # (L,)
        rest = lambda M, X: (np.nansum(X, -1, keepdims=True) - M * np.bincount(codes, minlength=G)) / \
            (codes.size - np.bincount(codes, minlength=G))
        dD, dE = mD - rest(mD, D), mE - rest(mE, E)
        share = np.where(dE > 0, beta[:, None] * dD / dE, np.nan)
    return {"t": t, "p": permutation_pvalue(t, t_null), "p_fwer": maxt_adjust(t, t_null),
            "corr": c, "corr_p_fwer": maxt_adjust(c, c_null), "share": share,
            "error_vs_rest": dE}


def probe_error_frame(r: np.ndarray, layers, speakers) -> pd.DataFrame:
    """``layer, speaker, error`` from speaker rates ``r`` (L, S) of one probe (NaN rows out)."""
    L, S = r.shape
    f = pd.DataFrame({"layer": np.repeat(np.asarray([str(x) for x in layers], dtype=object), S),
                      "speaker": np.tile(np.asarray(speakers, dtype=str), L),
                      "error": r.reshape(-1)})
    return f[f["error"].notna()]


def _with_probe_error(dl: pd.DataFrame, r: np.ndarray, layers, speakers) -> pd.DataFrame:
    """The dispersion frame with ``error`` replaced by the broad probe's own split-averaged
    error of each speaker (NaN for a speaker the probe never tested)."""
    d = dl.drop(columns=[c for c in ("error", "accuracy") if c in dl]).assign(
        layer=dl["layer"].astype(str), speaker=dl["speaker"].astype(str))
    return d.merge(probe_error_frame(r, layers, speakers), on=["layer", "speaker"], how="left")


def type_groups(df: pd.DataFrame, *, dispersion: pd.DataFrame | None = None,
                alpha: float = 0.05, n_perm: int = 999, seed: int = 0) -> pd.DataFrame:
    """Type each group at each layer (see the module docstring for the rule and columns).

    Parameters
    ----------
    df : results table with ``train_set == "all"`` probes and single-group probes.
    dispersion : DataFrame, optional
        Per-speaker dispersion with ``layer, group_attribute, speaker, group, dispersion``
        (:func:`probekit.bias.dispersion.speaker_dispersion`, one frame per layer,
        concatenated); the random-variance evidence for the ``phone`` task. Its own
        ``error`` column (the embedding proxy) is not used: the correlation is with the
        errors of the probe trained on every group.

    Returns
    -------
    DataFrame, one row per (slice, layer, group), columns as in the module docstring.
    Empty when no slice has single-group probes.
    """
    from probekit.probes.tasks import get_task  # not at import: probekit.probes loads torch

    level = alpha / 3
    out = []
    for key, sub in iter_slices(df):
        if not get_task(key["task"]).content:
            continue
        groups = set(sub["test_group"].astype(str).unique())
        if not (sub["train_set"].astype(str).isin(groups).any() and (sub["train_set"] == "all").any()):
            continue
        rng = np.random.default_rng(seed)
        m = split_matrix(sub, rows=["layer_index", "layer", "train_set"])
        keys = m.keys
        G = len(m.group_names)
        layer_keys = keys[["layer_index", "layer"]].drop_duplicates().sort_values("layer_index")
        L = len(layer_keys)
        row_of = {(li, ly, ts): i for i, (li, ly, ts) in enumerate(keys.itertuples(index=False))}
        r_all = m.speaker_rates()
        rows_all = [row_of.get((li, ly, "all")) for li, ly in layer_keys.itertuples(index=False)]
        r = np.stack([r_all[i] if i is not None else np.full(m.speakers.size, np.nan) for i in rows_all])
        gerr = group_moments(r, m.codes, G)[0]
        t = welch_vs_rest(r, m.codes, G)
        rates_all = np.stack([m.rates[i] if i is not None else np.full(m.rates.shape[1:], np.nan)
                              for i in rows_all])                              # (L, K, S)
        worse_p = worse_adj = None
        nulls = map_null_replicates(rates_all, m.codes, n_perm, rng,           # (P, L, G)
                                    lambda rp: welch_vs_rest(rp, m.codes, G))
        for t_null in nulls.values():   # both nulls
            p, pa = permutation_pvalue(t, t_null), maxt_adjust(t, t_null)
            worse_p = p if worse_p is None else np.maximum(worse_p, p)
            worse_adj = pa if worse_adj is None else np.maximum(worse_adj, pa)
        tsets = set(keys["train_set"])
        ref = next((x for x in REFERENCES[:2] if x in tsets), None)
        own, p_str = np.full((L, G), np.nan), np.full((L, G), np.nan)
        others, did, p_sys = np.full((L, G), np.nan), np.full((L, G), np.nan), np.full((L, G), np.nan)
        for lj, (li, ly) in enumerate(layer_keys.itertuples(index=False)):
            b = row_of.get((li, ly, ref))
            own_rows = [row_of.get((li, ly, g)) for g in m.group_names]
            if b is None:
                continue
            for gi, a in enumerate(own_rows):
                if a is None:
                    continue
                ct = twoway_cluster_t(own_vs_broad_cells(m.rates, a, b,
                                                         np.flatnonzero(m.codes == gi)))
                own[lj, gi], p_str[lj, gi] = ct["mean"], ct["p_less"]
                dd = twoway_cluster_t(did_cells(m.rates, own_rows, b, m.codes, gi))
                did[lj, gi], p_sys[lj, gi] = dd["mean"], dd["p_less"]
                others[lj, gi] = own[lj, gi] - dd["mean"]
        str_adj, sys_adj = holm(p_str), holm(p_sys)
        rnd = None
        if dispersion is not None and get_task(key["task"]).dispersion:
            dl = dispersion[dispersion["group_attribute"].astype(str) == key["group_attribute"]]
            dl = dl[dl["layer"].astype(str).isin(layer_keys["layer"].astype(str))]
            if len(dl):
                rnd = dispersion_tests(_with_probe_error(dl, r, layer_keys["layer"], m.speakers),
                                       layer_keys["layer"].tolist(), m.group_names,
                                       n_perm=n_perm, rng=rng)
        n_spk = np.stack([m.n_speakers(i) if i is not None else np.zeros(G, int) for i in rows_all])
        n_split = np.stack([m.per_split_n(i) if i is not None else np.zeros(G) for i in rows_all])
        nanLG = np.full((L, G), np.nan)
        for lj, (li, ly) in enumerate(layer_keys.itertuples(index=False)):
            reason = np.full(G, "", dtype=object)
            if ref is None or np.isnan(p_str[lj]).all():
                reason[:] = ("no own-group and broad probes to compare" if ref is None else
                             "one split only: own-vs-broad needs >= 2 probe seeds")
            if np.nan_to_num(gerr[lj]).max() == 0:
                reason[:] = "no errors at this layer"
            out.append(pd.DataFrame({
                **key, "train_set": "all", "layer_index": li, "layer": ly, "group": m.group_names,
                "group_error": gerr[lj], "worse_t": t[lj], "worse_p": worse_p[lj],
                "worse_p_fwer": worse_adj[lj], "reference": ref or "",
                "own_minus_broad": own[lj], "structure_p": p_str[lj],
                "structure_p_fwer": str_adj[lj], "others_own_minus_broad": others[lj],
                "did": did[lj], "systematic_p": p_sys[lj], "systematic_p_fwer": sys_adj[lj],
                "dispersion_t": (rnd["t"] if rnd else nanLG)[lj],
                "dispersion_p_fwer": (rnd["p_fwer"] if rnd else nanLG)[lj],
                "dispersion_corr": (rnd["corr"][lj] if rnd else np.nan),
                "dispersion_corr_p_fwer": (rnd["corr_p_fwer"][lj] if rnd else np.nan),
                "share_explained": (rnd["share"] if rnd else nanLG)[lj],
                "random_source": "embedding" if rnd else "not assessed",
                "reason": reason, "n_speakers": n_spk[lj], "n_per_split": n_split[lj]}))
    if not out:
        return pd.DataFrame(columns=SLICE_KEYS + ["layer", "group", "type"])
    return type_at_level(pd.concat(out, ignore_index=True).assign(weighting=WEIGHTING), level)
