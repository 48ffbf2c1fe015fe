"""One call from a results table (and optionally an embedding store) to every bias table,
and the folder those tables live in (:meth:`Analysis.save`, :meth:`Analysis.load`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from probekit.bias.counts import count_model
from probekit.bias.decision import decide
from probekit.bias.decomposition import type_groups
from probekit.bias.dispersion import speaker_dispersion
from probekit.bias.errors import BiasInputError
from probekit.bias.layerwise import layerwise_bias
from probekit.bias.transfer import cross_group_transfer

log = logging.getLogger(__name__)

__all__ = ["Analysis", "analyze", "check_analysable", "dispersion_table", "match_stores",
           "TABLES", "FINDINGS_NAME"]

#: Every table an analysis can hold, in reading order: the one list of their names
#: (:meth:`Analysis.save` writes ``<name>.csv`` for each it has, :meth:`Analysis.load` reads
#: back what the folder's stamp lists).
TABLES = ("layer_curves", "layer_summary", "typing", "own_vs_broad", "transfer_generalisation",
          "transfer_matrix", "count_model", "dispersion_speakers", "decision_families")
#: The findings note beside the tables.
FINDINGS_NAME = "findings.md"


@dataclass
class Analysis:
    """Every table of the bias analysis, by name (tidy DataFrames; absent parts are empty).

    ``save(folder)`` writes the tables (CSV), the figures (``figures/*.png``), the findings
    note and the provenance into a folder probekit owns; ``Analysis.load(folder)`` reads
    them back (refusing a folder that was not finished or was edited since)."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: What it was computed from (:mod:`probekit.provenance`), written as provenance.json.
    provenance: dict = field(default_factory=dict)
    #: The test level its decisions were taken at.
    alpha: float = 0.05

    def save(self, folder, *, findings: str | None = None, overwrite: bool = False,
             inputs: tuple = (), fingerprint=None) -> tuple[Path, int]:
        """Write every table (``<name>.csv``), the figures (``figures/*.png``), the findings
        note and ``provenance.json``; returns ``(folder, number of figures)``.

        The folder is owned by the analysis (:func:`probekit.outdir.claim_output`): what an
        older analysis wrote there is removed first, so its figures never leak into a new
        report, and a folder that probekit did not write, or that holds one of ``inputs``, is
        refused. ``findings`` is the note's text (the plain-words summary is prose, so the
        caller gets it from ``findings_note`` of the report package); without it the note lists
        the analysis's own notes. The stamp lists every table with its row count and columns
        once all is written (:meth:`load` checks them). A table name outside :data:`TABLES`
        is refused.
        """
        from probekit.atomic import savefig, to_csv, write_json, write_text
        from probekit.bias.decision import decide, has_decisions
        from probekit.bias.figures import analysis_figures
        from probekit.outdir import claim_output, finish_output
        from probekit.provenance import PROVENANCE_NAME

        unknown = [n for n in self.tables if n not in TABLES]
        if unknown:
            raise BiasInputError(f"analysis table {unknown[0]!r} is not one of probekit's "
                                 f"tables ({', '.join(TABLES)}); nothing was written")
        if not has_decisions(self.tables):  # an Analysis built by hand: the same one decision
            self.tables = decide(self.tables, alpha=self.alpha)
        out = claim_output(folder, "analysis", fresh=True, overwrite=overwrite,
                           command="analyze", inputs=inputs, fingerprint=fingerprint,
                           contents=[f"{n}.csv" for n in self.tables]
                           + ["figures", FINDINGS_NAME, PROVENANCE_NAME])
        (out / "figures").mkdir(parents=True, exist_ok=True)
        for name, table in self.tables.items():
            to_csv(table, out / f"{name}.csv", index=False)
        figs = analysis_figures(self.tables, alpha=self.alpha)
        for name, fig in figs:
            savefig(fig, out / "figures" / f"{name}.png", dpi=110)  # pyplot-free: nothing to close
        write_text(out / FINDINGS_NAME, findings if findings is not None else _notes_note(self))
        if self.provenance:
            write_json(out / PROVENANCE_NAME, self.provenance, default=str)
        finish_output(out, tables={n: int(len(t)) for n, t in self.tables.items()},
                      columns={n: [str(c) for c in t.columns] for n, t in self.tables.items()},
                      notes=list(self.notes), alpha=self.alpha)
        return out, len(figs)

    @classmethod
    def load(cls, folder) -> Analysis:
        """The analysis a finished :meth:`save` wrote in ``folder``: every table it wrote
        (empty ones included, in the order written), its notes, provenance and level. A
        folder that probekit did not finish, or whose tables are missing, changed length or
        lost a column since, is an :class:`~probekit.outdir.OutputFolderError` naming it."""
        from probekit.provenance import read_provenance

        folder = Path(folder)
        stamp, tables = _read_tables(folder)
        prov = read_provenance(folder)  # a malformed one is refused, naming it
        level = stamp.get("alpha", (prov.get("analysis") or {}).get("alpha", 0.05))
        return cls(tables=tables, notes=[str(n) for n in stamp.get("notes") or []],
                   provenance=prov, alpha=float(level))


def dispersion_table(store, attributes) -> pd.DataFrame:
    """Per-speaker phone-embedding dispersion (and its cross-fitted error) of every store
    layer and group attribute (:func:`~probekit.bias.dispersion.speaker_dispersion`)."""
    out = []
    for layer in store.layers:
        X, y, meta = store.load_task(layer, "phone", lazy=True)  # read in chunks
        for attr in attributes:
            if "*" in attr and f"group:{attr}" not in meta.columns:  # an intersection
                from probekit.store.store import add_intersection_column
                add_intersection_column(meta, attr, store.index["attributes"])
            out.append(speaker_dispersion(X, y, meta, attribute=attr)
                       .assign(layer=layer, group_attribute=attr))
    return pd.concat(out, ignore_index=True)


def check_analysable(df: pd.DataFrame) -> None:
    """Refuse, naming the item, a validated results table that no bias statistic can vouch for.

    - a classification ``error`` outside [0, 1] (``cer``/``wer`` may exceed 1: insertions);
    - one encoder's cells from two embedding stores (two fingerprints): ``probe`` refuses to
      mix them, and so does the analysis (``probe --retire-stale`` keeps one);
    - fewer than two test groups for an encoder, task and group attribute: there is nothing
      to compare, so "no group is worse" would be a statement about nothing.
    """
    bad = (df["metric"] == "error") & ~df["value"].between(0.0, 1.0)
    if bad.any():
        r = df[bad].iloc[0]
        raise BiasInputError(f"{int(bad.sum())} row(s) hold an error rate outside [0, 1], e.g. "
                             f"{r['encoder']} / {r['task']} / layer {r['layer']} / "
                             f"{r['test_group']}: {r['value']}")
    stores = df.groupby("encoder")["store"].unique()
    for enc, keys in stores.items():
        if len(keys) > 1:
            raise BiasInputError(
                f"encoder {enc!r} has cells from {len(keys)} embedding stores "
                f"({', '.join(sorted(map(str, keys)))}); one encoder's cells must come from one "
                "store (probe --retire-stale moves the older cells aside)")
    groups = df.groupby(["encoder", "task", "group_attribute"])["test_group"].unique()
    for (enc, task, attr), gs in groups.items():
        if len(gs) < 2:
            raise BiasInputError(
                f"{enc} / {task}: only one {attr} group ({', '.join(map(str, gs))}) in the "
                "results; a bias analysis compares at least two groups")


def _key(store) -> str:
    from probekit.store.store import fingerprint_key

    fp = getattr(store, "fingerprint", None)
    return getattr(store, "key", None) or (fingerprint_key(fp) if fp else "")


def _describe(store) -> str:
    fp = getattr(store, "fingerprint", {}) or {}
    return (f"store {getattr(store, 'root', '?')} (encoder {fp.get('encoder', '?')!r}, "
            f"fingerprint {_key(store)})")


def match_stores(results: pd.DataFrame, stores) -> dict:
    """``{encoder: store}``: every store matched to the encoder of the results it produced.

    ``stores`` is one store, a sequence of stores, or ``{encoder: store}``. A store belongs
    to the encoder whose rows carry its fingerprint key (the results' ``store`` column); rows
    written before that column existed (``""``) match by the store's encoder name. A store
    that matches no encoder (or not the one it is given for), or two stores for one encoder,
    is a :class:`BiasInputError` naming the store and the results' encoders.
    """
    if stores is None:
        return {}
    keys = {str(e): set(d.astype(str).unique()) for e, d in results.groupby("encoder")["store"]}
    have = "; ".join(f"{e} (store {', '.join(sorted(k - {''})) or 'unrecorded'})"
                     for e, k in sorted(keys.items()))

    def owners(store) -> list[str]:
        hits = [e for e, k in keys.items() if _key(store) and _key(store) in k]
        name = (getattr(store, "fingerprint", None) or {}).get("encoder")
        # rows without a recorded store: by encoder name (or the only encoder, for a store
        # without a fingerprint, e.g. an in-memory stand-in)
        return hits or [e for e, k in keys.items()
                        if k <= {""} and (e == name or (name is None and len(keys) == 1))]

    if isinstance(stores, Mapping):
        pairs = []
        for enc, store in stores.items():
            if str(enc) not in owners(store):
                raise BiasInputError(f"{_describe(store)} given for encoder {enc!r} did not "
                                     f"produce its results; results encoders: {have}")
            pairs.append((str(enc), store))
    else:
        pairs = []
        for store in (stores if isinstance(stores, (list, tuple)) else [stores]):
            hits = owners(store)
            if not hits:
                raise BiasInputError(f"{_describe(store)} matches no encoder in the results; "
                                     f"results encoders: {have}")
            pairs += [(e, store) for e in hits]
    out: dict = {}
    for enc, store in pairs:
        if enc in out and out[enc] is not store:
            raise BiasInputError(f"two stores for encoder {enc!r}: {_describe(out[enc])} and "
                                 f"{_describe(store)}")
        out[enc] = store
    return out


def analyze(results: pd.DataFrame, *, store=None, n_boot: int = 1000, n_perm: int = 1000,
            alpha: float = 0.05, seed: int = 0, with_counts: bool = True) -> Analysis:
    """Layerwise bias, transfer, count model, dispersion (with a store) and the typing.

    ``store``: one embedding store, several, or ``{encoder: store}``; each is matched to the
    encoder whose results it produced (:func:`match_stores`), and an encoder's "random" type
    is decided from its own store only ("not assessed" for an encoder without one).

    Degenerate input (no errors at all, one layer, a group missing at a layer) gives NaN
    statistics with a ``reason`` and a note, never an exception; a group with fewer than 2
    test speakers is an error naming it.

    Every finding is taken once, here: :func:`probekit.bias.decision.decide` adds the
    ``decision``, ``decision_level`` and ``decision_family`` columns (one family of findings
    per encoder, Bonferroni to ``alpha``) and the ``decision_families`` table; the figures,
    the report's bold cells and its sentences all read those columns. A level below the
    smallest p-value ``n_perm`` permutations can reach is said in a note.

    BLAS runs on one thread here: its products are many and small or tall and thin (the
    replicates, the count model's fits), threads gain nothing on them and lose up to 10x
    where the cores are shared; the numbers are the same on any thread count.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _analyze(results, store=store, n_boot=n_boot, n_perm=n_perm, alpha=alpha,
                        seed=seed, with_counts=with_counts)


def _analyze(results, *, store, n_boot, n_perm, alpha, seed, with_counts) -> Analysis:
    from probekit.probes.results import validate_results

    if results is None or len(results) == 0:
        raise BiasInputError("the results table is empty: nothing to analyse (run probekit "
                             "probe first)")
    df = validate_results(results)
    check_analysable(df)
    stores = match_stores(df, store)
    from probekit.provenance import sentence_splits, versions

    out = Analysis(alpha=alpha, provenance={
        "analysis": {"n_boot": n_boot, "n_perm": n_perm, "alpha": alpha, "seed": seed},
        "stores": {enc: dict(getattr(st, "fingerprint", None) or {},
                             root=str(getattr(st, "root", ""))) for enc, st in stores.items()},
        "fingerprints": {f"results:{e}": sorted(set(d.astype(str).unique()) - {""}) for e, d in
                         df.groupby("encoder")["store"]},
        "versions": versions(), "n_result_rows": len(df),
        "sentence_splits": sentence_splits(df)})
    kw = dict(n_boot=n_boot, n_perm=n_perm, alpha=alpha, seed=seed)
    if (df["train_set"] == "all").any():
        lw = layerwise_bias(df, train_set="all", **kw)
        out.tables["layer_curves"] = lw.curves
        out.tables["layer_summary"] = lw.summary
        if with_counts:  # descriptive (no finding reads it); the slowest part of analyze
            out.tables["count_model"] = count_model(df, alpha=alpha)
        bad = lw.curves[lw.curves["reason"].astype(str) != ""]
        for (enc, task, metric), r in bad.groupby(["encoder", "task", "metric"]):
            out.notes.append(f"{enc} / {task} ({metric}): {r['reason'].iloc[0]} at "
                             f"{r['layer'].nunique()} layer(s); its tests there are NaN")
    else:
        out.notes.append("no probes trained on every group (train_set 'all'): layer curves, "
                         "count model and typing skipped")
    try:
        tr = cross_group_transfer(df, **kw)
        out.tables.update(transfer_matrix=tr.matrix, own_vs_broad=tr.own_vs_broad,
                          transfer_generalisation=tr.generalisation)
    except BiasInputError as exc:
        out.notes.append(f"transfer skipped: {exc}")
    disp = {}
    for enc, st in stores.items():
        attrs = sorted(df.loc[df["encoder"] == enc, "group_attribute"].unique())
        d = dispersion_table(st, attrs)
        disp[enc] = d.assign(encoder=enc)[["encoder"] + list(d.columns)]
    if disp:
        out.tables["dispersion_speakers"] = pd.concat(disp.values(), ignore_index=True)
    if (df["train_set"] == "all").any():
        # one encoder at a time: an encoder's random test uses its own store's dispersion
        ty = [type_groups(d, dispersion=disp.get(enc), alpha=alpha, n_perm=n_perm, seed=seed)
              for enc, d in df.groupby("encoder", sort=True)]
        ty = pd.concat([t for t in ty if len(t)], ignore_index=True) if any(len(t) for t in ty) \
            else ty[0]
        if len(ty):
            out.tables["typing"] = ty
        else:
            out.notes.append("no task has single-group probes beside the probe trained on every "
                             "group: no systematic/random typing (group effects are in the "
                             "layer curves)")
    out.tables = decide(out.tables, alpha=alpha, n_perm=n_perm)
    fam = out.tables.get("decision_families")
    if fam is not None and len(fam) and not fam["attainable"].all():
        for enc, f in fam[~fam["attainable"]].groupby("encoder"):
            need = int(np.ceil(2 * f["min_attainable_p"].max() / f["level"].min() * (n_perm + 1)))
            out.notes.append(
                f"{enc}: the finding level {f['level'].min():.2g} is below the smallest p-value "
                f"{n_perm} permutations can reach ({f['min_attainable_p'].min():.2g}): "
                f"{', '.join(sorted(set(f['family'])))} cannot find anything; rerun with "
                f"n_perm >= {need}")
    return out


def _notes_note(an: Analysis) -> str:
    """The findings note without prose of its own: the analysis's notes."""
    return "\n".join(["# Bias analysis notes", "",
                       "The plain-words findings are in the report (probekit report FOLDER).",
                       ""] + [f"- Note: {n}" for n in an.notes]) + "\n"


def _read_tables(folder: Path) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The stamp of a finished analysis folder and every table it lists, each checked
    against the row count and columns the stamp recorded (:func:`probekit.outdir.read_tables`)."""
    from probekit.outdir import read_tables, require_output

    stamp = require_output(folder, "analysis", " (run probekit analyze RESULTS --out FOLDER)")
    out = read_tables(folder, stamp, TABLES, what="analysis",
                      again="run probekit analyze again")
    for df in out.values():
        if "reason" in df:
            df["reason"] = df["reason"].astype(object).fillna("")
    return stamp, out
