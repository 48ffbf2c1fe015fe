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
from pathlib import Path

import numpy as np
import pandas as pd

from probekit.bias.change import COMPARE_STATISTICS, LINEAR_STATISTICS, split_change
from probekit.bias.design import split_matrix
from probekit.bias.errors import BiasInputError
from probekit.bias.metrics import group_of
from probekit.corpus.seen import (SEEN_FILE, LeakageError, SeenIds, SeenIdsError,
                                  check_unseen)
from probekit.bias.paired import PairedChange, paired_change
from probekit.bias.speakers import require_columns

__all__ = ["split_change", "Comparison", "compare_encoders", "COMPARE_STATISTICS",
           "LINEAR_STATISTICS", "COMPARISON_TABLES",
           # re-exported (their home: probekit.bias.paired / probekit.corpus.seen)
           "PairedChange", "paired_change", "SeenIds", "LeakageError", "SeenIdsError",
           "check_unseen",
           "SEEN_FILE"]


#: The tables of a comparison folder, by file stem (``wer_table``: a fine-tuning study only).
COMPARISON_TABLES = ("comparison", "n_per_cell", "wer_table")
#: The comparison folder's record: level, verdict statistic, leakage guard and what was compared.
COMPARISON_RECORD = "comparison.json"


@dataclass
class Comparison:
    """Result of :func:`compare_encoders`; ``save(folder)`` / ``Comparison.load(folder)`` are
    the one writer and reader of a before/after folder (``probekit compare --out`` and a
    study's ``compare/`` alike).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (before, after, task, probe, metric, group_attribute, layer, statistic):
        ``layer_index, weighting`` (``speakers``), ``before_value, after_value, change, se,
        df, t, ci_low, ci_high,
        p_value, p_fwer, ci_low_fwer, ci_high_fwer, n_speakers, n_splits, method, note,
        n_items, n_layers, decision, decision_level`` (:func:`split_change`). ``p_fwer`` and
        the ``_fwer`` interval are over the layers of one (pair, task, probe, metric,
        statistic); ``decision`` is ``p_fwer <= decision_level`` (``alpha``), the one decision
        the verdicts, the figure's filled marks and the report's bold cells read.
    guard : list of str
        What the leakage guard checked, per adapted encoder.
    n_table : pandas.DataFrame
        Test speakers (distinct and per split), items and splits per (pair, task, probe,
        metric, group).
    alpha : float
        The level of the intervals and decisions.
    statistic : str
        The statistic the verdicts and the figure describe (default the max - min gap).
    wer_table : pandas.DataFrame, optional
        The WER table of a fine-tuning study (``wer_table.csv``).
    info : dict
        What was compared (``base``, ``adapted``; a study adds ``split``, ``train_groups``,
        ``n_test_utterances_wer``), kept in ``comparison.json``.
    """

    table: pd.DataFrame
    guard: list = field(default_factory=list)
    n_table: pd.DataFrame = field(default_factory=pd.DataFrame)
    alpha: float = 0.05
    statistic: str = "difference"
    wer_table: pd.DataFrame | None = None
    info: dict = field(default_factory=dict)

    def figure(self):
        """The change of :attr:`statistic` per layer (:func:`probekit.bias.figures.change_figure`)."""
        from probekit.bias.figures import change_figure

        return change_figure(self.table, statistic=self.statistic)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables it writes, by file stem (:data:`COMPARISON_TABLES`)."""
        t = {"comparison": self.table, "n_per_cell": self.n_table}
        return t if self.wer_table is None else {**t, "wer_table": self.wer_table}

    def save(self, folder, *, overwrite: bool = False, inputs: tuple = (), fingerprint=None,
             command: str = "compare") -> Path:
        """Write the tables (``<name>.csv``), ``comparison.json`` and
        ``figures/change_<statistic>.png`` into ``folder``, claimed as a probekit
        ``comparison`` (:func:`probekit.outdir.claim_output`: an earlier comparison there is
        replaced, a folder probekit did not write or one holding ``inputs`` is refused); the
        stamp records each table's rows once all is written. Returns the folder."""
        from probekit.atomic import savefig, to_csv, write_json
        from probekit.outdir import claim_output, finish_output

        tables = self.tables()
        fig = f"change_{self.statistic}.png"
        out = claim_output(folder, "comparison", fresh=True, overwrite=overwrite,
                           command=command, inputs=inputs, fingerprint=fingerprint,
                           contents=[f"{n}.csv" for n in tables] + [COMPARISON_RECORD, "figures"])
        for name, t in tables.items():
            to_csv(t, out / f"{name}.csv", index=False)
        write_json(out / COMPARISON_RECORD, {"alpha": self.alpha, "statistic": self.statistic,
                                             "guard": list(self.guard), **self.info}, default=str)
        (out / "figures").mkdir(parents=True, exist_ok=True)
        savefig(self.figure(), out / "figures" / fig, dpi=110)
        finish_output(out, tables={n: int(len(t)) for n, t in tables.items()},
                      columns={n: [str(c) for c in t.columns] for n, t in tables.items()})
        return out

    @classmethod
    def load(cls, folder) -> Comparison:
        """The comparison a finished :meth:`save` wrote in ``folder``; a folder probekit did
        not finish, or whose tables are missing or changed length, is an error naming it."""
        from probekit.jsonfile import read_json_object
        from probekit.outdir import OutputFolderError, read_tables, require_output

        folder = Path(folder)
        stamp = require_output(folder, "comparison", " (probekit compare --out FOLDER writes one)")
        tables = read_tables(folder, stamp, COMPARISON_TABLES, what="comparison",
                             again="run the comparison again")
        if "comparison" not in tables:
            raise OutputFolderError(f"{folder}: its stamp lists no comparison table; run the "
                                    "comparison again")
        t = tables["comparison"]
        if "note" in t:  # "" (no note) is read back as NaN
            t["note"] = t["note"].astype(object).where(t["note"].notna(), "")
        rec = read_json_object(folder / COMPARISON_RECORD, "comparison record",
                               {"alpha": float, "statistic": str, "guard": list},
                               required=("alpha", "statistic", "guard"))
        info = {k: v for k, v in rec.items() if k not in ("alpha", "statistic", "guard")}
        return cls(tables["comparison"], guard=list(rec["guard"]),
                   n_table=tables.get("n_per_cell", pd.DataFrame()), alpha=float(rec["alpha"]),
                   statistic=rec["statistic"], wer_table=tables.get("wer_table"), info=info)


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
    tables, ns = [], []
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
            t["n_items"] = [int(items[group_of(st) or ""][layers.index(ly)])
                            for st, ly in zip(t["statistic"], t["layer"])]
            t["n_layers"] = len(layers)
            for c, v in reversed([("before", before), ("after", a), *key.items()]):
                t.insert(0, c, v)
            tables.append(t)
            n_spk, n_split = m.n_speakers(), m.per_split_n(0)
            for gi, g in enumerate(m.group_names):
                ns.append({"before": before, "after": a, **key, "group": g,
                           "n_speakers": int(n_spk[gi]), "n_per_split": float(n_split[gi]),
                           "n_items": int(items[g][0]), "n_seeds": len(m.splits)})
    if not tables:
        raise BiasInputError(f"no slice holds both {before} and {afters}")
    table = pd.concat(tables, ignore_index=True)
    # the one decision (Holm over the layers of a curve at alpha) that every reader quotes
    table["decision"] = (table["p_fwer"] <= alpha).to_numpy()
    table["decision_level"] = alpha
    return Comparison(table, guard, pd.DataFrame(ns), alpha=alpha, statistic=verdict_statistic,
                      info={"base": before, "adapted": list(afters)})
