"""The before/after WER table: WER by group, macro-WER and the max - min gap per model, with
speaker-bootstrap intervals, and paired changes against a reference model.

A use of the one group-statistics core (:func:`probekit.bias.metrics.group_statistics`) with
``weighting="items"``: a group's WER is its corpus-level WER (word errors summed over its
utterances / reference words summed), seed 000's definition, so a speaker counts by its
words (docs/concepts.md, "Weightings"). The rows are named accordingly (``pooled_group:<g>``,
``pooled_macro``, ``pooled_difference``, ``pooled_overall``). Every rate is a fraction in
[0, 1] (above 1 only through insertions); percent is for rendering only.

Word errors are counted once, by :func:`probekit.text.edit_counts` (the ``jiwer`` counter the
CTC probe and the fine-tuning evaluation use).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from probekit.bias.errors import BiasInputError
from probekit.bias.metrics import group_statistics, statistic_name
from probekit.bias.paired import paired_change
from probekit.bias.resample import percentile_ci, speaker_bootstrap_indices
from probekit.text import edit_counts

__all__ = ["speaker_word_errors", "wer_table", "WEIGHTING", "WER_COLUMNS"]

#: A group's WER pools its words (corpus-level WER per group).
WEIGHTING = "items"
#: Columns of :func:`wer_table`.
WER_COLUMNS = ("model", "statistic", "weighting", "groups", "change_from", "estimate",
               "ci_low", "ci_high", "p_value", "n_speakers")


def speaker_word_errors(transcripts: pd.DataFrame, attribute: str = "accent") -> pd.DataFrame:
    """Per-speaker word errors and reference words: ``speaker, <attribute>, errors, words``
    (from the normalised ``ref_norm`` / ``hyp_norm`` columns; empty references skipped)."""
    missing = [c for c in ("speaker", attribute, "ref_norm", "hyp_norm") if c not in transcripts]
    if missing:
        raise BiasInputError(f"transcripts lack the column(s) {missing}")
    err, n = edit_counts(transcripts["ref_norm"].astype(str).tolist(),
                         transcripts["hyp_norm"].fillna("").astype(str).tolist())
    keep = n > 0
    d = pd.DataFrame({"speaker": transcripts["speaker"].astype(str).to_numpy(),
                      attribute: transcripts[attribute].to_numpy(),
                      "errors": np.where(keep, err, 0), "words": n})
    return d.groupby(["speaker", attribute], sort=True, as_index=False)[["errors", "words"]].sum()


def _row(model, kind, g, groups, change_from, est, lo, hi, p, n) -> dict:
    return {"model": model, "statistic": statistic_name(kind, g, weighting=WEIGHTING),
            "weighting": WEIGHTING, "groups": ",".join(groups), "change_from": change_from,
            "estimate": est, "ci_low": lo, "ci_high": hi, "p_value": p, "n_speakers": n}


def wer_table(transcripts: dict[str, pd.DataFrame], *, attribute: str = "accent",
              trained: Sequence[str] | None = None, reference: str | None = None,
              n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """WER by group, macro-WER and max - min gap per model, with speaker-bootstrap CIs.

    ``transcripts`` maps a model name to its transcripts of the *same* test utterances
    (refused, naming the models, when their utterance ids differ).
    Macro and gap are over ``trained`` groups (default all). Intervals resample speakers
    within group (percentile, expanded for few speakers). With ``reference`` (e.g. the base
    model), the paired change of macro and gap against it (``change_from`` names it) with the
    paired speaker bootstrap and swap test of :func:`probekit.bias.paired.paired_change`,
    and for every group not in ``trained`` (a native group: forgetting; an unseen accent:
    generalisation) the same paired change of that group and, with several, of their macro
    (groups with fewer than 2 speakers get no row).

    Returns a long table with :data:`WER_COLUMNS`: ``statistic`` (``pooled_group:<g>``,
    ``pooled_macro``, ``pooled_difference``, ``pooled_overall``), ``weighting`` (``items``),
    ``groups`` (the groups it is over), ``change_from`` (empty for a level, else the
    reference model), WER as a fraction.
    """
    ids = {m: set(t["id"].astype(str)) for m, t in transcripts.items()}
    if not ids:
        raise BiasInputError("wer_table needs the transcripts of at least one model")
    ref_name, ref_ids = next(iter(ids.items()))
    for m, s in ids.items():
        if s != ref_ids:
            raise BiasInputError(
                f"{m} and {ref_name} were not evaluated on the same utterances ({len(s - ref_ids)}"
                f" only in {m}, {len(ref_ids - s)} only in {ref_name}); a before/after table "
                "pairs the same test utterances: re-transcribe one of them")
    if reference is not None and reference not in transcripts:
        raise BiasInputError(f"reference model {reference!r} has no transcripts; models: "
                             f"{list(transcripts)}")
    counts = {m: speaker_word_errors(t, attribute) for m, t in transcripts.items()}
    first = next(iter(counts.values()))
    spk = first["speaker"].to_numpy()
    grp = first[attribute].astype(str).to_numpy()
    names = sorted(set(grp))
    trained = list(trained) if trained else names
    unknown = sorted(set(trained) - set(names))
    if unknown:
        raise BiasInputError(f"trained group(s) {unknown} have no test speakers; groups: {names}")
    rows = []
    rng = np.random.default_rng(seed)
    codes = np.unique(grp, return_inverse=True)[1]
    idx = speaker_bootstrap_indices(codes, n_boot, rng)
    sub = np.isin(grp, trained)                   # the trained groups' speakers
    sub_codes = np.unique(grp[sub], return_inverse=True)[1]
    n_tr = int(sub.sum())
    aligned = {}
    for m, c in counts.items():
        c = c.set_index("speaker").reindex(spk)
        if c["words"].isna().any():
            raise BiasInputError(f"{m} was not evaluated on the same speakers as the others")
        aligned[m] = c["errors"].to_numpy(float), c["words"].to_numpy(float)
    st = lambda k, n, cd, G: group_statistics(k, n, cd, G, weighting=WEIGHTING)  # noqa: E731
    untrained = [g for g in names if g not in trained]
    for m, (K, N) in aligned.items():
        obs, boot = st(K, N, codes, len(names)), st(K[idx], N[idx], codes, len(names))
        tr, tr_b = (st(K[sub], N[sub], sub_codes, len(trained)),
                    st(K[idx[:, sub]], N[idx[:, sub]], sub_codes, len(trained)))
        parts = [("group", g, [g], obs["by_group"][j], boot["by_group"][:, j],
                  int((grp == g).sum())) for j, g in enumerate(names)]
        parts += [("macro", None, trained, tr["macro"], tr_b["macro"], n_tr),
                  ("difference", None, trained, tr["difference"], tr_b["difference"],
                   int(min((grp == g).sum() for g in trained))),
                  ("overall", None, names, obs["overall"], boot["overall"], len(spk))]
        for kind, g, over, est, reps, n in parts:
            lo, hi = percentile_ci(reps, alpha, n_clusters=n)
            rows.append(_row(m, kind, g, over, "", float(est), lo, hi, np.nan, n))
        if reference is None or m == reference:
            continue
        Kr, Nr = aligned[reference]
        pc = paired_change(Kr[sub], Nr[sub], K[sub], N[sub], grp[sub],
                           statistics=("macro", "difference"), weighting=WEIGHTING,
                           n_boot=n_boot, n_perm=n_boot, alpha=alpha, seed=seed).table
        for kind in ("macro", "difference"):
            x = pc[pc["statistic"] == statistic_name(kind, weighting=WEIGHTING)].iloc[0]
            rows.append(_row(m, kind, None, trained, reference, x["change"], x["ci_low"],
                             x["ci_high"], x["p_value"], int(x["n_speakers"])))
        # forgetting (a native group) and generalisation (unseen accents): the paired
        # change of every group not trained on, and of their macro together
        todo = [("group", g, [g]) for g in untrained]
        if len(untrained) > 1:
            todo.append(("macro", None, untrained))
        for kind, g, gs in todo:
            keep = np.isin(grp, gs)
            if min((grp == h).sum() for h in gs) < 2:
                continue  # a paired speaker bootstrap needs 2 speakers per group
            x = paired_change(Kr[keep], Nr[keep], K[keep], N[keep], grp[keep],
                              statistics=("macro",), weighting=WEIGHTING, n_boot=n_boot,
                              n_perm=n_boot, alpha=alpha, seed=seed).table.iloc[0]
            rows.append(_row(m, kind, g, gs, reference, x["change"], x["ci_low"],
                             x["ci_high"], x["p_value"], int(x["n_speakers"])))
    return pd.DataFrame(rows, columns=list(WER_COLUMNS))
