"""Paired before/after comparison of encoders probed on the *same* test speakers.

"Did fine-tuning remove the gap?" is a paired question: the base and the adapted encoder are
probed on the same held-out speakers, so each speaker is its own control. For every task,
probe, layer and statistic (group error, overall, macro, worst, and every gap statistic) this
module reports the change *after minus before* with

* a **paired speaker bootstrap**: speakers are resampled within their group, with the *same*
  indices for both encoders and for every layer, so the interval keeps the pairing and the
  dependence between layers (percentile interval, expanded as in
  :func:`probekit.bias.resample.expanded_level` for the speakers behind the statistic: the
  group's for a group error, every speaker for summaries and gaps);
* a **paired permutation test**: under "no change" each speaker's before and after results
  are exchangeable, so each draw swaps the two encoders' error counts for a random subset of
  speakers and recomputes both statistics (for a mean error this is the sign flip of the
  per-speaker difference). The same swap draws serve every layer, so the Westfall-Young
  step-down max-T over layers gives family-wise control (``p_fwer``) beside the raw ``p``;
* a **leakage guard**: an adapted encoder carries the ids of the speakers and sentences it was
  trained and validated on (:class:`SeenIds`, saved with its adapters and merged model); a
  comparison refuses test speakers the adapted encoder saw, naming them, unless
  ``allow_seen=True``.

Formulas and which choices are ours: docs/concepts.md, "Before/after comparisons".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from probekit.bias.errors import BiasInputError
from probekit.bias.permutation import permutation_pvalue
from probekit.bias.resample import percentile_ci, speaker_bootstrap_indices
from probekit.bias.speakers import require_columns, speaker_matrix

__all__ = ["PairedChange", "paired_change", "Comparison", "compare_encoders", "SeenIds",
           "LeakageError", "check_unseen", "COMPARE_STATISTICS", "SEEN_FILE",
           "change_figure"]

#: Statistics compared (besides ``group:<g>``): summaries, then gaps (larger = more unequal,
#: except ``ratio``, min / max, where 1 is parity).
COMPARE_STATISTICS = ("overall", "macro", "worst", "difference", "ratio", "relative_gap", "std")
#: File written beside adapters / a merged model with the ids it saw.
SEEN_FILE = "seen_ids.json"


class LeakageError(BiasInputError):
    """A comparison would test an adapted encoder on speakers it was trained or validated on."""


# -- the leakage guard ----------------------------------------------------------------------
@dataclass(frozen=True)
class SeenIds:
    """Speakers and sentences an adapted model saw in training or validation.

    ``sentences`` is empty when the corpus has no ``sentence_id``.
    """

    speakers: frozenset = frozenset()
    sentences: frozenset = frozenset()
    note: str = ""

    @classmethod
    def from_corpora(cls, *corpora, note: str = "") -> "SeenIds":
        spk, sent = set(), set()
        for c in corpora:
            if c is None:
                continue
            for u in c:
                spk.add(str(u.speaker))
                if getattr(u, "sentence_id", None) not in (None, ""):
                    sent.add(str(u.sentence_id))
        return cls(frozenset(spk), frozenset(sent), note)

    def to_dict(self) -> dict:
        return {"speakers": sorted(self.speakers), "sentences": sorted(self.sentences),
                "note": self.note}

    def save(self, folder) -> Path:
        path = Path(folder) / SEEN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, folder) -> "SeenIds | None":
        """The ids saved in ``folder`` (a merged model or adapter folder); None if absent."""
        path = Path(folder) / SEEN_FILE
        if not path.is_file():
            return None
        d = json.loads(path.read_text())
        return cls(frozenset(map(str, d.get("speakers", ()))),
                   frozenset(map(str, d.get("sentences", ()))), str(d.get("note", "")))


def check_unseen(encoder: str, test_speakers: Sequence[str], seen: SeenIds | None, *,
                 test_sentences: Sequence[str] | None = None, allow_seen: bool = False) -> str:
    """Refuse test speakers (and sentences, when given) that ``encoder`` saw in training.

    Returns a sentence for the report stating what was checked. Raises
    :class:`LeakageError` naming the seen speakers unless ``allow_seen``.
    """
    if seen is None:
        return f"{encoder}: no record of training speakers (not an adapted encoder)"
    spk = sorted(set(map(str, test_speakers)) & seen.speakers)
    sent = sorted(set(map(str, test_sentences or ())) & seen.sentences)
    n = len(set(map(str, test_speakers)))
    if (spk or sent) and not allow_seen:
        what = []
        if spk:
            what.append(f"{len(spk)} of {n} test speakers ({', '.join(spk[:8])}"
                        f"{', ...' if len(spk) > 8 else ''})")
        if sent:
            what.append(f"{len(sent)} test sentences ({', '.join(sent[:5])}"
                        f"{', ...' if len(sent) > 5 else ''})")
        raise LeakageError(f"{encoder} was trained or validated on {' and '.join(what)}; its "
                           "'after' errors would be measured on its own training data. Probe "
                           "held-out speakers, or pass allow_seen=True (--allow-seen) to "
                           "compare anyway")
    if spk or sent:
        return (f"{encoder}: GUARD OVERRIDDEN - {len(spk)} of {n} test speakers"
                f"{f' and {len(sent)} sentences' if sent else ''} were seen in training")
    extra = " and sentences" if test_sentences is not None and seen.sentences else ""
    return (f"{encoder}: none of the {n} test speakers{extra} was among the "
            f"{len(seen.speakers)} training/validation speakers")


# -- array core -----------------------------------------------------------------------------
def _stats(K: np.ndarray, N: np.ndarray, onehot: np.ndarray, names: Sequence[str]) -> dict:
    """Summary and gap statistics from per-speaker counts (..., S) -> each (...,)."""
    Kg, Ng = K @ onehot, N @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        e = Kg / Ng
        mx, mn, macro = e.max(-1), e.min(-1), e.mean(-1)
        out = {"overall": K.sum(-1) / N.sum(-1), "macro": macro, "worst": mx,
               "difference": mx - mn, "ratio": np.where(mx > 0, mn / mx, np.nan),
               "relative_gap": np.where(macro > 0, (mx - mn) / macro, np.nan),
               "std": e.std(-1)}
    for j, g in enumerate(names):
        out[f"group:{g}"] = e[..., j]
    return out


def _swap_signs(S: int, n_perm: int, rng) -> tuple[np.ndarray, bool]:
    """Swap patterns (P, S) of bool; every pattern when ``2**S <= n_perm`` (exact test)."""
    if S <= 20 and 2 ** S <= n_perm:
        return ((np.arange(2 ** S)[:, None] >> np.arange(S)) & 1).astype(bool), True
    return rng.random((n_perm, S)) < 0.5, False


def _maxt_stepdown(T: np.ndarray, null: np.ndarray, exact: bool) -> np.ndarray:
    """Westfall-Young step-down max-T adjusted p-values over the last axis.

    ``T`` (L,) observed standardized statistics, ``null`` (P, L) the same under the shared
    permutations; NaN entries take no part.
    """
    out = np.full(T.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(T))
    if not ok.size:
        return out
    order = ok[np.argsort(-T[ok])]
    nul = np.where(np.isfinite(null[:, order]), null[:, order], -np.inf)
    # successive maxima over the hypotheses still in the family (reverse cumulative max)
    q = np.maximum.accumulate(nul[:, ::-1], axis=1)[:, ::-1]
    tol = 1e-12 * np.maximum(1.0, np.abs(T[order]))
    ge = (q >= T[order] - tol).sum(0)
    p = ge / null.shape[0] if exact else (1.0 + ge) / (1.0 + null.shape[0])
    out[order] = np.minimum(np.maximum.accumulate(p), 1.0)
    return out


@dataclass(frozen=True)
class PairedChange:
    """Result of :func:`paired_change` for R rows (e.g. layers) of one slice.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (row, statistic): ``before, after, change`` (after - before),
        ``ci_low, ci_high`` (paired speaker bootstrap), ``p_value`` (two-sided paired
        permutation), ``p_fwer`` (Westfall-Young step-down max-T over the rows, per
        statistic), ``n_speakers`` (speakers behind the statistic), ``n_items``.
    speaker_differences : numpy.ndarray (R, S)
        Per-speaker error rate after minus before.
    exact : bool
        True when every swap pattern was enumerated.
    """

    table: pd.DataFrame
    speaker_differences: np.ndarray
    exact: bool


def paired_change(errors_before, n_before, errors_after, n_after, groups, *,
                  rows: Sequence | None = None, statistics: Sequence[str] | None = None,
                  n_boot: int = 1000, n_perm: int = 1000, alpha: float = 0.05,
                  seed: int = 0) -> PairedChange:
    """Paired change (after - before) of every statistic, per row, for one set of speakers.

    Parameters
    ----------
    errors_before, n_before, errors_after, n_after : array-like (R, S) or (S,)
        Per-speaker error counts and item counts of the two encoders on the same S speakers
        (same column order), R rows (layers) sharing them.
    groups : array-like of str (S,)
        Group of each speaker.
    rows : sequence, optional
        Labels of the R rows (default ``0..R-1``).
    statistics : sequence of str, optional
        Subset of :data:`COMPARE_STATISTICS` and ``"group"`` (all ``group:<g>``); default all.
    n_boot, n_perm, alpha, seed
        Bootstrap replicates, swap draws (all ``2**S`` patterns when that is fewer), interval
        level ``1 - alpha``, and the seed of both.
    """
    Ka, Na, Kb, Nb = (np.atleast_2d(np.asarray(x, float))
                      for x in (errors_before, n_before, errors_after, n_after))
    if not (Ka.shape == Na.shape == Kb.shape == Nb.shape):
        raise BiasInputError(f"before/after arrays differ in shape: {Ka.shape}, {Na.shape}, "
                             f"{Kb.shape}, {Nb.shape}")
    groups = np.asarray(groups).astype(str)
    R, S = Ka.shape
    if groups.shape != (S,):
        raise BiasInputError(f"groups has shape {groups.shape}, expected ({S},)")
    if (Na <= 0).any() or (Nb <= 0).any():
        raise BiasInputError("every speaker needs n > 0 items before and after")
    names, codes = np.unique(groups, return_inverse=True)
    counts = np.bincount(codes, minlength=len(names))
    if counts.min() < 2:
        raise BiasInputError(f"group {names[counts.argmin()]!r} has {counts.min()} speaker; a "
                             "paired speaker bootstrap needs at least 2 per group")
    onehot = np.eye(len(names))[codes]
    rows = list(range(R)) if rows is None else list(rows)
    rng = np.random.default_rng(seed)
    before, after = _stats(Ka, Na, onehot, names), _stats(Kb, Nb, onehot, names)
    keys = [k for k in before if statistics is None or k in statistics
            or (k.startswith("group:") and "group" in statistics)]
    # paired permutation: swap the two encoders' counts for a random subset of speakers
    W, exact = _swap_signs(S, n_perm, rng)
    Wl = W[:, None, :]
    sKa, sNa = np.where(Wl, Kb, Ka), np.where(Wl, Nb, Na)
    sKb, sNb = np.where(Wl, Ka, Kb), np.where(Wl, Na, Nb)
    null_a, null_b = _stats(sKa, sNa, onehot, names), _stats(sKb, sNb, onehot, names)
    # paired bootstrap: the same speaker indices for both encoders and every row
    idx = speaker_bootstrap_indices(codes, n_boot, rng)
    boot_a = _stats(Ka[:, idx].transpose(1, 0, 2), Na[:, idx].transpose(1, 0, 2), onehot, names)
    boot_b = _stats(Kb[:, idx].transpose(1, 0, 2), Nb[:, idx].transpose(1, 0, 2), onehot, names)
    group_counts = dict(zip(names, counts))
    out = []
    for k in keys:
        obs = after[k] - before[k]                           # (R,)
        null = null_b[k] - null_a[k]                         # (P, R), symmetric about 0
        with np.errstate(invalid="ignore"):
            if exact:
                tol = 1e-12 * np.maximum(1.0, np.abs(obs))
                p = (np.abs(null) >= np.abs(obs) - tol).mean(0)
                p = np.where(np.isnan(obs), np.nan, p)
            else:
                p = permutation_pvalue(np.abs(obs), np.abs(null))
            sd = np.sqrt(np.nanmean(null ** 2, axis=0))      # null is centred at 0
            T = np.where(sd > 0, np.abs(obs) / sd, np.where(np.abs(obs) > 0, np.inf, 0.0))
            Tn = np.abs(null) / np.where(sd > 0, sd, np.inf)
        p_fwer = _maxt_stepdown(T, Tn, exact)
        reps = boot_b[k] - boot_a[k]                         # (B, R)
        # a paired change is resampled over every speaker: expand for the speakers behind it
        # (the group's for a group error, all for the summaries and gaps; the smallest group's
        # count, the convention for unpaired gaps, over-covered: 99.3 % at 95 %)
        lo, hi = percentile_ci(reps, alpha, n_clusters=int(group_counts[k[6:]]) if
                               k.startswith("group:") else int(S))
        g = k[6:] if k.startswith("group:") else None
        n_spk = int(group_counts[g]) if g else int(S)
        n_items = (Na[:, codes == list(names).index(g)].sum(1) if g else Na.sum(1))
        for r in range(R):
            out.append({"row": rows[r], "statistic": k, "before": before[k][r],
                        "after": after[k][r], "change": obs[r], "ci_low": lo[r],
                        "ci_high": hi[r], "p_value": p[r], "p_fwer": p_fwer[r],
                        "n_speakers": n_spk, "n_items": int(n_items[r])})
    with np.errstate(invalid="ignore", divide="ignore"):
        diffs = Kb / Nb - Ka / Na
    return PairedChange(pd.DataFrame(out), diffs, exact)


# -- results tables ------------------------------------------------------------------------
_WHAT = {"difference": "gap (max - min group error)", "ratio": "min/max ratio",
         "relative_gap": "relative gap", "std": "spread (std of group errors)",
         "overall": "overall error", "macro": "macro error", "worst": "worst-group error"}


def _task_words(task: str, probe: str, attribute: str) -> str:
    if task.startswith("group:"):
        return f"{task[6:]}-ID probe ({probe})"
    return {"phone": f"phone-probe ({probe})", "speaker": f"speaker-ID probe ({probe})",
            "asr": f"CTC probe ({probe})"}.get(task, f"{task} probe ({probe})")


@dataclass
class Comparison:
    """Result of :func:`compare_encoders`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (before, after, task, probe, metric, group_attribute, layer, statistic):
        ``layer_index, before_value, after_value, change, ci_low, ci_high, p_value, p_fwer,
        n_speakers, n_items, n_layers``. ``p_fwer`` is adjusted over the layers of one
        (pair, task, probe, metric, statistic).
    verdicts : list of str
        One sentence per (pair, task, probe, metric) about the gap (``statistic``).
    guard : list of str
        What the leakage guard checked, per adapted encoder.
    n_table : pandas.DataFrame
        Test speakers and items per (pair, task, probe, metric, group).
    """

    table: pd.DataFrame
    verdicts: list = field(default_factory=list)
    guard: list = field(default_factory=list)
    n_table: pd.DataFrame = field(default_factory=pd.DataFrame)
    alpha: float = 0.05
    statistic: str = "difference"

    def figure(self):
        return change_figure(self.table, statistic=self.statistic)


def _verdict(sub: pd.DataFrame, statistic: str, alpha: float, who: str) -> str:
    s = sub[sub["statistic"] == statistic].sort_values("layer_index")
    if s.empty:
        return f"{who}: no {statistic} rows"
    what = _WHAT.get(statistic, statistic)
    sig = s[s["p_fwer"] <= alpha]
    L = len(s)

    def one(r):
        word = "fell" if r.change < 0 else "rose"
        if statistic == "ratio":
            word = "rose (toward parity)" if r.change > 0 else "fell (away from parity)"
        return (f"at {r.layer} {word} by {abs(r.change):.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] "
                f"(from {r.before_value:.3f} to {r.after_value:.3f}; p = {r.p_value:.3f}, "
                f"FWER-adjusted over {L} layers {r.p_fwer:.3f})")

    if len(sig):
        parts = "; ".join(one(r) for r in sig.itertuples())
        rest = (f"; at the other {L - len(sig)} layers the change is within what the "
                "speakers' variation produces" if len(sig) < L else "")
        return f"{who}: the {what} {parts}{rest}."
    big = s.iloc[int(np.nanargmax(np.abs(s["change"].to_numpy())))] if s["change"].notna().any() \
        else s.iloc[0]
    return (f"{who}: at no layer is the change of the {what} distinguishable from the "
            f"speakers' variation (largest change {big.change:+.3f} "
            f"[{big.ci_low:+.3f}, {big.ci_high:+.3f}] at {big.layer}, FWER-adjusted p = "
            f"{big.p_fwer:.3f}); this is not evidence that the gap is unchanged - the "
            "interval says how large a change the data leave possible.")


def compare_encoders(results: pd.DataFrame, before: str, after: str | Sequence[str] | None = None,
                     *, train_set: str = "all", seen: Mapping[str, SeenIds | None] | None = None,
                     allow_seen: bool = False, statistics: Sequence[str] | None = None,
                     verdict_statistic: str = "difference", n_boot: int = 1000,
                     n_perm: int = 1000, alpha: float = 0.05, seed: int = 0) -> Comparison:
    """Compare encoder ``before`` with each of ``after`` on the same test speakers.

    Parameters
    ----------
    results : DataFrame
        A probe results table (:mod:`probekit.probes.results`) holding both encoders.
    before : str
        The reference encoder (e.g. the base model).
    after : str or sequence of str, optional
        The encoders compared with it (default: every other encoder in the table).
    train_set : str
        Which probe training set (default ``"all"``: the probe trained on every group).
    seen : mapping encoder -> :class:`SeenIds`, optional
        Training/validation ids of adapted encoders: the leakage guard.
    allow_seen : bool
        Compare even when an adapted encoder saw some test speakers (the guard then says so).
    verdict_statistic : str
        The statistic the verdicts describe (default the max - min gap).

    Seeds are pooled per speaker (error and item counts summed); both encoders must have the
    same (seed, speaker) test cells, so the pairing is exact.

    Raises
    ------
    BiasInputError
        Missing encoders, or the two encoders were not tested on the same speakers (named).
    LeakageError
        An adapted encoder was trained/validated on test speakers (named), unless allow_seen.
    """
    require_columns(results, ["encoder", "layer", "layer_index", "task", "probe", "train_set",
                              "test_group", "seed", "unit", "metric", "value", "n"])
    df = results[(results["train_set"].astype(str) == train_set)
                 & (results["unit"].astype(str) != "all")]
    encs = sorted(df["encoder"].astype(str).unique())
    if before not in encs:
        raise BiasInputError(f"encoder {before!r} has no per-speaker rows with train_set "
                             f"{train_set!r}; encoders: {encs}")
    afters = [e for e in encs if e != before] if after is None else \
        ([after] if isinstance(after, str) else list(after))
    missing = [a for a in afters if a not in encs]
    if missing or not afters:
        raise BiasInputError(f"encoder(s) {missing or '(none)'} not in the table; encoders: {encs}")
    seen = dict(seen or {})
    guard = []
    for a in afters:
        units = df.loc[df["encoder"] == a, "unit"].astype(str).unique()
        guard.append(check_unseen(a, units, seen.get(a), allow_seen=allow_seen))
    slice_cols = [c for c in ("task", "probe", "metric", "group_attribute") if c in df.columns]
    tables, verdicts, ns = [], [], []
    for a in afters:
        pair = df[df["encoder"].isin([before, a])]
        for key, sl in pair.groupby(slice_cols, sort=True):
            key = dict(zip(slice_cols, key if isinstance(key, tuple) else (key,)))
            A, B = sl[sl["encoder"] == before], sl[sl["encoder"] == a]
            if A.empty or B.empty:
                continue
            cells_a = set(zip(A["seed"], A["unit"].astype(str)))
            cells_b = set(zip(B["seed"], B["unit"].astype(str)))
            if cells_a != cells_b:
                only = sorted(cells_a ^ cells_b)[:4]
                raise BiasInputError(f"{before} and {a} were not tested on the same (seed, "
                                     f"speaker) cells for {key}: e.g. {only}; a paired "
                                     "comparison needs one test split for both")
            layers = sorted(set(A["layer"]) & set(B["layer"]),
                            key=lambda x: A.loc[A["layer"] == x, "layer_index"].iloc[0])
            A, B = A[A["layer"].isin(layers)], B[B["layer"].isin(layers)]
            ma = speaker_matrix(A, rows=["layer"], min_speakers=2)
            mb = speaker_matrix(B, rows=["layer"], min_speakers=2)
            order_a = [list(ma.keys["layer"]).index(x) for x in layers]
            order_b = [list(mb.keys["layer"]).index(x) for x in layers]
            pos = pd.Series(np.arange(mb.speakers.size), index=mb.speakers)[ma.speakers].to_numpy()
            pc = paired_change(ma.errors[order_a], ma.n[order_a], mb.errors[order_b][:, pos],
                               mb.n[order_b][:, pos], ma.groups, rows=layers,
                               statistics=statistics, n_boot=n_boot, n_perm=n_perm,
                               alpha=alpha, seed=seed)
            t = pc.table.rename(columns={"row": "layer", "before": "before_value",
                                         "after": "after_value"})
            li = A.groupby("layer")["layer_index"].first()
            t.insert(1, "layer_index", t["layer"].map(li).astype(int))
            t["n_layers"] = len(layers)
            for c, v in reversed([("before", before), ("after", a), *key.items()]):
                t.insert(0, c, v)
            tables.append(t)
            who = (f"{a} vs {before}, {_task_words(key['task'], key['probe'], '')}"
                   f"{', ' + key['metric'] if key.get('metric') not in (None, 'error') else ''}")
            verdicts.append(_verdict(t, verdict_statistic, alpha, who))
            spk = pd.Series(ma.groups).value_counts().sort_index()
            for g, n in spk.items():
                ns.append({"before": before, "after": a, **key, "group": g,
                           "n_speakers": int(n),
                           "n_items": int(ma.n[order_a][0, ma.groups == g].sum()),
                           "n_seeds": int(A["seed"].nunique())})
    if not tables:
        raise BiasInputError(f"no slice holds both {before} and {afters}")
    return Comparison(pd.concat(tables, ignore_index=True), verdicts, guard, pd.DataFrame(ns),
                      alpha=alpha, statistic=verdict_statistic)


def change_figure(table: pd.DataFrame, *, statistic: str = "difference"):
    """Change of ``statistic`` per layer (after - before) with its paired-bootstrap interval:
    one panel per (task, probe, metric), one line per compared pair; filled markers where the
    FWER-adjusted p <= 0.05."""
    from matplotlib.figure import Figure  # no pyplot: a notebook's backend is left alone

    t = table[table["statistic"] == statistic]
    panels = list(t.groupby(["task", "probe", "metric"], sort=True))
    fig = Figure(figsize=(5.5 * max(len(panels), 1), 3.8), layout="constrained")
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)
    for ax, ((task, probe, metric), sub) in zip(axes[0], panels):
        for (b, a), s in sub.groupby(["before", "after"], sort=False):
            s = s.sort_values("layer_index")
            x = np.arange(len(s))
            line = ax.plot(x, s["change"], marker="o", mfc="white", label=f"{a} - {b}")[0]
            ax.fill_between(x, s["ci_low"], s["ci_high"], alpha=0.18, color=line.get_color())
            sig = (s["p_fwer"] <= 0.05).to_numpy()
            ax.plot(x[sig], s["change"].to_numpy()[sig], "o", color=line.get_color())
            ax.set_xticks(x, s["layer"], rotation=45, ha="right", fontsize=7)
        ax.axhline(0, color="k", lw=0.8)
        n = int(sub["n_speakers"].iloc[0]) if len(sub) else 0
        ax.set_title(f"{task} / {probe} ({metric}), {n} test speakers", fontsize=9)
        ax.set_ylabel(f"change of {_WHAT.get(statistic, statistic)}\n(after - before, {metric})")
        ax.legend(fontsize=7)
    return fig
