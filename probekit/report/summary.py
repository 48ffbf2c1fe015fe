"""Plain-words summary of a bias analysis folder (the CSV tables ``probekit analyze`` writes).

Every sentence is derived from the tables: which groups are worse, at which layers, whether
it is systematic or random (the typing rule of docs/concepts.md), whether the gap tracks the
error across layers, and how sure we can be (test speakers per group, p-values, intervals).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["load_tables", "summary_points", "TASK_WORDS", "primary_slices"]

#: How a task's probe is described in prose.
TASK_WORDS = {"phone": "phone recognition", "speaker": "speaker identification",
              "asr": "transcription (CTC)"}

TABLES = ("layer_curves", "layer_summary", "typing", "own_vs_broad", "transfer_generalisation",
          "transfer_matrix", "mixed_effects", "dispersion_summary", "dispersion_groups")


def task_words(task: str) -> str:
    if task.startswith("group:"):
        return f"{task[6:]} identification"
    return TASK_WORDS.get(task, task)


def load_tables(folder: str | Path) -> dict[str, pd.DataFrame]:
    """The analysis folder's CSV tables by name (missing or empty ones are left out)."""
    out = {}
    for name in TABLES:
        p = Path(folder) / f"{name}.csv"
        if p.exists() and p.stat().st_size > 1:
            try:
                t = pd.read_csv(p)
            except pd.errors.EmptyDataError:
                continue
            if len(t):
                out[name] = t
    return out


def primary_slices(curves: pd.DataFrame) -> list[tuple]:
    """(encoder, task, probe, metric) slices, one metric per task (``cer`` for ASR: the
    character rate is the stabler of the two), tasks in a fixed reading order."""
    keys = curves[["encoder", "task", "probe", "metric"]].drop_duplicates()
    keys = keys[~((keys["task"] == "asr") & (keys["metric"] == "wer") &
                  keys["task"].isin(keys.loc[keys["metric"] == "cer", "task"]))]
    order = {"phone": 0, "asr": 1, "speaker": 2}
    keys = keys.assign(o=keys["task"].map(lambda t: order.get(t, 3)))
    return [tuple(r) for r in keys.sort_values(["encoder", "o", "task"]).drop(columns="o")
            .itertuples(index=False)]


def _layers(xs) -> str:
    xs = list(xs)
    return ", ".join(xs) if xs else "none"


