"""One level, one decision: the decision columns every figure mark, bold cell and sentence reads.

The report's findings are one family **per encoder**: for each of the encoder's report slices
(encoder x task x probe x metric x group attribute, one metric per task: CER for ASR) the
test families present among

* ``worse``: a group is worse than the rest (``layer_curves`` ``group:*`` rows, max-T over
  layers x groups; the typing's "worse" is this same test);
* ``unequal means``: group means differ (``max_abs_t`` rows, max-T over layers);
* ``trend``: the debiased between-group variance tracks the error across layers (``layer_summary``,
  ``between_var``, joint permutation);
* ``own vs broad``: own-group probes beat the broad probe, pooled over groups
  (``own_vs_broad`` ``(pooled)`` rows of the typing's reference, Holm over layers);
* ``systematic`` and ``random``: the typing's own families (``typing``);

are each held at ``alpha / N`` where ``N`` is the number of such families of that encoder
(Bonferroni), so the chance that the report states any false finding about one encoder is at
most ``alpha`` (measured: ``benchmarks/calib_findings.py``). The family never includes other
encoders: adding an encoder to a study does not change another encoder's conclusions. The
secondary ASR metric (WER, which repeats CER's question) is decided at its encoder's level but
not counted and not printed in the report.

:func:`decide` adds to each table ``decision`` (bool: a finding), ``decision_level`` and
``decision_family``, recomputes the typing at the level (so its ``type`` column is the
decision) and returns a ``decision_families`` table: one row per (encoder, slice, family) with
the level, the number of families, the smallest p-value the permutation count can reach and
whether the level is attainable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from probekit.bias._slices import SLICE_KEYS
from probekit.bias.metrics import group_of

__all__ = ["decide", "report_slices", "FAMILIES", "PERMUTATION_FAMILIES", "has_decisions",
           "findings_table"]

#: The finding families, in reading order.
FAMILIES = ("worse", "unequal means", "trend", "own vs broad", "systematic", "random")
#: Families whose p-values come from label permutations (their smallest p is 1/(n_perm+1);
#: the trend's two-sided p is at least 2/(n_perm+1)).
PERMUTATION_FAMILIES = {"worse": 1, "unequal means": 1, "trend": 2, "random": 1}


def report_slices(curves: pd.DataFrame, *, with_attribute: bool = False) -> list[tuple]:
    """(encoder, task, probe, metric[, group_attribute]) slices of the report: one metric per
    task (``cer`` for ASR: the character rate is the stabler of the two), tasks in a fixed
    reading order."""
    cols = ["encoder", "task", "probe", "metric"] + (["group_attribute"] if with_attribute else [])
    from probekit.probes.tasks import get_task  # not at import: probekit.probes loads torch
    keys = curves[cols].drop_duplicates()
    task = {t: get_task(t) for t in keys["task"].unique()}
    read = {t: task[t].report_metric(ms) for t, ms in keys.groupby("task")["metric"].agg(set).items()}
    keys = keys[np.array([m == read[t] or m not in task[t].metrics
                          for t, m in zip(keys["task"], keys["metric"])], dtype=bool)]
    keys = keys.assign(o=keys["task"].map(lambda t: task[t].order))
    return [tuple(r) for r in keys.sort_values(["encoder", "o", "task"] + cols[2:]).drop(columns="o")
            .itertuples(index=False)]


def has_decisions(tables: dict) -> bool:
    c = tables.get("layer_curves")
    return c is not None and "decision" in c.columns


def _mask(t: pd.DataFrame, key) -> pd.Series:
    m = pd.Series(True, index=t.index)
    for col, v in zip(SLICE_KEYS, key):
        m &= t[col].astype(str) == str(v)
    return m


def _own_reference(o: pd.DataFrame) -> str:
    return "all-matched" if (o["reference"] == "all-matched").any() else "all"


def _present(tables, key) -> list[str]:
    """The finding families that slice ``key`` has in ``tables``."""
    fam = ["worse", "unequal means"]
    ls = tables.get("layer_summary")
    if ls is not None and len(ls):
        s = ls[_mask(ls, key) & (ls["bias_measure"] == "between_var")]
        if len(s) and (s["reason"].fillna("").astype(str) == "").any():
            fam.append("trend")
    ob = tables.get("own_vs_broad")
    if ob is not None and len(ob):
        o = ob[_mask(ob, key) & (ob["group"] == "(pooled)")]
        if len(o) and (o["n_splits"] >= 2).any():
            fam.append("own vs broad")
    ty = tables.get("typing")
    if ty is not None and len(ty):
        y = ty[_mask(ty, key)]
        if len(y) and y["systematic_p_fwer"].notna().any():
            fam.append("systematic")
        if len(y) and (y["random_source"] == "embedding").any():
            fam.append("random")
    return fam


def decide(tables: dict[str, pd.DataFrame], *, alpha: float = 0.05,
           n_perm: int | None = None) -> dict[str, pd.DataFrame]:
    """The tables with their decision columns and the ``decision_families`` table (see the
    module docstring). ``n_perm``: the permutation count of the analysis (``None``: unknown,
    attainability not assessed). Tables are copied, never modified in place."""
    from probekit.bias.decomposition import type_at_level
    from probekit.bias.inference import holm

    t = {k: v.copy() for k, v in tables.items()}
    c = t.get("layer_curves")
    if c is None or c.empty:
        return t
    slices = report_slices(c, with_attribute=True)
    fams = {key: _present(t, key) for key in slices}
    n_enc = {}
    for key, f in fams.items():
        n_enc[key[0]] = n_enc.get(key[0], 0) + len(f)
    level_of = {e: alpha / max(n, 1) for e, n in n_enc.items()}
    min_p = 1.0 / (n_perm + 1) if n_perm else np.nan
    rows = []
    for key, f in fams.items():
        for fam in f:
            lvl = level_of[key[0]]
            mp = min_p * PERMUTATION_FAMILIES[fam] if fam in PERMUTATION_FAMILIES else np.nan
            rows.append({**dict(zip(SLICE_KEYS, key)), "family": fam, "alpha": alpha,
                         "n_families": n_enc[key[0]], "level": lvl, "min_attainable_p": mp,
                         "attainable": bool(not (mp == mp) or mp <= lvl)})
    t["decision_families"] = pd.DataFrame(rows)
    counted = set(slices)

    def family_text(key, fam):
        e = key[0]
        where = "" if key in counted else " (secondary metric: decided, not counted or reported)"
        return f"{fam}; one of {n_enc.get(e, 0)} families of {e}, Bonferroni to {alpha:g}{where}"

    def stamp(df, rows_mask_fn, pcol, fam):
        """decision/level/family for the rows selected per slice by ``rows_mask_fn``."""
        if "decision" not in df.columns:
            df["decision"] = False
            df["decision_level"] = np.nan
            df["decision_family"] = ""
        for key, _ in df.groupby(SLICE_KEYS, sort=False):
            lvl = level_of.get(key[0])
            if lvl is None:
                continue
            m = _mask(df, key) & rows_mask_fn(df)
            p = df.loc[m, pcol].astype(float)
            df.loc[m, "decision"] = (p <= lvl).to_numpy()
            df.loc[m, "decision_level"] = lvl
            df.loc[m, "decision_family"] = family_text(key, fam)
        return df

    stat = lambda d: d["statistic"].astype(str)
    c = stamp(c, lambda d: stat(d).map(group_of).notna(), "p_fwer", "worse")
    c = stamp(c, lambda d: stat(d) == "max_abs_t", "p_fwer", "unequal means")
    t["layer_curves"] = c
    ls = t.get("layer_summary")
    if ls is not None and len(ls):
        t["layer_summary"] = stamp(ls, lambda d: d["bias_measure"] == "between_var", "p_value",
                                   "trend")
    ob = t.get("own_vs_broad")
    if ob is not None and len(ob):
        ob["p_holm"] = np.nan
        for key, o in ob[ob["group"] == "(pooled)"].groupby(SLICE_KEYS, sort=False):
            o = o[o["reference"] == _own_reference(o)]
            ob.loc[o.index, "p_holm"] = holm(o["p_less"].to_numpy(float))
        t["own_vs_broad"] = stamp(ob, lambda d: d["p_holm"].notna(), "p_holm", "own vs broad")
    ty = t.get("typing")
    if ty is not None and len(ty):
        ty = _worse_from_curves(ty, c)
        parts = []
        for key, y in ty.groupby(SLICE_KEYS, sort=False):
            lvl = level_of.get(key[0])
            if lvl is None:
                parts.append(y)
                continue
            y = type_at_level(y, lvl)
            parts.append(y.assign(decision=(y["type"] != "neither").to_numpy(),
                                  decision_level=lvl,
                                  decision_family=family_text(key, "type (worse, systematic, "
                                                                   "random at this level each)")))
        t["typing"] = pd.concat(parts).sort_index()
    return t


def _worse_from_curves(ty: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """The typing's "worse" p-values replaced by the layer curves' (one test of "worse" in the
    report: the same statistic, the same speakers, one set of permutations)."""
    group = curves["statistic"].astype(str).map(group_of)
    g = curves[group.notna()].assign(group=group[group.notna()], layer=lambda d: d["layer"].astype(str))
    g = g[SLICE_KEYS + ["layer", "group", "p_value", "p_fwer"]]
    g = g.drop_duplicates(SLICE_KEYS + ["layer", "group"])
    ty = ty.copy()
    key = ty[SLICE_KEYS].astype(str).assign(layer=ty["layer"].astype(str),
                                            group=ty["group"].astype(str))
    gk = g.astype({k: str for k in SLICE_KEYS + ["group"]})
    m = key.merge(gk, how="left", on=SLICE_KEYS + ["layer", "group"])
    found = m["p_fwer"].notna().to_numpy()
    ty.loc[found, "worse_p"] = m.loc[found, "p_value"].to_numpy()
    ty.loc[found, "worse_p_fwer"] = m.loc[found, "p_fwer"].to_numpy()
    return ty


def findings_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every finding the report states: one row per decided cell of a report slice
    (``encoder, task, probe, metric, group_attribute, table, layer, what``). Secondary
    metrics (decided, not reported) are left out. Used by ``benchmarks/calib_findings.py``
    to count false findings under the global null."""
    cols = SLICE_KEYS + ["table", "layer", "what"]
    c = tables.get("layer_curves")
    if c is None or c.empty or "decision" not in c.columns:
        return pd.DataFrame(columns=cols)
    keep = set(report_slices(c, with_attribute=True))
    out = []
    for name, what in (("layer_curves", "statistic"), ("layer_summary", "bias_measure"),
                       ("own_vs_broad", "group"), ("typing", "type")):
        t = tables.get(name)
        if t is None or t.empty or "decision" not in t.columns:
            continue
        d = t[t["decision"].fillna(False).astype(bool)]
        if d.empty:
            continue
        inside = [tuple(r) in keep for r in d[SLICE_KEYS].itertuples(index=False)]
        d = d[inside]
        out.append(d[SLICE_KEYS].assign(table=name, layer=d.get("layer", d.get("max_bias_layer")),
                                         what=d[what].astype(str)))
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)
