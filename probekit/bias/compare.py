"""Paired before/after comparison of encoders probed on the *same* test speakers and splits.

"Did fine-tuning remove the gap?" is a paired question: the base and the adapted encoder are
probed on the same held-out speakers with the same grid seeds, so each (split, speaker) cell
is its own control. But each encoder's probes are *retrained* in every split: which speakers
trained them moves every test speaker of that split together, differently for the two
encoders. A comparison that pools each speaker's counts over splits and treats the trained
probes as fixed rejected a true "no change" of the macro error in 47-65 % of draws
(issue 19). So, per task, probe, layer and statistic (group error, overall, macro, worst and
every gap statistic), the change *after minus before* is taken on the split design
(:class:`~probekit.bias.design.SplitMatrix`), the same engine as the own-vs-broad test of
:mod:`probekit.bias.transfer`:

* both encoders must have the same (seed, speaker) test cells, and each cell's before and
  after values enter the same score, so the pairing is by split *and* speaker
  (:func:`~probekit.bias.change.split_change`); a speaker's value is its rate averaged over
  the splits that tested it, as everywhere in ``probekit.bias``;
* each statistic is a function of the group means (``overall``: of the speakers), a group
  mean a weighted sum of the cells (:func:`~probekit.bias.design.speaker_mean_weights`); the
  change's variance is the two-way (split x speaker) cluster-robust one of its cell scores
  (:func:`~probekit.bias.inference.twoway_from_scores`, the engine of the own-vs-broad
  test), exact for the linear statistics (``group:<g>``, ``overall``, ``macro``) and by the
  delta method for the gaps (``worst``, ``difference``, ``ratio``, ``relative_gap``, ``std``);
* every row has ``se, df``, the t interval and its p (so the two always agree), ``p_fwer``
  (Holm over the layers of one curve) and the simultaneous interval ``ci_low_fwer,
  ci_high_fwer`` (Bonferroni over those layers), which is what the verdict quotes when no
  layer passes; ``note`` names a degenerate row (one split, no variance, a group at error 0
  or 1);
* the leakage guard (:mod:`probekit.corpus.seen`) refuses test speakers an adapted encoder
  was trained on.

Changes of per-speaker counts with no training draw (WER) use
:func:`probekit.bias.paired.paired_change`. Formulas and which choices are ours:
docs/concepts.md, "Before/after comparisons".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from probekit.bias.change import COMPARE_STATISTICS, LINEAR_STATISTICS, split_change
from probekit.bias.design import split_matrix
from probekit.bias.errors import BiasInputError
from probekit.corpus.seen import (SEEN_FILE, LeakageError, SeenIds, SeenIdsError,
                                  check_unseen)
from probekit.bias.paired import PairedChange, paired_change
from probekit.bias.speakers import require_columns

__all__ = ["split_change", "Comparison", "compare_encoders", "COMPARE_STATISTICS",
           "LINEAR_STATISTICS", "change_figure",
           # re-exported (their home: probekit.bias.paired / probekit.corpus.seen)
           "PairedChange", "paired_change", "SeenIds", "LeakageError", "SeenIdsError",
           "check_unseen",
           "SEEN_FILE"]


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
        ``layer_index, before_value, after_value, change, se, df, t, ci_low, ci_high,
        p_value, p_fwer, ci_low_fwer, ci_high_fwer, n_speakers, n_splits, method, note,
        n_items, n_layers`` (:func:`split_change`). ``p_fwer`` and the ``_fwer`` interval are
        over the layers of one (pair, task, probe, metric, statistic).
    verdicts : list of str
        One sentence per (pair, task, probe, metric) about the gap (``statistic``).
    guard : list of str
        What the leakage guard checked, per adapted encoder.
    n_table : pandas.DataFrame
        Test speakers (distinct and per split), items and splits per (pair, task, probe,
        metric, group).
    """

    table: pd.DataFrame
    verdicts: list = field(default_factory=list)
    guard: list = field(default_factory=list)
    n_table: pd.DataFrame = field(default_factory=pd.DataFrame)
    alpha: float = 0.05
    statistic: str = "difference"

    def figure(self):
        return change_figure(self.table, statistic=self.statistic, alpha=self.alpha)