def _slice_points(t, key, alpha) -> list[str]:
    enc, task, probe, metric = key
    c = t["layer_curves"]
    c = c[(c["encoder"] == enc) & (c["task"] == task) & (c["probe"] == probe) & (c["metric"] == metric)]
    ov = c[c["statistic"] == "overall"].sort_values("layer_index")
    gap = c[c["statistic"] == "difference"].sort_values("layer_index")
    grp = c[c["statistic"].str.startswith("group:")]
    if ov.empty or gap.empty or grp.empty:
        return []
    best = ov.loc[ov["estimate"].idxmin()]
    big = gap.loc[gap["estimate"].idxmax()]
    sig = gap[gap["p_value"] <= alpha]
    n_min = int(grp["n_speakers"].min())
    head = (f"**{enc}, {task_words(task)}** ({probe} probe, {metric}): error is lowest at "
            f"{best.layer} ({best.estimate:.3f}). The gap between the best and worst "
            f"{t['_attr']} group is largest at {big.layer} ({big.estimate:.3f}, "
            f"95% CI {big.ci_low:.3f}-{big.ci_high:.3f}) and exceeds what speaker-to-speaker "
            f"variation produces (permutation p <= {alpha}) at {len(sig)} of {len(gap)} layers"
            + (f" ({_layers(sig['layer'])})." if len(sig) else "."))
    worst = grp.loc[grp.groupby("layer_index")["estimate"].idxmax()]
    wc = worst["statistic"].str[6:].value_counts()
    w, k = wc.index[0], int(wc.iloc[0])
    wrow = grp[grp["statistic"] == f"group:{w}"]
    head += (f" Worst group: **{w}**, worst at {k} of {len(gap)} layers "
             f"(error {wrow['estimate'].min():.3f}-{wrow['estimate'].max():.3f}; "
             f"{int(wrow['n_speakers'].iloc[0])} test speakers).")
    pts = [head]
    ty = t.get("typing")
    if ty is not None:
        ty = ty[(ty["encoder"] == enc) & (ty["task"] == task) & (ty["probe"] == probe) &
                (ty["metric"] == metric)]
        flagged = ty[ty["type"] != "neither"]
        if len(ty):
            if flagged.empty:
                pts.append(f"  Systematic or random? No group is flagged at any layer "
                           f"({len(ty)} group x layer tests, Holm-adjusted): the differences "
                           "are within what the speakers' own variation explains.")
            else:
                parts = []
                for g, y in flagged.groupby("group"):
                    by = y.groupby("type")["layer"].apply(list)
                    parts.append(f"{g} " + "; ".join(f"{ty_} at {_layers(ls)}" for ty_, ls in by.items()))
                pts.append("  Systematic or random? " + ". ".join(parts) +
                           f" ({len(flagged)} of {len(ty)} group x layer cells flagged; "
                           "systematic = the group's mean is worse, random = its speakers vary "
                           "more).")
    ls = t.get("layer_summary")
    if ls is not None:
        r = ls[(ls["encoder"] == enc) & (ls["task"] == task) & (ls["probe"] == probe) &
               (ls["metric"] == metric) & (ls["bias_measure"] == "difference")]
        if len(r) and int(r["n_layers"].iloc[0]) >= 3 and r["spearman"].notna().all():
            r = r.iloc[0]
            clear = r.ci_low > 0 or r.ci_high < 0
            pts.append(f"  Does the gap track the error across layers? Spearman "
                       f"{r.spearman:+.2f} (95% CI {r.ci_low:+.2f} to {r.ci_high:+.2f}): "
                       + ("the gap is larger where the error is larger." if clear and r.spearman > 0
                          else "the gap is larger where the error is smaller." if clear
                          else "not clearly; the interval includes 0."))
    ob = t.get("own_vs_broad")
    if ob is not None:
        o = ob[(ob["encoder"] == enc) & (ob["task"] == task) & (ob["probe"] == probe) &
               (ob["metric"] == metric) & (ob["group"] == "(pooled)") & (ob["reference"] == "all")]
        if len(o):
            wins = o[o["reliable_win"].astype(bool)]
            pts.append(f"  Own-group probes (trained on one group, equal data) beat the probe "
                       f"trained on every group on their own speakers at {len(wins)} of {len(o)} "
                       "layers (pooled over groups; sign-flip p <= 0.05 and every seed)"
                       + (f": {_layers(wins['layer'])} - a sign of systematic bias." if len(wins)
                          else "."))
    if n_min < 8:
        pts.append(f"  How sure: as few as {n_min} test speakers in a group, so per-group "
                   "intervals are wide; trust the pooled and permutation results more than "
                   "single cells.")
    return pts


def summary_points(tables: dict[str, pd.DataFrame], *, alpha: float = 0.05) -> list[str]:
    """Markdown paragraphs, most important first. Empty tables give a one-line note."""
    if "layer_curves" not in tables:
        return ["The analysis produced no layer curves (no probe was trained on every group), so "
                "there is nothing to summarise; see the tables below."]
    c = tables["layer_curves"]
    t = dict(tables, _attr=str(c["group_attribute"].iloc[0]))
    points = []
    overall_worst = []
    for key in primary_slices(c):
        sp = _slice_points(t, key, alpha)
        if sp:
            points.append("\n".join(sp))
            grp = c[(c["encoder"] == key[0]) & (c["task"] == key[1]) & (c["probe"] == key[2]) &
                    (c["metric"] == key[3]) & c["statistic"].str.startswith("group:")]
            worst = grp.loc[grp.groupby("layer_index")["estimate"].idxmax(), "statistic"].str[6:]
            overall_worst += list(worst)
    if overall_worst:
        vc = pd.Series(overall_worst).value_counts()
        top = ", ".join(f"{g} ({n})" for g, n in vc.head(3).items())
        points.insert(0, f"Across {len(points)} probe task(s) and every layer, the groups most "
                         f"often worst are: {top} (number of task x layer cells in which the "
                         "group has the highest error).")
    ds = tables.get("dispersion_summary")
    if ds is not None and len(ds):
        d = ds[ds["accuracy_source"] == "nearest_centroid"] if "accuracy_source" in ds else ds
        neg = d[d["ci_high"] < 0]
        points.append(f"Random variance (phone-embedding dispersion): speakers whose phone "
                      f"embeddings are more spread out have clearly lower phone accuracy "
                      f"(Spearman CI below 0) at {len(neg)} of {len(d)} layers"
                      + (f" ({_layers(neg['layer'])})." if len(neg) else "."))
    return points
