"""The report's before/after section: verdicts, the leakage guard, the WER table with
speaker-bootstrap intervals, and the paired probe comparison per layer (from the folder that
:meth:`probekit.bias.compare.Comparison.save` writes for ``probekit compare`` and a study's
compare stage alike). Interval labels and bold cells follow the comparison's level."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from probekit.bias.metrics import group_of, parse_statistic
from probekit.bias.figures import STATISTIC_LABELS

__all__ = ["before_after_section", "wer_cells", "probe_change_tables", "degenerate_sentences"]


def _ci(est, lo, hi, digits=1) -> str:
    if pd.isna(lo):
        return f"{est:.{digits}f}"
    return f"{est:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def wer_cells(wt: pd.DataFrame, trained=None) -> pd.DataFrame:
    """Model x statistic table of ``WER [ci_low, ci_high]`` in percent (the table holds
    fractions: :func:`probekit.bias.wer.wer_table`), Δ columns (``change_from`` set) with p;
    a Δ macro over other groups than ``trained`` is the untrained groups' macro."""
    cols, rows = [], {}
    trained = None if trained is None else ",".join(trained)
    for r in wt.itertuples():
        change = isinstance(r.change_from, str) and r.change_from != ""
        kind, g, _ = parse_statistic(r.statistic)
        label = g if g is not None else {"difference": "gap"}.get(kind, kind)
        if change and kind == "macro" and trained is not None and str(r.groups) != trained:
            label = "untrained macro"
        label = f"Δ {label}" if change else label
        est, lo, hi = (100 * x for x in (r.estimate, r.ci_low, r.ci_high))
        cell = _ci(est, lo, hi)
        if change:
            cell = f"{est:+.1f} [{lo:+.1f}, {hi:+.1f}] p={r.p_value:.3f}"
        if label not in cols:
            cols.append(label)
        rows.setdefault(r.model, {})[label] = cell
    t = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=cols).fillna("")
    t.index.name = "model"
    return t


def probe_change_tables(cmp: pd.DataFrame, statistic: str = "difference") -> list:
    """One (title, layer table) per (pair, task, probe, metric): before, after, change with
    its per-layer and its simultaneous (over layers) interval, raw and Holm-adjusted p (bold:
    the comparison's ``decision``), the test speakers and splits behind it, and ``note`` (why
    a row says little, when it does)."""
    from probekit.report.summary import interval_label

    out = []
    sub = cmp[cmp["statistic"] == statistic]
    lvl = interval_label(float(sub["decision_level"].iloc[0])) if len(sub) else ""
    fmt = lambda c, lo, hi: "" if pd.isna(lo) else f"{c:+.3f} [{lo:+.3f}, {hi:+.3f}]"  # noqa: E731
    for key, s in sub.groupby(["after", "before", "task", "probe", "metric"], sort=False):
        s = s.sort_values("layer_index")
        sim = (s["ci_low_fwer"], s["ci_high_fwer"]) if "ci_low_fwer" in s else (s["ci_low"] * np.nan,) * 2
        t = pd.DataFrame({
            "before": s["before_value"].map("{:.3f}".format).to_numpy(),
            "after": s["after_value"].map("{:.3f}".format).to_numpy(),
            f"change [{lvl} CI]": [fmt(c, lo, hi) for c, lo, hi in
                                   zip(s["change"], s["ci_low"], s["ci_high"])],
            "simultaneous CI (layers)": [fmt(c, lo, hi) for c, lo, hi in zip(s["change"], *sim)],
            "p": s["p_value"].map(lambda p: "" if pd.isna(p) else f"{p:.3g}").to_numpy(),
            "p (FWER, Holm over layers)": ["" if pd.isna(p) else
                                           (f"**{p:.3g}**" if d is True else f"{p:.3g}")
                                           for p, d in zip(s["p_fwer"], s["decision"].map(
                                               lambda x: bool(x) if x == x else False))],
            "speakers": s["n_speakers"].to_numpy(),
            "splits": s["n_splits"].to_numpy() if "n_splits" in s else "",
            "note": s["note"].fillna("").to_numpy() if "note" in s else ""},
            index=pd.Index(s["layer"].to_numpy(), name="layer"))
        a, b, task, probe, metric = key
        out.append((f"{a} vs {b}: {task} / {probe} ({metric}), change of the "
                    f"{STATISTIC_LABELS.get(statistic, statistic)}", t))
    return out


def degenerate_sentences(cmp: pd.DataFrame) -> list[str]:
    """One sentence per (pair, task, probe, reason) with degenerate rows, naming the
    statistics, the layers and why (the ``note`` column of
    :func:`probekit.bias.change.split_change`)."""
    if "note" not in cmp:
        return []
    d = cmp[cmp["note"].fillna("") != ""]
    out = []
    for (a, b, task, probe, note), s in d.groupby(["after", "before", "task", "probe", "note"],
                                                  sort=False):
        stats = [f"group {group_of(x)}" if group_of(x) is not None else x
                 for x in dict.fromkeys(s["statistic"])]
        layers = ", ".join(map(str, dict.fromkeys(s.sort_values("layer_index")["layer"])))
        out.append(f"{a} vs {b}, {task} / {probe}, {', '.join(stats)} at {layers}: {note}; "
                   "the change there is not evidence either way.")
    return out


