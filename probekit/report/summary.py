"""Plain-words summary of a bias analysis (the tables ``probekit analyze`` writes).

The one prose generator of probekit: the report's summary and the analysis folder's
``findings.md`` (:func:`findings_note`, which :meth:`probekit.bias.analysis.Analysis.save`
writes when given) both come from :func:`summary_points`. Every sentence is built only from
statistics whose error rates the calibration benchmark checks (``benchmarks/calibration.py``):
family-wise-controlled group and gap tests, the joint-permutation test of the error-gap
relationship, the own-vs-broad test with the training draw as a unit, the typing rule, and
speaker-bootstrap intervals of group errors. Descriptive numbers (the layer of least error,
the largest debiased between-group variance) say how often a resample picks the same layer.
"Gap" means max - min only; the debiased measure is called by its name.

Every finding it states is read from the tables' ``decision`` columns
(:mod:`probekit.bias.decision`), never re-tested here: the figure marks, the bold cells and
the sentences name the same cells at the same level.
"""

from __future__ import annotations

import pandas as pd

from probekit.bias.decision import decide, has_decisions, report_slices
from probekit.bias.metrics import group_of

__all__ = ["summary_points", "primary_slices", "task_words", "with_decisions",
           "family_points", "findings_note", "interval_label"]


def task_words(task: str) -> str:
    """How prose names a task (:attr:`probekit.probes.tasks.Task.words`)."""
    from probekit.probes.tasks import get_task  # not at import: probekit.probes loads torch
    return get_task(task).words


def interval_label(alpha: float) -> str:
    """``"95%"`` for ``alpha`` 0.05: the level every interval label in the report states."""
    return f"{100 * (1 - alpha):g}%"


def findings_note(an) -> str:
    """The analysis folder's findings note: the report's plain-words summary of ``an``'s
    tables (:func:`summary_points`) with the analysis's notes; pass it to
    :meth:`probekit.bias.analysis.Analysis.save` as ``findings``."""
    head = ["# Bias analysis findings", "",
            "Statements hold for this results table's corpus, speakers and probes only; on a "
            "synthetic corpus they describe the synthesis, not real accents. Intervals resample "
            "splits and speakers; p-values permute group labels across speakers or treat the "
            "training draw as a unit; family-wise control as stated (docs/concepts.md).", ""]
    body = summary_points(an.tables, alpha=an.alpha, notes=an.notes)
    return "\n".join(head + [f"- {p}" for p in body]) + "\n"


def primary_slices(curves: pd.DataFrame) -> list[tuple]:
    """(encoder, task, probe, metric) slices, one metric per task (``cer`` for ASR: the
    character rate is the stabler of the two), tasks in a fixed reading order
    (:func:`probekit.bias.decision.report_slices`)."""
    return list(dict.fromkeys(report_slices(curves)))


def with_decisions(tables: dict[str, pd.DataFrame], alpha: float = 0.05) -> dict:
    """The tables with their decision columns: as the analysis wrote them, or (an analysis
    folder written before the columns existed) taken now by the same
    :func:`probekit.bias.decision.decide`."""
    return tables if has_decisions(tables) else decide(tables, alpha=alpha)


def _layers(xs) -> str:
    xs = list(xs)
    return ", ".join(map(str, xs)) if xs else "none"


def _sel(t: pd.DataFrame, key) -> pd.DataFrame:
    enc, task, probe, metric = key
    return t[(t["encoder"] == enc) & (t["task"] == task) & (t["probe"] == probe) &
             (t["metric"] == metric)]


def _pct(x) -> str:
    return f"{100 * x:.0f}%" if x == x else "n/a"


def _level(df: pd.DataFrame, default: float) -> float:
    lv = df["decision_level"].dropna() if "decision_level" in df else pd.Series(dtype=float)
    return float(lv.iloc[0]) if len(lv) else default


def _decided(df: pd.DataFrame) -> pd.Series:
    return df["decision"].fillna(False).astype(bool)


def _not_detected(t, key, family: str) -> str:
    """" (80% power at ...)" from the decision families' detectable effect, when known."""
    fam = t.get("decision_families")
    if fam is None or "detectable_effect" not in fam:
        return ""
    f = _sel(fam, key)
    f = f[f["family"] == family]
    if f.empty:
        return ""
    x = f["detectable_effect"].iloc[0]
    note = str(f["detectable_effect_note"].iloc[0]) if "detectable_effect_note" in f else ""
    if x == x:
        return (f" (not detected; this design had 80% power only for {note or 'an effect of'} "
                f"{x:.2f} or more, absolute {key[3]} rate)")
    return f" (not detected; 80% power: {note})" if note and note != "nan" else ""