def _verdict(sub: pd.DataFrame, statistic: str, alpha: float, who: str) -> str:
    """The sentence for one curve. It states the family and level of its decision and quotes
    the interval of that same family: the per-layer interval of a layer that passes (Holm's
    p_fwer <= alpha implies its raw p <= alpha, so that interval excludes 0), else the
    simultaneous interval (Bonferroni over the layers, which then includes 0); per-layer
    intervals that exclude 0 without passing are named with the reason."""
    s = sub[sub["statistic"] == statistic].sort_values("layer_index")
    if s.empty:
        return f"{who}: no {statistic} rows"
    what = _WHAT.get(statistic, statistic)
    L = len(s)
    lvl = f"{100 * (1 - alpha):g}%"
    if s["p_value"].isna().all():
        why = next((n for n in s["note"] if n), "no test could be made")
        return f"{who}: the change of the {what} is not assessed: {why}."
    sig = s[s["p_fwer"] <= alpha]

    def one(r):
        word = "fell" if r.change < 0 else "rose"
        if statistic == "ratio":
            word = "rose (toward parity)" if r.change > 0 else "fell (away from parity)"
        return (f"at {r.layer} {word} by {abs(r.change):.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] "
                f"(from {r.before_value:.3f} to {r.after_value:.3f}; p = {r.p_value:.3g}, "
                f"Holm over {L} layers {r.p_fwer:.3g})")

    family = (f"family-wise over {L} layers at {alpha:g}; each change with its {lvl} "
              "interval; the probes' training draw (splits) and the speakers both counted")
    if len(sig):
        parts = "; ".join(one(r) for r in sig.itertuples())
        rest = (f"; at the other {L - len(sig)} layers the change is within what the "
                "training draw and the speakers' variation produce" if len(sig) < L else "")
        return f"{who}: the {what} {parts}{rest} ({family})."
    big = s.iloc[int(np.nanargmax(np.abs(s["change"].to_numpy())))] if s["change"].notna().any() \
        else s.iloc[0]
    raw = s[(s["ci_low"] > 0) | (s["ci_high"] < 0)]
    why = ""
    if len(raw):
        why = (f" The per-layer {lvl} interval excludes 0 at {', '.join(map(str, raw['layer']))}"
               f", but with {L} layers tested that is within what chance produces at a "
               f"family-wise {alpha:g} (Holm p >= {raw['p_fwer'].min():.3g}).")
    return (f"{who}: at no layer is the change of the {what} distinguishable from the "
            f"training draw and the speakers' variation (family-wise over {L} layers at "
            f"{alpha:g}; largest change {big.change:+.3f} at {big.layer}, simultaneous "
            f"interval [{big.ci_low_fwer:+.3f}, {big.ci_high_fwer:+.3f}], Holm p = "
            f"{big.p_fwer:.3g}).{why} This is not evidence that the gap is unchanged: the "
            "interval says how large a change the data leave possible.")


def compare_encoders(results: pd.DataFrame, before: str, after: str | Sequence[str] | None = None,
                     *, train_set: str = "all", seen: Mapping[str, SeenIds | None] | None = None,
                     allow_seen: bool = False, statistics: Sequence[str] | None = None,
                     verdict_statistic: str = "difference",
                     alpha: float = 0.05) -> Comparison:
    """Compare encoder ``before`` with each of ``after`` on the same test speakers and splits.

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

    Each probe seed is one split; both encoders must have the same (seed, speaker) test
    cells, so the pairing is by split and speaker (:func:`split_change`). With one seed only,
    the training draw cannot be assessed: the rows carry no p-value or interval and say so.

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
            both = sl[sl["layer"].isin(layers)].assign(
                _enc=lambda x: np.where(x["encoder"] == before, "before", "after"))
            m = split_matrix(both, rows=["layer", "_enc"], min_speakers=2)
            row = {(ly, e): i for i, (ly, e) in enumerate(m.keys.itertuples(index=False))}
            rb = np.stack([m.rates[row[(ly, "before")]] for ly in layers])
            ra = np.stack([m.rates[row[(ly, "after")]] for ly in layers])
            nb = np.stack([m.n[row[(ly, "before")]] for ly in layers])          # (L, K, S)
            t = split_change(rb, ra, m.codes, m.group_names, rows=layers, statistics=statistics,
                             alpha=alpha)
            t = t.rename(columns={"row": "layer", "before": "before_value",
                                  "after": "after_value"})
            items = {"": nb.sum((1, 2))}
            items.update({g: nb[..., m.codes == gi].sum((1, 2))
                          for gi, g in enumerate(m.group_names)})
            li = A.groupby("layer")["layer_index"].first()
            t.insert(1, "layer_index", t["layer"].map(li).astype(int))
            t["n_items"] = [int(items[st[6:] if st.startswith("group:") else ""][layers.index(ly)])
                            for st, ly in zip(t["statistic"], t["layer"])]
            t["n_layers"] = len(layers)
            for c, v in reversed([("before", before), ("after", a), *key.items()]):
                t.insert(0, c, v)
            tables.append(t)
            who = (f"{a} vs {before}, {_task_words(key['task'], key['probe'], '')}"
                   f"{', ' + key['metric'] if key.get('metric') not in (None, 'error') else ''}")
            verdicts.append(_verdict(t, verdict_statistic, alpha, who))
            n_spk, n_split = m.n_speakers(), m.per_split_n(0)
            for gi, g in enumerate(m.group_names):
                ns.append({"before": before, "after": a, **key, "group": g,
                           "n_speakers": int(n_spk[gi]), "n_per_split": float(n_split[gi]),
                           "n_items": int(items[g][0]), "n_seeds": len(m.splits)})
    if not tables:
        raise BiasInputError(f"no slice holds both {before} and {afters}")
    return Comparison(pd.concat(tables, ignore_index=True), verdicts, guard, pd.DataFrame(ns),
                      alpha=alpha, statistic=verdict_statistic)


def change_figure(table: pd.DataFrame, *, statistic: str = "difference", alpha: float = 0.05):
    """Change of ``statistic`` per layer (after - before) with its two-way t interval:
    one panel per (task, probe, metric), one line per compared pair; filled markers where the
    Holm-adjusted p <= alpha."""
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
            sig = (s["p_fwer"] <= alpha).to_numpy()
            ax.plot(x[sig], s["change"].to_numpy()[sig], "o", color=line.get_color())
            ax.set_xticks(x, s["layer"], rotation=45, ha="right", fontsize=7)
        ax.axhline(0, color="k", lw=0.8)
        n = int(sub["n_speakers"].iloc[0]) if len(sub) else 0
        ax.set_title(f"{task} / {probe} ({metric}), {n} test speakers", fontsize=9)
        ax.set_ylabel(f"change of {_WHAT.get(statistic, statistic)}\n(after - before, {metric})")
        ax.legend(fontsize=7)
    return fig