def before_after_section(folder: str | Path | None, out: str | Path) -> tuple[list, list]:
    """(markdown lines, html lines) of the before/after section; empty when no folder."""
    from probekit.bias.compare import Comparison
    from probekit.report.html import _html_table, _md_inline, _md_table
    from probekit.report.summary import interval_label
    from probekit.report.verdicts import comparison_verdicts

    if not folder or not Path(folder).is_dir():
        return [], []
    folder = Path(folder)
    c = Comparison.load(folder)
    v, n = c.info, c.n_table
    lvl = interval_label(c.alpha)
    probes = probe_change_tables(c.table, c.statistic)
    degenerate = degenerate_sentences(c.table)
    ncell = n.pivot_table(index=["after", "task", "probe"], columns="group", values="n_speakers",
                          aggfunc="first")
    ncell = ncell.reset_index().set_index("after")
    fig = folder / "figures" / f"change_{c.statistic}.png"
    trained = (f" (fine-tuned on {', '.join(v['train_groups'])})" if v.get("train_groups")
               else "")
    split = f" Fine-tuning split: {v['split']}." if v.get("split") else ""
    intro = (f"Base encoder {v.get('base', '?')} against the adapted encoders "
             f"{', '.join(v.get('adapted', []))}{trained}.{split} "
             "Base and adapted encoders are probed on the same held-out speakers with the "
             "same probe seeds (one split each); change = after - before, paired by split "
             "and speaker. Each encoder's probes are retrained in every split, so the "
             "intervals and p-values count the training draw as well as the speakers: "
             "two-way (split x speaker) cluster-robust t (delta method for the gaps); "
             f"FWER: Holm over layers at {c.alpha:g}, with the matching simultaneous interval, "
             "which is the one a verdict quotes when no layer passes.")
    what = STATISTIC_LABELS.get(c.statistic, c.statistic)
    caption = (f"Change of the {what} per layer (after - before) with its {lvl} two-way "
               f"(split x speaker) interval; filled: Holm-adjusted p <= {c.alpha:g}.")
    verdicts = comparison_verdicts(c)
    md = ["## Before / after fine-tuning", "", intro, "", "**Leakage guard.**", ""]
    md += [f"- {g}" for g in c.guard] + ["", "**Verdicts.**", ""]
    md += [f"- {x}" for x in verdicts] + [""]
    if degenerate:
        md += ["**Degenerate rows.**", ""] + [f"- {x}" for x in degenerate] + [""]
    wer = wer_note = None
    if c.wer_table is not None:
        wer = wer_cells(c.wer_table, v.get("train_groups"))
        wer_note = (f"WER (%) on {v.get('n_test_utterances_wer', '?')} test utterances; [{lvl} "
                    "speaker-bootstrap interval, within group]; macro and gap over the trained "
                    "groups; Δ: paired change against zero-shot with its paired interval and "
                    "swap-test p.")
        md += ["### WER by group", "", wer_note, "", _md_table(wer), ""]
    if fig.is_file():
        rel = Path(__import__("os").path.relpath(fig, out)).as_posix()
        md += [f"![change of the {what} per layer]({rel})", "", f"*{caption}*", ""]
    for title, t in probes:
        md += [f"### {title}", "", _md_table(t), ""]
    md += ["### Test speakers per group (n per cell)", "", _md_table(ncell), ""]
    e = lambda s: html.escape(s, quote=False)  # noqa: E731
    h = ['<h2 id="before-after">Before / after fine-tuning</h2>', f"<p>{e(intro)}</p>",
         "<p><strong>Leakage guard.</strong></p><ul>"]
    h += [f"<li>{e(g)}</li>" for g in c.guard] + ["</ul><p><strong>Verdicts.</strong></p><ul>"]
    h += [f"<li>{_md_inline(x)}</li>" for x in verdicts] + ["</ul>"]
    if degenerate:
        h += ["<p><strong>Degenerate rows.</strong></p><ul>"]
        h += [f"<li>{e(x)}</li>" for x in degenerate] + ["</ul>"]
    if wer is not None:
        h += [f'<h3>WER by group</h3><p class="muted">{e(wer_note)}</p>{_html_table(wer)}']
    if fig.is_file():
        b64 = base64.b64encode(fig.read_bytes()).decode("ascii")
        h.append(f'<figure><img alt="change of the {e(what)}" '
                 f'src="data:image/png;base64,{b64}"><figcaption>{e(caption)}</figcaption>'
                 "</figure>")
    for title, t in probes:
        h.append(f"<h3>{e(title)}</h3>{_html_table(t)}")
    h.append(f"<h3>Test speakers per group (n per cell)</h3>{_html_table(ncell)}")
    return md, h
