"""Seaborn figures of the bias tables; every axis has units and every title the speaker count.

Each function takes the tidy tables of :func:`probekit.bias.analysis.analyze` and returns a
``matplotlib.figure.Figure`` (the caller saves or shows it). No global state is touched:
figures are built without pyplot (so the backend of a notebook is never switched and no
figure is registered with it) and the seaborn style is applied inside context managers (so
``rcParams`` are the user's again afterwards). Marks come from the tables' ``decision``
columns (:mod:`probekit.bias.decision`), the same that the report's bold cells and sentences
read.
"""

from __future__ import annotations

import functools

from contextlib import ExitStack

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from probekit.bias.metrics import group_of
from probekit.cliutil import slug

__all__ = ["layer_curves", "transfer_heatmaps", "dispersion_scatter", "decomposition_bars",
           "TYPE_COLORS", "analysis_figures", "change_figure", "STATISTIC_LABELS"]

#: How each before/after statistic is named on an axis and in a sentence ("gap" is max - min).
STATISTIC_LABELS = {"difference": "gap (max - min group error)", "ratio": "min/max ratio",
                    "relative_gap": "relative gap", "std": "spread (std of group errors)",
                    "overall": "overall error", "macro": "macro error",
                    "worst": "worst-group error"}

TYPE_COLORS = {"neither": "#bbbbbb", "systematic": "#d95f02", "random": "#7570b3",
               "both": "#1b9e77", "worse, unexplained": "#e7298a"}


def _all_but(group: str):
    from probekit.probes.splits import TrainSet  # not at import: probekit.probes loads torch
    return TrainSet("all-but", group)


def _styled(fn):
    """Run ``fn`` under the house style (seaborn whitegrid/paper) without changing rcParams
    outside the call."""
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        with ExitStack() as st:
            st.enter_context(sns.axes_style("whitegrid"))
            st.enter_context(sns.plotting_context("paper"))
            return fn(*a, **kw)
    return wrapper


def _figure(rows: int, cols: int, figsize, **kw):
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(rows, cols, **kw)


def _decided(d: pd.DataFrame) -> np.ndarray:
    """The rows' ``decision`` column (:mod:`probekit.bias.decision`); a table without it is
    refused rather than marked at a guessed level."""
    if "decision" not in d.columns:
        from probekit.bias.errors import BiasInputError

        raise BiasInputError("layer curves without a 'decision' column: take the decisions with "
                             "probekit.bias.decision.decide (analyze does) before drawing marks")
    return d["decision"].fillna(False).astype(bool).to_numpy()


def layer_curves(curves: pd.DataFrame, *, bias: str = "between_var",
                 alpha: float | None = None) -> Figure:
    """Per-layer error by group (left) and the bias measure (right), CI bands, one slice.

    ``curves`` is ``layer_curves`` restricted to one task/probe/metric/attribute; several
    encoders are drawn on the same axes (line style) so before/after comparisons share them.
    ``alpha``: the analysis's level, which the bands' label states (``1 - alpha``).
    """
    metric, task = curves["metric"].iloc[0], curves["task"].iloc[0]
    fig, (a1, a2) = _figure(1, 2, (11, 4))
    groups = sorted(g for g in map(group_of, curves["statistic"].unique()) if g is not None)
    pal = dict(zip(groups, sns.color_palette("husl", len(groups))))
    styles = ["-", "--", ":", "-."]
    n_spk = []
    for ei, (enc, c) in enumerate(curves.groupby("encoder", sort=True)):
        ls = styles[ei % len(styles)]
        x = lambda d: d.sort_values("layer_index")
        for g in groups:
            d = x(c[c["statistic"] == f"group:{g}"])
            a1.plot(d["layer_index"], d["estimate"], ls, color=pal[g], lw=1, alpha=0.8,
                    label=g if ei == 0 else None)
            a1.fill_between(d["layer_index"], d["ci_low"], d["ci_high"], color=pal[g],
                            alpha=0.08, lw=0)
            worse = _decided(d)
            a1.scatter(d.loc[worse, "layer_index"], d.loc[worse, "estimate"], s=60, marker="^",
                       facecolors="none", edgecolors=pal[g], zorder=3)
        o = x(c[c["statistic"] == "overall"])
        a1.plot(o["layer_index"], o["estimate"], ls, color="k", lw=2,
                label=f"overall ({enc})")
        a1.fill_between(o["layer_index"], o["ci_low"], o["ci_high"], color="k", alpha=0.15)
        b = x(c[c["statistic"] == bias])
        a2.plot(b["layer_index"], b["estimate"], ls, marker="o", color="C3", label=enc)
        a2.fill_between(b["layer_index"], b["ci_low"], b["ci_high"], color="C3", alpha=0.15)
        mt = x(c[c["statistic"] == "max_abs_t"])
        f = mt.set_index("layer_index")["decision"].astype(bool) if len(mt) else pd.Series(dtype=bool)
        sig = b["layer_index"].map(f).fillna(False).to_numpy(bool)
        lvl = mt["decision_level"].dropna()
        a2.scatter(b.loc[sig, "layer_index"], b.loc[sig, "estimate"], s=80, facecolors="none",
                   edgecolors="k", zorder=3,
                   label=(f"unequal means, family-wise p <= {lvl.iloc[0]:.3g}" if len(lvl)
                          else "unequal means") if ei == 0 else None)
        n_spk.append(int(o["n_speakers"].iloc[0]))
        labels = o[["layer_index", "layer"]].drop_duplicates()
    for a in (a1, a2):
        a.set_xticks(labels["layer_index"], labels["layer"], rotation=45, ha="right")
        a.set_xlabel("layer")
    a1.set_ylabel(f"{metric} rate (fraction of {task} items wrong)")
    ci = "CI" if alpha is None else f"{100 * (1 - alpha):g}% CI"
    a1.set_title(f"{task}: error per group; bands: speaker-bootstrap {ci} "
                 "(faint: groups, grey: overall); triangle: worse than the rest", fontsize=8)
    a2.set_ylabel("between-group variance net of sampling noise" if bias == "between_var"
                  else f"{bias} of group {metric} rates")
    a2.axhline(0, color="k", lw=0.6)
    a2.set_title(f"bias across layers ({bias}; 0 = parity)")
    a1.legend(fontsize=6, ncol=2)
    a2.legend(fontsize=7)
    fig.suptitle(f"{', '.join(sorted(curves['encoder'].unique()))} | {task} probe "
                 f"{curves['probe'].iloc[0]} | groups: {curves['group_attribute'].iloc[0]} "
                 f"({len(groups)}) | n = {max(n_spk)} test speakers")
    return fig


