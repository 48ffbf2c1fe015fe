"""Plain-words summary of a bias analysis (the tables ``probekit analyze`` writes).

The one prose generator of probekit: the report's summary and the analysis folder's
``findings.md`` both come from :func:`summary_points`. Every sentence is built only from
statistics whose error rates the calibration benchmark checks (``benchmarks/calibration.py``):
family-wise-controlled group and gap tests, the joint-permutation test of the error-gap
relationship, the own-vs-broad test with the training draw as a unit, the typing rule, and
speaker-bootstrap intervals of group errors. Descriptive numbers (the layer of least error,
the largest debiased gap) say how often a resample picks the same layer.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["load_tables", "summary_points", "TASK_WORDS", "primary_slices", "task_words",
           "TABLES"]

#: How a task's probe is described in prose.
TASK_WORDS = {"phone": "phone recognition", "speaker": "speaker identification",
              "asr": "transcription (CTC)"}

TABLES = ("layer_curves", "layer_summary", "typing", "own_vs_broad", "transfer_generalisation",
          "transfer_matrix", "count_model", "dispersion_speakers")


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
                t = pd.read_csv(p, keep_default_na=True)
            except pd.errors.EmptyDataError:
                continue
            if len(t):
                if "reason" in t:
                    t["reason"] = t["reason"].astype(object).fillna("")
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
    return ", ".join(map(str, xs)) if xs else "none"


def _sel(t: pd.DataFrame, key) -> pd.DataFrame:
    enc, task, probe, metric = key
    return t[(t["encoder"] == enc) & (t["task"] == task) & (t["probe"] == probe) &
             (t["metric"] == metric)]


def _pct(x) -> str:
    return f"{100 * x:.0f}%" if x == x else "n/a"


def _slice_points(t, key, alpha) -> list[str]:
    enc, task, probe, metric = key
    c = _sel(t["layer_curves"], key)
    ov = c[c["statistic"] == "overall"].sort_values("layer_index")
    wf = c[c["statistic"] == "max_abs_t"].sort_values("layer_index")
    grp = c[c["statistic"].str.startswith("group:")]
    if ov.empty or grp.empty:
        return []
    L = len(ov)
    n_split = int(grp["n_per_split"].min())
    n_dist = int(grp["n_speakers"].min())
    K = int(ov["n_splits"].iloc[0])
    head = (f"**{enc}, {task_words(task)}** ({probe} probe, {metric}; {K} split(s), at least "
            f"{n_split} test speakers per group per split, {n_dist} distinct): ")
    if ov["estimate"].max() == 0:
        return [head + "no errors at any layer, so there is no gap to find."]
    ls = t.get("layer_summary")
    srow = None
    if ls is not None:
        s = _sel(ls, key)
        s = s[s["bias_measure"] == "between_var"]
        srow = s.iloc[0] if len(s) else None
    best = ov.loc[ov["estimate"].idxmin()]
    head += (f"error is lowest at {best.layer} ({best.estimate:.3f}), 95% CI "
             f"{best.ci_low:.3f}-{best.ci_high:.3f}"
             + (f", the lowest layer in {_pct(srow.min_error_share)} of resamples" if srow is not None else "")
             + ".")
    sig = wf[wf["p_fwer"] <= alpha]
    head += (f" Group means differ by more than speaker variation produces (max |t| over groups, "
             f"family-wise over {L} layers at {alpha:.3g}) at {len(sig)} of {L} layers"
             + (f" ({_layers(sig['layer'])})." if len(sig) else "."))
    flagged = grp[grp["p_fwer"] <= alpha]
    if len(flagged):
        by = flagged.groupby("statistic")["layer"].apply(list)
        head += (" Worse than the other groups (family-wise over layers x groups): "
                 + "; ".join(f"**{g[6:]}** at {_layers(ls_)}" for g, ls_ in by.items()) + ".")
    else:
        head += " No single group is worse than the rest at any layer after family-wise control."
    pts = [head]
    if srow is not None and srow.reason == "" and srow.spearman == srow.spearman:
        tracks = srow.p_value <= alpha
        pts.append(f"  Does the gap track the error across layers? Spearman between the "
                   f"error and the debiased gap {srow.spearman:+.2f}; parity would give "
                   f"{srow.null_mean:+.2f} on average here (joint permutation p "
                   f"{srow.p_value:.3f}, level {alpha:.3g}): "
                   + (("the gap is larger where the error is larger." if srow.spearman > srow.null_mean
                       else "the gap is larger where the error is smaller.") if tracks
                      else "no relationship beyond what parity produces.")
                   + f" Largest debiased gap at {srow.max_bias_layer} (chosen in "
                     f"{_pct(srow.max_bias_share)} of resamples).")
    elif srow is not None and srow.reason:
        pts.append(f"  Gap vs error across layers: not assessed ({srow.reason}).")
    ty = t.get("typing")
    if ty is not None:
        ty = _sel(ty, key)
        if len(ty):
            from probekit.bias.decomposition import type_at_level

            lvl = float(ty["level"].iloc[0]) * alpha / t["_alpha"]
            ty = type_at_level(ty, lvl)
            labelled = ty[ty["type"] != "neither"]
            src = ty["random_source"].iloc[0]
            ref = ty["reference"].iloc[0]
            if labelled.empty:
                pts.append(f"  Systematic or random? No group is typed at any layer "
                           f"({len(ty)} group x layer cells; each family at {lvl:.3f}, "
                           "family-wise)."
                           + ("" if src == "embedding" else " Random: not assessed (no "
                              "embedding store for this encoder)."))
            else:
                parts = []
                for g, y in labelled.groupby("group"):
                    by = y.groupby("type")["layer"].apply(list)
                    parts.append(f"{g}: " + "; ".join(f"{k} at {_layers(v)}" for k, v in by.items()))
                pts.append("  Systematic or random? " + ". ".join(parts) +
                           f". (Systematic: the group's own probe beats the '{ref}' probe on "
                           "its held-out speakers; random: its speakers' phone embeddings are "
                           "more spread out and spread goes with errors"
                           + ("" if src == "embedding" else " - not assessed here: no embedding store")
                           + f"; each family tested family-wise at {lvl:.3f}.)")
    ob = t.get("own_vs_broad")
    if ob is not None:
        o = _sel(ob, key)
        o = o[o["group"] == "(pooled)"]
        if len(o):
            ref = "all-matched" if (o["reference"] == "all-matched").any() else "all"
            o = o[o["reference"] == ref]
            from probekit.bias.inference import holm
            p = holm(o["p_less"].to_numpy(float))
            wins = o[p <= alpha]
            if o["n_splits"].max() < 2:
                pts.append("  Own-group vs broad probes: one split only, so the training draw "
                           "cannot be assessed (run more probe seeds).")
            else:
                pts.append(f"  Own-group probes beat the '{ref}' probe on their own speakers "
                           f"(pooled over groups, speaker x split cluster-robust t, Holm over "
                           f"layers) at {len(wins)} of {len(o)} layers"
                           + (f": {_layers(wins['layer'])}." if len(wins) else "."))
    if n_split < 8:
        pts.append(f"  How sure: as few as {n_split} test speakers of a group per split; "
                   "per-group intervals are wide and small gaps go undetected.")
    return pts


def summary_points(tables: dict[str, pd.DataFrame], *, alpha: float = 0.05,
                   notes: list[str] | None = None) -> list[str]:
    """Markdown paragraphs, most important first. Empty tables give a one-line note."""
    notes = list(notes or [])
    if "layer_curves" not in tables:
        return (["The analysis produced no layer curves (no probe was trained on every group), "
                 "so there is nothing to summarise; see the tables below."]
                + [f"Note: {n}" for n in notes])
    c = tables["layer_curves"]
    slices = primary_slices(c)
    # family-wise over the tasks of the summary too: Bonferroni over its slices
    a_task = alpha / max(len(slices), 1)
    t = dict(tables, _alpha=alpha)
    points = []
    flagged = []
    for key in slices:
        sp = _slice_points(t, key, a_task)
        if sp:
            points.append("\n".join(sp))
            g = _sel(c, key)
            g = g[g["statistic"].str.startswith("group:") & (g["p_fwer"] <= a_task)]
            flagged += list(g["statistic"].str[6:])
    attr = str(c["group_attribute"].iloc[0])
    if flagged:
        vc = pd.Series(flagged).value_counts()
        top = ", ".join(f"{g} ({n})" for g, n in vc.head(3).items())
        points.insert(0, f"Across {len(points)} probe task(s), the {attr} groups most often "
                         f"found worse than the rest are: {top} (task x layer cells; "
                         f"family-wise over layers x groups x tasks at {alpha:g}).")
    else:
        points.insert(0, f"Across {len(points)} probe task(s), no {attr} group is found worse "
                         f"than the rest at any layer (family-wise over layers x groups x tasks "
                         f"at {alpha:g}).")
    cm = tables.get("count_model")
    if cm is not None and "status" in cm:
        bad = cm[cm["status"].astype(str) != "ok"]
        if len(bad):
            notes.append(f"count model: {len(bad)} of {len(cm)} cells not fitted "
                         f"({bad['status'].iloc[0]})")
    points += [f"Note: {n}" for n in notes]
    return points
