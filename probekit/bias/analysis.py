"""One call from a results table (and optionally an embedding store) to every bias table."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from probekit.bias._slices import spearman
from probekit.bias.decomposition import type_groups
from probekit.bias.dispersion import speaker_dispersion
from probekit.bias.errors import BiasInputError
from probekit.bias.layerwise import layerwise_bias
from probekit.bias.counts import count_model
from probekit.bias.permutation import group_vs_rest
from probekit.bias.resample import percentile_ci, speaker_bootstrap_indices
from probekit.bias.transfer import cross_group_transfer

__all__ = ["Analysis", "analyze", "dispersion_tables"]


@dataclass
class Analysis:
    """Every table of the bias analysis, by name (tidy DataFrames; absent parts are empty)."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def dispersion_tables(store, attributes, results: pd.DataFrame | None = None, *,
                      n_boot: int = 1000, n_perm: int = 1000, alpha: float = 0.05, seed: int = 0):
    """Per-speaker dispersion of every store layer, its correlation with accuracy, per group.

    Returns ``(speakers, summary, groups)`` frames. When ``results`` holds phone-probe rows
    (``task == "phone"``, ``train_set == "all"``) for a layer of the same name, the probe's
    per-speaker error is joined as ``probe_error`` and correlated too.
    """
    spk, summ, grp = [], [], []
    for layer in store.layers:
        X, y, meta = store.load_task(layer, "phone")
        for attr in attributes:
            d = speaker_dispersion(X, y, meta, attribute=attr).assign(layer=layer,
                                                                      group_attribute=attr)
            if results is not None:
                r = results[(results["task"] == "phone") & (results["train_set"] == "all") &
                            (results["layer"].astype(str) == str(layer)) &
                            (results["group_attribute"] == attr) & (results["unit"] != "all")]
                if len(r):
                    pe = (r.assign(k=r["value"] * r["n"]).groupby("unit")[["k", "n"]].sum())
                    d["probe_error"] = d["speaker"].map(pe["k"] / pe["n"])
            spk.append(d)
            rng = np.random.default_rng(seed)
            codes = pd.Categorical(d["group"]).codes
            names = list(pd.Categorical(d["group"]).categories)
            idx = speaker_bootstrap_indices(codes, n_boot, rng)
            D = d["dispersion"].to_numpy()
            for target, sign in (("accuracy", 1.0), ("probe_error", -1.0)):
                if target not in d or d[target].notna().sum() < 3:
                    continue
                # probe errors exist only for test speakers: correlate on those
                keep = d[target].notna().to_numpy()
                A = d[target].to_numpy() * sign       # as an accuracy either way
                Dk, Ak = D[keep], A[keep]
                kidx = speaker_bootstrap_indices(codes[keep], n_boot, rng)
                lo, hi = percentile_ci(spearman(Dk[kidx], Ak[kidx], axis=1), alpha,
                                       n_clusters=int(keep.sum()))
                summ.append({"layer": layer, "group_attribute": attr,
                             "accuracy_source": "nearest_centroid" if sign > 0 else "probe",
                             "spearman_dispersion_accuracy": float(spearman(Dk, Ak)),
                             "ci_low": float(lo), "ci_high": float(hi),
                             "mean_dispersion": float(Dk.mean()), "n_speakers": int(keep.sum())})
            M = np.eye(len(names))[codes]
            cnt = M.sum(0)
            gm = D @ M / cnt
            gb = D[idx] @ M / cnt
            glo, ghi = np.empty(len(names)), np.empty(len(names))
            for gi in range(len(names)):
                glo[gi], ghi[gi] = percentile_ci(gb[:, gi], alpha, n_clusters=int(cnt[gi]))
            _, p = group_vs_rest(D, codes, n_perm=n_perm, rng=rng, alternative="two-sided")
            grp.append(pd.DataFrame({"layer": layer, "group_attribute": attr, "group": names,
                                     "dispersion": gm, "ci_low": glo, "ci_high": ghi,
                                     "p_value": p, "n_speakers": cnt.astype(int)}))
    return (pd.concat(spk, ignore_index=True), pd.DataFrame(summ),
            pd.concat(grp, ignore_index=True))


def analyze(results: pd.DataFrame, *, store=None, n_boot: int = 1000, n_perm: int = 1000,
            alpha: float = 0.05, seed: int = 0) -> Analysis:
    """Layerwise bias, transfer, mixed model, dispersion (with a store) and the typing."""
    from probekit.probes.results import validate_results

    df = validate_results(results)
    out = Analysis()
    kw = dict(n_boot=n_boot, n_perm=n_perm, alpha=alpha, seed=seed)
    if (df["train_set"] == "all").any():
        lw = layerwise_bias(df, train_set="all", **kw)
        out.tables["layer_curves"] = lw.curves
        out.tables["layer_summary"] = lw.summary
        out.tables["count_model"] = count_model(df, alpha=alpha)
    else:
        out.notes.append("no probes trained on every group (train_set 'all'): layer curves, "
                         "mixed model and typing skipped")
    try:
        tr = cross_group_transfer(df, **kw)
        out.tables.update(transfer_matrix=tr.matrix, own_vs_broad=tr.own_vs_broad,
                          transfer_generalisation=tr.generalisation)
    except BiasInputError as exc:
        out.notes.append(f"transfer skipped: {exc}")
    disp = None
    if store is not None:
        attrs = sorted(df["group_attribute"].unique())
        disp, summ, grp = dispersion_tables(store, attrs, df, **kw)
        out.tables.update(dispersion_speakers=disp, dispersion_summary=summ,
                          dispersion_groups=grp)
    if (df["train_set"] == "all").any():
        out.tables["typing"] = type_groups(df, dispersion=disp, alpha=alpha, n_perm=n_perm,
                                           seed=seed)
    return out
