"""One call from a results table (and optionally an embedding store) to every bias table."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from probekit.bias.counts import count_model
from probekit.bias.decomposition import type_groups
from probekit.bias.dispersion import speaker_dispersion
from probekit.bias.errors import BiasInputError
from probekit.bias.layerwise import layerwise_bias
from probekit.bias.transfer import cross_group_transfer

log = logging.getLogger(__name__)

__all__ = ["Analysis", "analyze", "check_analysable", "dispersion_table"]


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


def analyze(results: pd.DataFrame, *, store=None, n_boot: int = 1000, n_perm: int = 1000,
            alpha: float = 0.05, seed: int = 0) -> Analysis:
    """Layerwise bias, transfer, count model, dispersion (with a store) and the typing.

    Degenerate input (no errors at all, one layer, a group missing at a layer) gives NaN
    statistics with a ``reason`` and a note, never an exception; a group with fewer than 2
    test speakers is an error naming it.
    """
    from probekit.probes.results import validate_results

    df = validate_results(results)
    check_analysable(df)
    out = Analysis()
    kw = dict(n_boot=n_boot, n_perm=n_perm, alpha=alpha, seed=seed)
    if (df["train_set"] == "all").any():
        lw = layerwise_bias(df, train_set="all", **kw)
        out.tables["layer_curves"] = lw.curves
        out.tables["layer_summary"] = lw.summary
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
    return out
