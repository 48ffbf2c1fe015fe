"""Before/after WER table with speaker-bootstrap intervals and paired changes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from probekit.bias.compare import paired_change
from probekit.bias.resample import percentile_ci, speaker_bootstrap_indices
from training.splits import FinetuneError

__all__ = ["speaker_word_errors", "wer_table"]


def speaker_word_errors(transcripts: pd.DataFrame, attribute: str = "accent") -> pd.DataFrame:
    """Per-speaker word errors and reference words: ``speaker, <attribute>, errors, words``."""
    from training.evaluate import _wer

    rows = []
    for (spk, g), df in transcripts.groupby(["speaker", attribute], sort=True):
        _, err, n = _wer(df["ref_norm"].tolist(), df["hyp_norm"].tolist())
        rows.append({"speaker": str(spk), attribute: g, "errors": err, "words": n})
    return pd.DataFrame(rows)


def wer_table(transcripts: dict[str, pd.DataFrame], *, attribute: str = "accent",
              trained: Sequence[str] | None = None, reference: str | None = None,
              n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """WER (%) by group, macro-WER and max - min gap per model, with speaker-bootstrap CIs.

    ``transcripts`` maps a model name to its transcripts of the *same* test utterances
    (refused, naming the models, when their utterance ids differ).
    Macro and gap are over ``trained`` groups (default all). Intervals resample speakers
    within group (percentile, expanded for few speakers). With ``reference`` (e.g. the base
    model), ``Δ macro`` and ``Δ gap`` are the paired change against it with the paired
    speaker bootstrap and swap test of :func:`probekit.bias.compare.paired_change`, and
    for every group not in ``trained`` (a native group: forgetting; an unseen accent:
    generalisation) ``Δ group:<g>`` and, with several, ``Δ untrained macro``, the same paired
    change over those speakers only (groups with fewer than 2 speakers get no row).

    Returns a long table: ``model, statistic, estimate, ci_low, ci_high, p_value,
    n_speakers`` (WER in %).
    """
    ids = {m: set(t["id"].astype(str)) for m, t in transcripts.items()}
    ref_name, ref_ids = next(iter(ids.items()))
    for m, s in ids.items():
        if s != ref_ids:
            raise FinetuneError(
                f"{m} and {ref_name} were not evaluated on the same utterances ({len(s - ref_ids)}"
                f" only in {m}, {len(ref_ids - s)} only in {ref_name}); a before/after table "
                "pairs the same test utterances: re-transcribe one of them")
    counts = {m: speaker_word_errors(t, attribute) for m, t in transcripts.items()}
    first = next(iter(counts.values()))
    spk = first["speaker"].to_numpy()
    grp = first[attribute].astype(str).to_numpy()
    trained = list(trained) if trained else sorted(set(grp))
    rows = []
    rng = np.random.default_rng(seed)
    codes = np.unique(grp, return_inverse=True)[1]
    idx = speaker_bootstrap_indices(codes, n_boot, rng)
    names = sorted(set(grp))
    sel = np.isin(names, trained)
    for m, c in counts.items():
        c = c.set_index("speaker").reindex(spk)
        if c["words"].isna().any():
            raise FinetuneError(f"{m} was not evaluated on the same speakers as the others")
        K, N = c["errors"].to_numpy(float), c["words"].to_numpy(float)
        onehot = np.eye(len(names))[codes]
        e = 100 * (K @ onehot) / (N @ onehot)
        eb = 100 * (K[idx] @ onehot) / (N[idx] @ onehot)       # (B, G)
        stats = {f"group:{g}": (e[j], eb[:, j], int((grp == g).sum())) for j, g in enumerate(names)}
        stats["macro"] = (e[sel].mean(), eb[:, sel].mean(1), int(np.isin(grp, trained).sum()))
        stats["gap"] = (e[sel].max() - e[sel].min(), eb[:, sel].max(1) - eb[:, sel].min(1),
                        int(min((grp == g).sum() for g in trained)))
        stats["overall"] = (100 * K.sum() / N.sum(), 100 * K[idx].sum(1) / N[idx].sum(1), len(spk))
        for k, (est, reps, n) in stats.items():
            lo, hi = percentile_ci(reps, alpha, n_clusters=n)
            rows.append({"model": m, "statistic": k, "estimate": est, "ci_low": lo,
                         "ci_high": hi, "p_value": np.nan, "n_speakers": n})
        if reference is not None and m != reference:
            r = counts[reference].set_index("speaker").reindex(spk)
            keep = np.isin(grp, trained)
            pc = paired_change(r["errors"].to_numpy(float)[keep], r["words"].to_numpy(float)[keep],
                               K[keep], N[keep], grp[keep], statistics=("macro", "difference"),
                               n_boot=n_boot, n_perm=n_boot, alpha=alpha, seed=seed).table
            for s, label in (("macro", "Δ macro"), ("difference", "Δ gap")):
                x = pc[pc["statistic"] == s].iloc[0]
                rows.append({"model": m, "statistic": label, "estimate": 100 * x["change"],
                             "ci_low": 100 * x["ci_low"], "ci_high": 100 * x["ci_high"],
                             "p_value": x["p_value"], "n_speakers": int(x["n_speakers"])})
            # forgetting (a native group) and generalisation (unseen accents): the paired
            # change of every group not trained on, and of their macro together
            untrained = [g for g in names if g not in trained]
            parts = [(f"Δ group:{g}", [g]) for g in untrained]
            if len(untrained) > 1:
                parts.append(("Δ untrained macro", untrained))
            for label, gs in parts:
                keep = np.isin(grp, gs)
                if min((grp == g).sum() for g in gs) < 2:
                    continue  # a paired speaker bootstrap needs 2 speakers per group
                x = paired_change(r["errors"].to_numpy(float)[keep],
                                  r["words"].to_numpy(float)[keep], K[keep], N[keep], grp[keep],
                                  statistics=("macro",), n_boot=n_boot, n_perm=n_boot,
                                  alpha=alpha, seed=seed).table.iloc[0]
                rows.append({"model": m, "statistic": label, "estimate": 100 * x["change"],
                             "ci_low": 100 * x["ci_low"], "ci_high": 100 * x["ci_high"],
                             "p_value": x["p_value"], "n_speakers": int(x["n_speakers"])})
    return pd.DataFrame(rows)