@_styled
def transfer_heatmaps(matrix: pd.DataFrame, layers=None, max_layers: int = 4) -> Figure:
    """Train-set x test-group error heatmaps, one panel per layer (one slice).

    Without ``layers``, at most ``max_layers`` evenly spaced layers (first and last included)
    are drawn; every layer is in the CSV.
    """
    if layers is None:
        all_layers = list(matrix.sort_values("layer_index")["layer"].unique())
        pick = np.unique(np.linspace(0, len(all_layers) - 1, min(max_layers, len(all_layers)))
                         .round().astype(int))
        layers = [all_layers[i] for i in pick]
    k = len(layers)
    cols = min(k, 3)
    rows = int(np.ceil(k / cols))
    fig, axes = _figure(rows, cols, (5.2 * cols, 4.4 * rows), squeeze=False)
    vmin, vmax = matrix["error"].min(), matrix["error"].max()
    groups = sorted(matrix["test_group"].unique())
    order = (["all"] + [g for g in groups if g in set(matrix["train_set"])] +
             [str(t) for t in (_all_but(g) for g in groups) if str(t) in set(matrix["train_set"])])
    for ax, layer in zip(axes.flat, layers):
        m = matrix[matrix["layer"] == layer].pivot(index="train_set", columns="test_group",
                                                   values="error")
        m = m.reindex(index=[o for o in order if o in m.index], columns=groups)
        sns.heatmap(m, ax=ax, vmin=vmin, vmax=vmax, cmap="rocket_r", annot=len(groups) <= 6,
                    fmt=".2f", cbar_kws={"label": f"{matrix['metric'].iloc[0]} rate"})
        ax.set_title(f"layer {layer}")
        ax.set_xlabel("test group (speakers)")
        ax.set_ylabel("probe trained on")
    for ax in list(axes.flat)[k:]:
        ax.axis("off")
    n = int(matrix.drop_duplicates("test_group")["n_speakers"].sum())
    fig.suptitle(f"{matrix['encoder'].iloc[0]} | {matrix['task'].iloc[0]} | cross-group transfer "
                 f"| n = {n} test speakers in {len(groups)} groups")
    return fig


@_styled
def dispersion_scatter(speakers: pd.DataFrame, error: str = "error") -> Figure:
    """Per-speaker phone-embedding dispersion vs the cross-fitted phone error, per layer."""
    if error not in speakers:
        speakers = speakers.assign(error=1 - speakers["accuracy"])
    layers = list(dict.fromkeys(speakers["layer"]))
    cols = min(len(layers), 4)
    rows = int(np.ceil(len(layers) / cols))
    fig, axes = _figure(rows, cols, (4 * cols, 3.4 * rows), squeeze=False)
    for ax, layer in zip(axes.flat, layers):
        d = speakers[speakers["layer"] == layer]
        sns.scatterplot(data=d, x="dispersion", y=error, hue="group", ax=ax, s=25,
                        legend=ax is axes.flat[0])
        ax.set_title(f"{layer} ({d['speaker'].nunique()} speakers)", fontsize=9)
        ax.set_xlabel("within-phone dispersion D (Mahalanobis, 1 = pooled)")
        ax.set_ylabel("phone error (held-out tokens,\nleave-speaker-out centroids)")
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    if speakers["group"].nunique() <= 12:
        axes.flat[0].legend(fontsize=6, ncol=2, title=speakers["group_attribute"].iloc[0])
    fig.suptitle("random variance: phone-embedding dispersion per speaker")
    return fig


