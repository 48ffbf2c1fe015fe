"""The report's group x layer tables: each group's error per layer with the decisions in
bold (:func:`group_error_table`) and every cell's interval and speaker count
(:func:`group_interval_table`), as DataFrames of formatted cells."""

from __future__ import annotations

import pandas as pd

from probekit.bias.metrics import group_of

__all__ = ["group_error_table", "group_interval_table", "BETWEEN_VAR_LABEL"]

#: Row label of ``between_var``: called by its name, since "gap" means max - min everywhere.
BETWEEN_VAR_LABEL = "between-group variance (debiased)"


def _fmt(x, bold: bool = False) -> str:
    s = f"{x:.3f}"
    return f"**{s}**" if bold else s


def group_error_table(curves: pd.DataFrame, key: tuple, alpha: float = 0.05) -> pd.DataFrame:
    """Groups x layers of the probe trained on every group (bold: the ``decision`` column
    says the group is worse than the rest; the level is the table's ``decision_level``),
    plus the overall error, the debiased between-group variance (``between_var``; "gap" is
    kept for max - min) and the family-wise p-value of equal group
    means (max |t| over groups; bold where decided). ``curves`` without decision columns get
    them from :func:`probekit.report.summary.with_decisions` at ``alpha``."""
    from probekit.report.summary import with_decisions

    curves = with_decisions({"layer_curves": curves}, alpha)["layer_curves"]
    enc, task, probe, metric = key
    c = curves[(curves["encoder"] == enc) & (curves["task"] == task) & (curves["probe"] == probe) &
               (curves["metric"] == metric)]
    layers = c.sort_values("layer_index")["layer"].drop_duplicates().tolist()
    dec = c["decision"].fillna(False).astype(bool)
    rows = {}
    for stat, label in ([(s, group_of(s)) for s in sorted(c["statistic"].unique()) if group_of(s) is not None]
                        + [("overall", "overall"), ("between_var", BETWEEN_VAR_LABEL)]):
        x = c[c["statistic"] == stat].assign(_d=dec).set_index("layer")
        rows[label] = [_fmt(x.at[layer, "estimate"], bool(x.at[layer, "_d"]))
                       if layer in x.index else "" for layer in layers]
    gp = c[c["statistic"] == "max_abs_t"].assign(_d=dec).set_index("layer")
    if len(gp):
        rows["unequal means p (family-wise)"] = [
            (f"**{gp.at[layer, 'p_fwer']:.3f}**" if gp.at[layer, "_d"] else f"{gp.at[layer, 'p_fwer']:.3f}")
            if layer in gp.index else "" for layer in layers]
    return pd.DataFrame.from_dict(rows, orient="index", columns=layers)


def group_interval_table(curves: pd.DataFrame, key: tuple, alpha: float = 0.05) -> pd.DataFrame:
    """Groups x layers like :func:`group_error_table`, each cell ``estimate [low, high] n=k``
    (the speaker-bootstrap interval at level 1 - alpha and the number of test speakers).
    Missing interval or n columns are left out of the cell."""
    enc, task, probe, metric = key
    c = curves[(curves["encoder"] == enc) & (curves["task"] == task) & (curves["probe"] == probe) &
               (curves["metric"] == metric)]
    layers = c.sort_values("layer_index")["layer"].drop_duplicates().tolist()
    rows = {}
    stats = [(s, group_of(s)) for s in sorted(c["statistic"].unique()) if group_of(s) is not None]
    for stat, label in stats + [("overall", "overall"), ("between_var", BETWEEN_VAR_LABEL)]:
        x = c[c["statistic"] == stat].drop_duplicates("layer").set_index("layer")
        cells = []
        for layer in layers:
            if layer not in x.index:
                cells.append("")
                continue
            r = x.loc[layer]
            cell = f"{r['estimate']:.3f}"
            if "ci_low" in x.columns and "ci_high" in x.columns and r["ci_low"] == r["ci_low"]:
                cell += f" [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            for ncol in ("n_per_split", "n_speakers", "n"):
                if ncol in x.columns and r[ncol] == r[ncol]:
                    cell += f" n={int(r[ncol])}" + ("/split" if ncol == "n_per_split" else "")
                    break
            cells.append(cell)
        rows[label] = cells
    return pd.DataFrame.from_dict(rows, orient="index", columns=layers)