def _slice_points(t, key, alpha) -> list[str]:
    enc, task, probe, metric = key
    c = _sel(t["layer_curves"], key)
    ov = c[c["statistic"] == "overall"].sort_values("layer_index")
    wf = c[c["statistic"] == "max_abs_t"].sort_values("layer_index")
    grp = c[c["statistic"].map(group_of).notna()]
    if ov.empty or grp.empty:
        return []
    lvl = _level(grp, alpha)
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
    head += (f"error is lowest at {best.layer} ({best.estimate:.3f}), "
             f"{interval_label(alpha)} CI "
             f"{best.ci_low:.3f}-{best.ci_high:.3f}"
             + (f", the lowest layer in {_pct(srow.min_error_share)} of resamples" if srow is not None else "")
             + ".")
    sig = wf[_decided(wf)]
    head += (f" Group means differ by more than speaker variation produces (max |t| over groups, "
             f"family-wise over {L} layers at {_level(wf, lvl):.3g}) at {len(sig)} of {L} layers"
             + (f" ({_layers(sig['layer'])})." if len(sig) else
                _not_detected(t, key, "unequal means") + "."))
    flagged = grp[_decided(grp)]
    if len(flagged):
        by = flagged.groupby("statistic")["layer"].apply(list)
        head += (f" Worse than the other groups (family-wise over layers x groups at {lvl:.3g}): "
                 + "; ".join(f"**{group_of(g)}** at {_layers(ls_)}" for g, ls_ in by.items()) + ".")
    else:
        head += (f" No single group is found worse than the rest at any layer (family-wise at "
                 f"{lvl:.3g}){_not_detected(t, key, 'worse')}.")
    pts = [head]
    if srow is not None and srow.reason == "" and srow.spearman == srow.spearman:
        tracks = bool(srow.decision) if "decision" in srow.index else srow.p_value <= alpha
        tl = float(srow.decision_level) if "decision_level" in srow.index else alpha
        pts.append(f"  Does the between-group variance track the error across layers? "
                   f"Spearman between the error and the debiased between-group variance "
                   f"{srow.spearman:+.2f}; parity would give "
                   f"{srow.null_mean:+.2f} on average here (joint permutation p "
                   f"{srow.p_value:.3f}, level {tl:.3g}): "
                   + (("groups differ more where the error is larger." if srow.spearman > srow.null_mean
                       else "groups differ more where the error is smaller.") if tracks
                      else (_not_detected(t, key, "trend").strip(" ()") or "not detected") + ".")
                   + f" Largest debiased between-group variance at {srow.max_bias_layer} (chosen in "
                     f"{_pct(srow.max_bias_share)} of resamples).")
    elif srow is not None and srow.reason:
        pts.append(f"  Between-group variance vs error across layers: not assessed "
                   f"({srow.reason}).")
    ty = t.get("typing")
    if ty is not None:
        ty = _sel(ty, key)
        if len(ty):
            tl = _level(ty, lvl)
            labelled = ty[_decided(ty)]
            src = ty["random_source"].iloc[0]
            ref = ty["reference"].iloc[0]
            if labelled.empty:
                pts.append(f"  Systematic or random? No group is typed at any layer "
                           f"({len(ty)} group x layer cells; each family at {tl:.3g}, "
                           f"family-wise){_not_detected(t, key, 'systematic')}."
                           + ("" if src == "embedding" else " Random: not assessed (no "
                              "embedding store for this encoder)."))
            else:
                parts = []
                for g, y in labelled.groupby("group"):
                    by = y.groupby("type")["layer"].apply(list)
                    parts.append(f"{g}: " + "; ".join(f"{k} at {_layers(v)}" for k, v in by.items()))
                pts.append("  Systematic or random? " + ". ".join(parts) +
                           f". (Systematic: the group is worse than the rest and its own "
                           f"probe closes more of its error, against the '{ref}' probe, than "
                           "the other groups' own probes close theirs; random: the group is "
                           "worse, its speakers' phone embeddings are more spread out and the "
                           "spread goes with the probe's own errors"
                           + ("" if src == "embedding" else " - not assessed here: no embedding store")
                           + f"; each family tested family-wise at {tl:.3g}.)")
    ob = t.get("own_vs_broad")
    if ob is not None:
        o = _sel(ob, key)
        o = o[(o["group"] == "(pooled)")]
        if "decision_level" in o:
            o = o[o["decision_level"].notna()]
        if len(o):
            ref = o["reference"].iloc[0]
            wins = o[_decided(o)]
            if o["n_splits"].max() < 2:
                pts.append("  Own-group vs broad probes: one split only, so the training draw "
                           "cannot be assessed (run more probe seeds).")
            else:
                pts.append(f"  Own-group probes beat the '{ref}' probe on their own speakers "
                           f"(pooled over groups, speaker x split cluster-robust t, Holm over "
                           f"layers at {_level(o, lvl):.3g}) at {len(wins)} of {len(o)} layers"
                           + (f": {_layers(wins['layer'])}." if len(wins) else
                              _not_detected(t, key, "own vs broad") + "."))
    if n_split < 8:
        pts.append(f"  How sure: as few as {n_split} test speakers of a group per split; "
                   "per-group intervals are wide and small gaps go undetected.")
    return pts


