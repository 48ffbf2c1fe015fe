"""The one group-statistics core, the one spelling of statistic names, and :class:`GroupMetrics`.

* :func:`group_statistics`: per-speaker errors (and item counts) -> group errors, summaries
  and gaps, with the weighting named (``items``: pooled counts, the micro average;
  ``speakers``: each speaker's rate counts once). Any leading axes, so the observed values,
  bootstrap and permutation replicates and paired swaps all go through it:
  :func:`~probekit.bias.layerwise.layerwise_bias`, :func:`~probekit.bias.change.split_change`,
  :func:`~probekit.bias.paired.paired_change`, :class:`GroupMetrics` and the WER table
  (:mod:`probekit.bias.wer`) are its uses.
* :func:`statistics_of`: the one list of statistic kinds; :func:`statistic_name` /
  :func:`parse_statistic`: the one builder / parser of row names (item-pooled rows are
  ``pooled_...``, so one name never means two estimators).
* :class:`GroupMetrics`: one slice, fairlearn-style (the group error is the micro average
  ``e_g = sum_{s in g} k_s / sum_{s in g} n_s``, exactly what fairlearn's MetricFrame gives
  on the items), with cluster-bootstrap intervals (speakers, stratified by group) and
  permutation p-values (group labels shuffled across speakers), computed once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from probekit.bias.design import group_moments
from probekit.bias.errors import BiasInputError
from probekit.bias.inference import between_group_variance, welch_vs_rest
from probekit.bias.permutation import group_vs_rest, permutation_pvalue
from probekit.bias.resample import (clusters_behind, percentile_ci,
                                    speaker_bootstrap_indices, speaker_permutation_indices)
from probekit.bias.speakers import SpeakerMatrix, speaker_matrix

__all__ = ["GroupMetrics", "group_statistics", "statistics_of", "GAP_STATISTICS",
           "SUMMARY_STATISTICS", "SPEAKER_ONLY_STATISTICS", "WEIGHTINGS", "statistic_name",
           "parse_statistic", "group_of"]

#: How a group statistic weighs its data: ``speakers`` (each speaker's rate counts once) or
#: ``items`` (error counts pooled over items). Each statistic name belongs to one weighting.
WEIGHTINGS = ("speakers", "items")
_GROUP = "group:"
_ITEMS = "pooled_"


def statistic_name(kind: str, group: str | None = None, *, weighting: str = "speakers") -> str:
    """The one spelling of a statistic row: ``statistic_name("group", "es")`` -> ``"group:es"``;
    ``statistic_name("overall", weighting="items")`` -> ``"pooled_overall"``. The only builder
    of these names (:func:`parse_statistic` is the only parser)."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if (kind == "group") != (group is not None):
        raise ValueError("a 'group' statistic needs a group, and only it takes one")
    name = f"{_GROUP}{group}" if kind == "group" else kind
    return name if weighting == "speakers" else _ITEMS + name


def parse_statistic(name: str) -> tuple[str, str | None, str]:
    """``(kind, group or None, weighting)`` of a statistic name built by :func:`statistic_name`."""
    name = str(name)
    weighting = "items" if name.startswith(_ITEMS) else "speakers"
    core = name[len(_ITEMS):] if weighting == "items" else name
    if core.startswith(_GROUP):
        return "group", core[len(_GROUP):], weighting
    return core, None, weighting


def group_of(name: str) -> str | None:
    """The group a per-group statistic is about (``"group:es"`` -> ``"es"``), else None."""
    return parse_statistic(name)[1]

#: Statistics that measure inequality (larger = more unequal, except ``ratio``: 1 = parity).
GAP_STATISTICS = ("difference", "ratio", "relative_gap", "std")
#: The summary and gap statistics every weighting gives (besides one per group).
SUMMARY_STATISTICS = ("overall", "macro", "worst") + GAP_STATISTICS
#: Statistics only the ``speakers`` weighting gives: the debiased between-group variance
#: (:func:`~probekit.bias.inference.between_group_variance`) needs each speaker's rate.
SPEAKER_ONLY_STATISTICS = ("between_var",)