@_styled
def decomposition_bars(typing: pd.DataFrame) -> Figure:
    """Each group's error minus the other groups' mean per layer, coloured by its type (one
    slice of the typing table)."""
    d = typing.copy()
    rest = d.groupby("layer")["group_error"].transform("sum")
    cnt = d.groupby("layer")["group_error"].transform("count")
    d["excess"] = d["group_error"] - (rest - d["group_error"]) / (cnt - 1)
    layers = list(d.sort_values("layer_index")["layer"].unique())
    cols = min(len(layers), 4)
    rows = int(np.ceil(len(layers) / cols))
    fig, axes = _figure(rows, cols, (4 * cols, 3.4 * rows), squeeze=False, sharey=True)
    for ax, layer in zip(axes.flat, layers):
        x = d[d["layer"] == layer].sort_values("group")
        pos = np.arange(len(x))
        ax.bar(pos, x["excess"], color=[TYPE_COLORS.get(t, "#000") for t in x["type"]])
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(pos, x["group"], rotation=60, ha="right", fontsize=7)
        ax.set_title(str(layer), fontsize=9)
        ax.set_ylabel("group error minus the other groups'\n(absolute)")
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in TYPE_COLORS.values()]
    fig.legend(handles, TYPE_COLORS.keys(), loc="outside lower center", ncol=5, fontsize=8)
    fig.suptitle(f"{d['encoder'].iloc[0]} | {d['task'].iloc[0]} | type per group and layer "
                 f"(the report's decision level {d['level'].iloc[0]:.3g} per family)")
    return fig


_KEYS = ["encoder", "task", "probe", "metric", "group_attribute"]


def analysis_figures(tables: dict[str, pd.DataFrame],
                     alpha: float | None = None) -> list[tuple[str, Figure]]:
    """``(file stem, figure)`` of every figure of an analysis's tables: layer curves per
    (task, probe, metric, group attribute), transfer heatmaps, typing bars and dispersion
    scatters per slice (what :meth:`probekit.bias.analysis.Analysis.save` writes; ``alpha``,
    the analysis's level, labels the intervals)."""
    figs = []
    t = tables
    if "layer_curves" in t:
        for k, c in t["layer_curves"].groupby(_KEYS[1:]):
            figs.append((f"layer_curves_{slug(*k)}", layer_curves(c, alpha=alpha)))
    if "transfer_matrix" in t:
        for k, m in t["transfer_matrix"].groupby(_KEYS):
            figs.append((f"transfer_{slug(*k)}", transfer_heatmaps(m)))
    if "typing" in t:
        for k, ty in t["typing"].groupby(_KEYS):
            figs.append((f"decomposition_{slug(*k)}", decomposition_bars(ty)))
    if "dispersion_speakers" in t:
        d_all = t["dispersion_speakers"]
        by = ["encoder", "group_attribute"] if "encoder" in d_all.columns else ["group_attribute"]
        for k, d in d_all.groupby(by):
            figs.append((f"dispersion_{slug(*k)}", dispersion_scatter(d)))
    return figs


def change_figure(table: pd.DataFrame, *, statistic: str = "difference") -> Figure:
    """Change of ``statistic`` per layer (after - before) with its two-way t interval: one
    panel per (task, probe, metric), one line per compared pair; filled markers where the
    comparison decided the change (its ``decision`` column: Holm over the layers at
    ``decision_level``, which also sets the interval's level in the label)."""
    if "decision" not in table.columns or "decision_level" not in table.columns:
        from probekit.bias.errors import BiasInputError

        raise BiasInputError("a comparison table without 'decision'/'decision_level' columns: "
                             "build it with probekit.bias.compare.compare_encoders")
    t = table[table["statistic"] == statistic]
    lv = t["decision_level"].dropna()
    level = f"{100 * (1 - float(lv.iloc[0])):g}%" if len(lv) else "no"
    panels = list(t.groupby(["task", "probe", "metric"], sort=True))
    fig = Figure(figsize=(5.5 * max(len(panels), 1), 3.8), layout="constrained")
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)
    for ax, ((task, probe, metric), sub) in zip(axes[0], panels):
        for (b, a), s in sub.groupby(["before", "after"], sort=False):
            s = s.sort_values("layer_index")
            x = np.arange(len(s))
            line = ax.plot(x, s["change"], marker="o", mfc="white", label=f"{a} - {b}")[0]
            ax.fill_between(x, s["ci_low"], s["ci_high"], alpha=0.18, color=line.get_color())
            sig = s["decision"].fillna(False).astype(bool).to_numpy()
            ax.plot(x[sig], s["change"].to_numpy()[sig], "o", color=line.get_color())
            ax.set_xticks(x, s["layer"], rotation=45, ha="right", fontsize=7)
        ax.axhline(0, color="k", lw=0.8)
        n = int(sub["n_speakers"].iloc[0]) if len(sub) else 0
        ax.set_title(f"{task} / {probe} ({metric}), {n} test speakers", fontsize=9)
        ax.set_ylabel(f"change of {STATISTIC_LABELS.get(statistic, statistic)}\n"
                      f"(after - before, {metric}; {level} interval)")
        ax.legend(fontsize=7)
    return fig