def family_points(tables: dict[str, pd.DataFrame]) -> list[str]:
    """One sentence per encoder: its findings' family, level and guarantee (and a level the
    permutation count cannot reach)."""
    fam = tables.get("decision_families")
    if fam is None or fam.empty:
        return []
    out = []
    for enc, f in fam.groupby("encoder", sort=True):
        a, n, lv = float(f["alpha"].iloc[0]), int(f["n_families"].iloc[0]), float(f["level"].iloc[0])
        s = (f"Findings about **{enc}** are one family: {n} test families (worse group, unequal "
             f"means, trend, own vs broad, typing, per task) each at {a:g}/{n} = {lv:.3g} "
             f"(Bonferroni), so the chance of any false finding about {enc} is at most {a:g}; "
             "other encoders do not change its level.")
        bad = f[~f["attainable"].astype(bool)]
        if len(bad):
            s += (f" Warning: {lv:.3g} is below the smallest p-value the permutation count can "
                  f"reach ({bad['min_attainable_p'].min():.3g}) for "
                  f"{', '.join(sorted(set(bad['family'])))}: these cannot find anything here; "
                  "rerun the analysis with more permutations (--n-perm).")
        out.append(s)
    return out


def summary_points(tables: dict[str, pd.DataFrame], *, alpha: float = 0.05,
                   notes: list[str] | None = None) -> list[str]:
    """Markdown paragraphs, most important first. Empty tables give a one-line note.

    Every finding is read from the tables' decision columns (``alpha`` only fills them in for
    an analysis written before they existed)."""
    notes = list(notes or [])
    tables = {n: t for n, t in tables.items() if len(t)}  # an empty table says nothing
    if "layer_curves" not in tables:
        return (["The analysis produced no layer curves (no probe was trained on every group), "
                 "so there is nothing to summarise; see the tables below."]
                + [f"Note: {n}" for n in notes])
    t = with_decisions(tables, alpha)
    c = t["layer_curves"]
    points = []
    flagged = []
    said: dict = {}  # a sentence identical across one encoder's slices ("How sure") once
    for key in primary_slices(c):
        sp = _slice_points(t, key, alpha)
        seen = said.setdefault(key[0], set())  # per encoder: adding one changes no other's text
        sp = sp[:1] + [x for x in sp[1:] if x not in seen]
        seen.update(sp[1:])
        if sp:
            points.append("\n".join(sp))
            g = _sel(c, key)
            g = g[g["statistic"].map(group_of).notna() & _decided(g)]
            flagged += list(g["statistic"].map(group_of))
    attr = str(c["group_attribute"].iloc[0])
    if flagged:
        vc = pd.Series(flagged).value_counts()
        top = ", ".join(f"{g} ({n})" for g, n in vc.head(3).items())
        lead = (f"Across {len(points)} probe task(s), the {attr} groups most often "
                f"found worse than the rest are: {top} (task x layer cells).")
    else:
        lead = f"Across {len(points)} probe task(s), no {attr} group is found worse than the rest at any layer."
    points[:0] = [lead] + family_points(t)
    cm = tables.get("count_model")
    if cm is not None and "status" in cm:
        bad = cm[cm["status"].astype(str) != "ok"]
        if len(bad):
            notes.append(f"count model: {len(bad)} of {len(cm)} cells not fitted "
                         f"({bad['status'].iloc[0]})")
    points += [f"Note: {n}" for n in notes]
    return points
