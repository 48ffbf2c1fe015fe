"""The report's at-a-glance figure: every encoder's groups x layers, marked by the report's
decisions (the tables' ``decision`` columns, :mod:`probekit.bias.decision`)."""

from __future__ import annotations

from probekit.bias.metrics import group_of
from probekit.report.summary import primary_slices, task_words

__all__ = ["glance_figure", "TYPE_MARKS"]


#: Marks of the typing in the at-a-glance figure.
TYPE_MARKS = {"systematic": "S", "random": "R", "both": "S+R", "worse, unexplained": "W"}


def _glance_data(tables: dict, key: tuple, alpha: float):
    """(groups, layers, difference matrix, mark matrix) for one slice, or None."""
    import numpy as np

    curves = tables["layer_curves"]
    enc, task, probe, metric = key
    c = curves[(curves["encoder"] == enc) & (curves["task"] == task) & (curves["probe"] == probe)
               & (curves["metric"] == metric) & curves["statistic"].astype(str).map(group_of).notna()]
    if "train_set" in c.columns and (c["train_set"] == "all").any():
        c = c[c["train_set"] == "all"]
    if c.empty:
        return None
    layers = c.sort_values("layer_index")["layer"].drop_duplicates().tolist()
    groups = sorted(c["statistic"].map(group_of).unique())
    est = c.assign(group=c["statistic"].map(group_of)).drop_duplicates(["group", "layer"]) \
        .pivot(index="group", columns="layer", values="estimate").reindex(index=groups, columns=layers)
    E = est.to_numpy(dtype=float)
    k = len(groups)
    if k < 2:
        return None
    rest = (np.nansum(E, axis=0, keepdims=True) - E) / (k - 1)
    D = E - rest
    marks = [["" for _ in layers] for _ in groups]
    t = tables.get("typing")
    if t is not None and {"group", "layer", "type"} <= set(t.columns):
        for col, val in (("encoder", enc), ("task", task), ("probe", probe), ("metric", metric)):
            if col in t.columns:
                t = t[t[col].astype(str) == str(val)]
    if t is not None and len(t) and "type" in t.columns:
        for r in t.itertuples(index=False):
            g, layer, typ = str(getattr(r, "group")), str(getattr(r, "layer")), str(getattr(r, "type"))
            if g in groups and layer in layers:
                marks[groups.index(g)][layers.index(layer)] = TYPE_MARKS.get(typ, "")
    else:  # no typing: mark the "worse" decision
        for r in c[c["decision"].fillna(False).astype(bool)].itertuples(index=False):
            marks[groups.index(group_of(r.statistic))][layers.index(r.layer)] = "*"
    return groups, layers, D, marks


def glance_figure(tables: dict, alpha: float = 0.05):
    """The one-screen overview: one row of panels per encoder (every encoder), one panel per
    task, groups x layers coloured by the group's error minus the mean error of the other
    groups (red: worse than the rest), each cell marked by its typing decision (S
    systematic, R random, S+R both, W worse unexplained) or, for a task without typing, ``*``
    where the group is decided worse than the rest. ``None`` without layer curves.

    Built on ``matplotlib.figure.Figure`` (no pyplot): it never changes a notebook's backend.
    """
    import numpy as np
    from matplotlib.figure import Figure

    from probekit.report.summary import with_decisions

    if "layer_curves" not in tables or tables["layer_curves"].empty:
        return None
    tables = with_decisions(tables, alpha)
    panels = []
    for key in primary_slices(tables["layer_curves"]):
        d = _glance_data(tables, key, alpha)
        if d is not None:
            panels.append((key, d))
    if not panels:
        return None
    encs = list(dict.fromkeys(k[0] for k, _ in panels))
    n = max(sum(k[0] == e for k, _ in panels) for e in encs)
    vmax = max(float(np.nanmax(np.abs(d[2]))) for _, d in panels) or 1e-9
    height = max(2.6, 0.42 * max(len(d[0]) for _, d in panels) + 1.6) * len(encs)
    fig = Figure(figsize=(min(18, max(6.5, 4.2 * n + 1.2)), height), dpi=110, layout="constrained")
    grid = fig.subplots(len(encs), n, squeeze=False)
    axes, placed = [], []
    for ei, e in enumerate(encs):
        mine = [p for p in panels if p[0][0] == e]
        for j in range(n):
            if j < len(mine):
                axes.append(grid[ei, j])
                placed.append(mine[j])
            else:
                grid[ei, j].axis("off")
    panels = placed
    im = None
    for ax, (key, (groups, layers, D, marks)) in zip(axes, panels):
        im = ax.imshow(D, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(layers)), layers, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(groups)), groups, fontsize=8)
        ax.set_xlabel("layer")
        ax.set_title(f"{key[0]}: {task_words(key[1])}\n({key[2]}, {key[3]})", fontsize=9)
        for gi in range(len(groups)):
            for li in range(len(layers)):
                if marks[gi][li]:
                    ax.text(li, gi, marks[gi][li], ha="center", va="center", fontsize=8,
                            fontweight="bold", color="black")
    for ei in range(len(encs)):
        grid[ei, 0].set_ylabel("group")
    cb = fig.colorbar(im, ax=list(axes), shrink=0.9)
    cb.set_label("error minus the other groups' mean")
    fam = tables.get("decision_families")
    lv = ("; ".join(f"{e} at {g['level'].iloc[0]:.3g}" for e, g in fam.groupby("encoder"))
          if fam is not None and len(fam) else f"{alpha:g}")
    fig.suptitle(f"At a glance: red = worse than the other groups, blue = better\n"
                 f"marks: S systematic, R random, S+R both, W worse unexplained, * worse "
                 f"(the report's decisions, each family at: {lv})", fontsize=9)
    return fig