def statistics_of(weighting: str) -> tuple[str, ...]:
    """The one list of statistic kinds a weighting gives (per-group rows come on top)."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    return SUMMARY_STATISTICS + (SPEAKER_ONLY_STATISTICS if weighting == "speakers" else ())


def group_statistics(errors: np.ndarray, n: np.ndarray | None, codes: np.ndarray, n_groups: int,
                     *, weighting: str) -> dict[str, np.ndarray]:
    """The one core of every group statistic: per-speaker errors (..., S) -> each (...,).

    The leading axes are anything: observed rows, bootstrap or permutation replicates, paired
    swaps; the last axis is the speakers, ``codes`` (S,) their groups in ``0..n_groups-1``.

    ``weighting="items"``: ``errors`` and ``n`` are error and item counts; a group's error is
    its pooled rate ``sum k / sum n`` (the micro average, fairlearn's MetricFrame on the
    items), ``overall`` the same over every speaker. ``weighting="speakers"``: each speaker's
    rate ``errors / n`` (``n=None``: ``errors`` are rates already; NaN = no data) counts once;
    a group's error is the mean of its speakers' rates, ``overall`` the mean over speakers,
    and ``between_var`` is added.

    From the group errors (groups with data only): ``macro`` (unweighted mean), ``worst``
    (max), ``difference`` (max - min), ``ratio`` (min / max, 1 = parity), ``relative_gap``
    ((max - min) / macro), ``std`` (population std); the gaps need two groups with data
    (NaN otherwise). ``by_group`` (..., G) holds the group errors.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    K = np.asarray(errors, float)
    G = int(n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        if weighting == "items":
            if n is None:
                raise ValueError("weighting='items' needs the item counts n")
            N = np.asarray(n, float)
            onehot = np.eye(G)[codes]
            Ng = N @ onehot
            m, has = (K @ onehot) / Ng, Ng > 0
            out = {"overall": K.sum(-1) / N.sum(-1)}
        else:
            r = K if n is None else np.where(np.asarray(n) > 0, K / np.asarray(n, float), np.nan)
            m, _, cnt = group_moments(r, codes, G)
            has = cnt > 0
            out = {"overall": np.nanmean(r, -1) if r.shape[-1] else np.nan}
        k = has.sum(-1)
        mx = np.where(k > 0, np.nanmax(np.where(has, m, -np.inf), -1), np.nan)
        mn = np.where(k > 0, np.nanmin(np.where(has, m, np.inf), -1), np.nan)
        macro = np.nansum(np.where(has, m, 0.0), -1) / k
        std = np.sqrt(np.nansum(np.where(has, (m - macro[..., None]) ** 2, 0.0), -1) / k)
        out.update({"macro": macro, "worst": mx, "difference": np.where(k >= 2, mx - mn, np.nan),
                    "ratio": np.where((k >= 2) & (mx > 0), mn / mx, np.nan),
                    "relative_gap": np.where((k >= 2) & (macro > 0), (mx - mn) / macro, np.nan),
                    "std": np.where(k >= 2, std, np.nan)})
    if weighting == "speakers":
        out["between_var"] = between_group_variance(r, codes, G)
    out["by_group"] = m
    return out


class GroupMetrics:
    """Per-group error of one results slice with cluster-bootstrap CIs and permutation p-values.

    Parameters
    ----------
    errors, n : array-like, shape (S,)
        Error count and number of items of each speaker (pooled over seeds).
    groups : array-like of str, shape (S,)
        Group of each speaker.
    speakers : array-like of str, optional
        Speaker ids (default ``"s0"``, ``"s1"``, ...).
    n_boot, n_perm : int
        Bootstrap replicates and permutations.
    alpha : float
        CIs have level ``1 - alpha``.
    seed : int
        Everything is deterministic given the seed.
    ci_method : {"expanded", "percentile"}
        ``"expanded"`` (default) widens the percentile interval for few speakers
        (Hesterberg 2015; see :func:`probekit.bias.resample.expanded_level`); ``"percentile"``
        is the plain percentile interval.

    Attributes
    ----------
    overall : float
    by_group : pandas.Series (float, index ``group``)
    n_speakers : pandas.Series (int, index ``group``)

    Its group errors pool the items (``weighting="items"``: a speaker counts by its items),
    as fairlearn's MetricFrame does; the analysis tables weigh speakers equally instead
    (docs/concepts.md, "Weightings").
    """

    #: Group errors pool the items (the micro average).
    WEIGHTING = "items"

    def __init__(self, errors, n, groups, speakers=None, *, n_boot: int = 1000,
                 n_perm: int = 1000, alpha: float = 0.05, seed: int = 0, min_speakers: int = 2,
                 ci_method: str = "expanded"):
        errors, n = np.asarray(errors, float), np.asarray(n, float)
        groups = np.asarray(groups).astype(str)
        if not (errors.shape == n.shape == groups.shape) or errors.ndim != 1:
            raise BiasInputError(f"errors, n and groups must be 1-d of one length, got shapes "
                                 f"{errors.shape}, {n.shape}, {groups.shape}")
        speakers = (np.array([f"s{i}" for i in range(errors.size)]) if speakers is None
                    else np.asarray(speakers).astype(str))
        dup = pd.Index(speakers).duplicated()
        if dup.any():
            raise BiasInputError(f"speaker {speakers[dup][0]!r} is given twice; pool its counts")
        bad = (n <= 0) | (errors < 0) | ~np.isfinite(errors)
        if bad.any():
            i = int(np.argmax(bad))
            raise BiasInputError(f"speaker {speakers[i]!r}: need errors >= 0 and n > 0, got "
                                 f"errors={errors[i]}, n={n[i]}")
        df = pd.DataFrame({"unit": speakers, "test_group": groups, "value": errors / n, "n": n})
        self._m = speaker_matrix(df, min_speakers=min_speakers)
        # speaker_matrix reorders speakers by group; keep the exact counts in that order
        pos = pd.Series(np.arange(speakers.size), index=speakers).reindex(self._m.speakers).to_numpy()
        self._K, self._N = errors[pos], n[pos]
        if ci_method not in ("expanded", "percentile"):
            raise BiasInputError(f"ci_method {ci_method!r}: use 'expanded' or 'percentile'")
        self.alpha, self.seed, self.ci_method = alpha, seed, ci_method
        self._compute(n_boot, n_perm)

    @classmethod
    def from_results(cls, df: pd.DataFrame, *, group_col: str = "test_group", **kw) -> "GroupMetrics":
        """Group metrics of one slice of a results table (one encoder/layer/task/probe/
        train_set/metric; seeds are pooled per speaker).

        Raises
        ------
        BiasInputError
            When the slice mixes several values of a column that must be fixed (named).
        """
        for col in ("encoder", "layer", "task", "probe", "train_set", "metric", "group_attribute"):
            if col in df.columns and df[col].nunique() > 1:
                raise BiasInputError(f"results slice mixes {df[col].nunique()} values of {col!r} "
                                     f"({sorted(map(str, df[col].unique()))[:4]}...); select one")
        m = speaker_matrix(df, group_col=group_col, min_speakers=kw.pop("min_speakers", 2))
        return cls.from_matrix(m, **kw)

    @classmethod
    def from_matrix(cls, m: SpeakerMatrix, row: int = 0, **kw) -> "GroupMetrics":
        """Group metrics of row ``row`` of a :class:`SpeakerMatrix`."""
        return cls(m.errors[row], m.n[row], m.groups, m.speakers, **kw)

    # -- computation (once) ------------------------------------------------------------------
    def _compute(self, n_boot: int, n_perm: int) -> None:
        m, K, N = self._m, self._K, self._N
        G = len(m.group_names)
        rng = np.random.default_rng(self.seed)
        stats = lambda k, n: group_statistics(k, n, m.codes, G, weighting=self.WEIGHTING)  # noqa: E731
        self._obs = stats(K, N)
        bidx = speaker_bootstrap_indices(m.codes, n_boot, rng)
        self._boot = stats(K[bidx], N[bidx])
        pidx = speaker_permutation_indices(K.size, n_perm, rng)
        null = stats(K[pidx], N[pidx])
        self._p = {s: float(permutation_pvalue(self._obs[s], null[s])) for s in
                   ("difference", "relative_gap", "std", "worst")}
        self._p["ratio"] = float(permutation_pvalue(-self._obs["ratio"], -null["ratio"]))
        rates = K / N
        _, pg = group_vs_rest(rates, m.codes, n_perm=n_perm, rng=rng, alternative="two-sided")
        # equal *means* (studentized, valid under unequal speaker variance), unlike the gap
        # statistics' permutation p-values, which test equal distributions
        f_obs = np.nanmax(np.abs(welch_vs_rest(rates, m.codes, G)))
        f_null = np.nanmax(np.abs(welch_vs_rest(rates[pidx], m.codes, G)), -1)
        self._p["max_abs_t"] = float(permutation_pvalue(f_obs, f_null))
        self._p_group = pg

    # -- reading ------------------------------------------------------------------------------
    @property
    def groups(self) -> pd.Index:
        return pd.Index(self._m.group_names, name="group")

    @property
    def overall(self) -> float:
        """Micro-averaged error over every item."""
        return float(self._obs["overall"])

    @property
    def macro(self) -> float:
        """Unweighted mean of the group errors."""
        return float(self._obs["macro"])

    @property
    def by_group(self) -> pd.Series:
        """Micro error of each group."""
        return pd.Series(self._obs["by_group"], index=self.groups, name="error", dtype=float)

    @property
    def n_speakers(self) -> pd.Series:
        return self._m.n_speakers

    @property
    def worst_group(self) -> str:
        return str(self.by_group.idxmax())

    def difference(self) -> float:
        """Max minus min group error (fairlearn's ``between_groups`` difference)."""
        return float(self._obs["difference"])

    def ratio(self) -> float:
        """Min over max group error (fairlearn's convention: 1 is parity)."""
        return float(self._obs["ratio"])

    def relative_gap(self) -> float:
        return float(self._obs["relative_gap"])

    def std(self) -> float:
        return float(self._obs["std"])

    def p_values(self) -> pd.Series:
        """Permutation p-value of each gap statistic (labels shuffled across speakers; index:
        their item-pooled names, ``pooled_difference``, ...) and of the largest studentized
        group-vs-rest difference of the speakers' rates (``max_abs_t``). Only ``max_abs_t``
        tests equal group *means*; the gap statistics' p-values test equal distributions (a
        group that is only more variable can make them small)."""
        p = {statistic_name(s, weighting=self.WEIGHTING): self._p[s]
             for s in ("worst",) + GAP_STATISTICS}
        p["max_abs_t"] = self._p["max_abs_t"]
        return pd.Series(p, name="p_value", dtype=float)

    def ci(self) -> pd.DataFrame:
        """Cluster-bootstrap (expanded) percentile CIs: index ``statistic`` (the item-pooled
        summaries ``pooled_overall``, ..., then ``pooled_group:<g>``), columns ``estimate,
        ci_low, ci_high``."""
        kinds = [(s, None) for s in SUMMARY_STATISTICS] + [("group", g) for g in self.groups]
        est = [self._obs[s] for s in SUMMARY_STATISTICS] + list(self._obs["by_group"])
        reps = np.column_stack([self._boot[s] for s in SUMMARY_STATISTICS] + [self._boot["by_group"]])
        ns = self.n_speakers
        lo, hi = np.empty(len(kinds)), np.empty(len(kinds))
        for j, (kind, g) in enumerate(kinds):
            n = clusters_behind(statistic_name(kind, g), ns) if self.ci_method == "expanded" else None
            lo[j], hi[j] = percentile_ci(reps[:, j], self.alpha, n_clusters=n)
        names = [statistic_name(kind, g, weighting=self.WEIGHTING) for kind, g in kinds]
        return pd.DataFrame({"estimate": np.asarray(est, float), "ci_low": lo, "ci_high": hi},
                            index=pd.Index(names, name="statistic"))

    def summary(self) -> pd.DataFrame:
        """One tidy frame: every statistic with its ``weighting`` (``items``), estimate, CI,
        p-value and speaker count.

        Per-group rows carry the two-sided studentized permutation p-value of that group
        against all other speakers (a test of the speakers' rates).
        """
        out = self.ci().reset_index()
        out.insert(1, "weighting", self.WEIGHTING)
        p = self.p_values().to_dict()
        p.update({statistic_name("group", g, weighting=self.WEIGHTING): float(v)
                  for g, v in zip(self.groups, self._p_group)})
        out["p_value"] = out["statistic"].map(p).astype(float)
        ns = self.n_speakers
        out["n_speakers"] = [int(ns[g]) if g is not None else int(ns.sum())
                             for g in map(group_of, out["statistic"])]
        return out

    def __repr__(self) -> str:
        return (f"GroupMetrics(overall={self.overall:.4f}, difference={self.difference():.4f}, "
                f"worst={self.worst_group!r}, groups={len(self.groups)}, "
                f"speakers={int(self.n_speakers.sum())})")
