"""The before/after verdicts: one sentence per compared curve, read from the comparison's
``decision`` column (:class:`probekit.bias.compare.Comparison`), never re-tested here.

``probekit compare`` prints them and the report's before/after section lists them; both come
from :func:`comparison_verdicts`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from probekit.bias.figures import STATISTIC_LABELS
from probekit.report.summary import interval_label

__all__ = ["comparison_verdicts", "probe_words"]

def probe_words(task: str, probe: str) -> str:
    """``"phone-probe (lda)"``: a task's probe as a verdict names it
    (:meth:`probekit.probes.tasks.Task.probe_words`)."""
    from probekit.probes.tasks import get_task  # not at import: probekit.probes loads torch

    return get_task(task).probe_words(probe)


def comparison_verdicts(cmp) -> list[str]:
    """One sentence per (compared pair, task, probe, metric, group attribute) about the
    comparison's statistic, in the comparison's order."""
    t = cmp.table
    keys = [c for c in ("after", "before", "task", "probe", "metric", "group_attribute")
            if c in t.columns]
    out = []
    for key, sub in t.groupby(keys, sort=False):
        k = dict(zip(keys, key))
        who = (f"{k['after']} vs {k['before']}, {probe_words(k['task'], k['probe'])}"
               f"{', ' + k['metric'] if k.get('metric') not in (None, 'error') else ''}")
        out.append(_verdict(sub, cmp.statistic, who))
    return out


def _verdict(sub: pd.DataFrame, statistic: str, who: str) -> str:
    """The sentence for one curve. It states the family and level of its decision and quotes
    the interval of that same family: the per-layer interval of a layer that passes (Holm's
    p_fwer <= alpha implies its raw p <= alpha, so that interval excludes 0), else the
    simultaneous interval (Bonferroni over the layers, which then includes 0); per-layer
    intervals that exclude 0 without passing are named with the reason."""
    s = sub[sub["statistic"] == statistic].sort_values("layer_index")
    if s.empty:
        return f"{who}: no {statistic} rows"
    what = STATISTIC_LABELS.get(statistic, statistic)
    L = len(s)
    alpha = float(s["decision_level"].iloc[0])
    lvl = interval_label(alpha)
    if s["p_value"].isna().all():
        why = next((n for n in s["note"] if isinstance(n, str) and n), "no test could be made")
        return f"{who}: the change of the {what} is not assessed: {why}."
    sig = s[s["decision"].fillna(False).astype(bool)]

    def one(r):
        word = "fell" if r.change < 0 else "rose"
        if statistic == "ratio":
            word = "rose (toward parity)" if r.change > 0 else "fell (away from parity)"
        return (f"at {r.layer} {word} by {abs(r.change):.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] "
                f"(from {r.before_value:.3f} to {r.after_value:.3f}; p = {r.p_value:.3g}, "
                f"Holm over {L} layers {r.p_fwer:.3g})")

    family = (f"family-wise over {L} layers at {alpha:g}; each change with its {lvl} "
              "interval; the probes' training draw (splits) and the speakers both counted")
    if len(sig):
        parts = "; ".join(one(r) for r in sig.itertuples())
        rest = (f"; at the other {L - len(sig)} layers the change is within what the "
                "training draw and the speakers' variation produce" if len(sig) < L else "")
        return f"{who}: the {what} {parts}{rest} ({family})."
    big = s.iloc[int(np.nanargmax(np.abs(s["change"].to_numpy())))] if s["change"].notna().any() \
        else s.iloc[0]
    raw = s[(s["ci_low"] > 0) | (s["ci_high"] < 0)]
    why = ""
    if len(raw):
        why = (f" The per-layer {lvl} interval excludes 0 at {', '.join(map(str, raw['layer']))}"
               f", but with {L} layers tested that is within what chance produces at a "
               f"family-wise {alpha:g} (Holm p >= {raw['p_fwer'].min():.3g}).")
    return (f"{who}: at no layer is the change of the {what} distinguishable from the "
            f"training draw and the speakers' variation (family-wise over {L} layers at "
            f"{alpha:g}; largest change {big.change:+.3f} at {big.layer}, simultaneous "
            f"interval [{big.ci_low_fwer:+.3f}, {big.ci_high_fwer:+.3f}], Holm p = "
            f"{big.p_fwer:.3g}).{why} This is not evidence that the gap is unchanged: the "
            "interval says how large a change the data leave possible.")
