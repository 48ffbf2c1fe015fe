"""One call from a results table (and optionally an embedding store) to every bias table."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

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

__all__ = ["Analysis", "analyze", "dispersion_table"]


@dataclass
class Analysis:
    """Every table of the bias analysis, by name (tidy DataFrames; absent parts are empty)."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def dispersion_table(store, attributes) -> pd.DataFrame:
    """Per-speaker phone-embedding dispersion (and its cross-fitted error) of every store
    layer and group attribute (:func:`~probekit.bias.dispersion.speaker_dispersion`)."""
    out = []
    for layer in store.layers:
        X, y, meta = store.load_task(layer, "phone")
        for attr in attributes:
            out.append(speaker_dispersion(X, y, meta, attribute=attr)
                       .assign(layer=layer, group_attribute=attr))
    return pd.concat(out, ignore_index=True)


def analyze(results: pd.DataFrame, *, store=None, n_boot: int = 1000, n_perm: int = 1000,
            alpha: float = 0.05, seed: int = 0, with_counts: bool = True) -> Analysis:
    """Layerwise bias, transfer, count model, dispersion (with a store) and the typing.

    Degenerate input (no errors at all, one layer, a group missing at a layer) gives NaN
    statistics with a ``reason`` and a note, never an exception; a group with fewer than 2
    test speakers is an error naming it.

    Every finding is taken once, here: :func:`probekit.bias.decision.decide` adds the
    ``decision``, ``decision_level`` and ``decision_family`` columns (one family of findings
    per encoder, Bonferroni to ``alpha``) and the ``decision_families`` table; the figures,
    the report's bold cells and its sentences all read those columns. A level below the
    smallest p-value ``n_perm`` permutations can reach is said in a note.
    """
    from probekit.probes.results import validate_results

    df = validate_results(results)
    out = Analysis()
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
    disp = None
    if store is not None:
        disp = dispersion_table(store, sorted(df["group_attribute"].unique()))
        out.tables["dispersion_speakers"] = disp
    if (df["train_set"] == "all").any():
        ty = type_groups(df, dispersion=disp, alpha=alpha, n_perm=n_perm, seed=seed)
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
