"""CTC probe scoring: the shared text normalisation and per-utterance / corpus CER and WER.

- :func:`normalize_text`: the one text normalisation used for training targets and references.
- :func:`ctc_errors` / :func:`aggregate_errors`: per-utterance CER/WER with counts
  (:func:`probekit.text.edit_counts`, the one ``jiwer`` counter), and corpus-level rates
  (fractions) as sum of errors / sum of reference lengths.

Error rates follow the results-table contract (``results.py``): ``value * n`` is an error
count, ``n`` the number of reference characters (spaces included, as ``jiwer`` counts them)
or words. Re-exported by :mod:`probekit.probes.ctc`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from probekit.text import normalize_text as _normalize

__all__ = ["normalize_text", "ctc_errors", "aggregate_errors"]


def normalize_text(text: str) -> str:
    """Normalise a transcript for ASR scoring and character targets.

    The one normalisation of the project, :func:`probekit.text.normalize_text` (Whisper's
    English normaliser: contractions expanded, numbers as digits, American spellings,
    bracketed tags and punctuation removed), so the probe's WER and the fine-tuning
    evaluation's WER are computed on the same text.

    >>> normalize_text("  Don’t STOP -- now, please!  ")
    'do not stop now please'
    """
    return _normalize(text)


# -- error metrics ----------------------------------------------------------------------------
def ctc_errors(hypotheses: Sequence[str], references: Sequence[str], ids=None,
               normalize: bool = True):
    """Per-utterance character and word errors, counted by :func:`probekit.text.edit_counts`
    (the one ``jiwer`` counter).

    Parameters
    ----------
    hypotheses, references : sequence of str, same length
    ids : sequence of str, optional
        Utterance ids, used as the index (default ``0..n-1``).
    normalize : bool, default True
        Apply :func:`normalize_text` to both sides first. Pass False for phone strings
        (space-separated symbols), where ``wer`` is then the phone error rate.

    Returns
    -------
    pandas.DataFrame, one row per utterance
        ``cer``, ``wer`` (error rates; NaN for an empty reference), ``n_chars``, ``n_words``
        (reference lengths, spaces count as characters), ``char_errors``, ``word_errors``
        (substitutions + deletions + insertions). Aggregate with :func:`aggregate_errors`.
    """
    import pandas as pd

    from probekit.text import edit_counts

    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(f"ctc_errors: {len(hypotheses)} hypotheses but {len(references)} references")
    if ids is not None:
        ids = list(ids)
        if len(ids) != len(references):
            raise ValueError(f"ctc_errors: {len(ids)} ids for {len(references)} references")
    for i, (h, r) in enumerate(zip(hypotheses, references)):
        if not isinstance(h, str) or not isinstance(r, str):
            raise TypeError(f"ctc_errors: item {ids[i] if ids else i} is not a pair of str")
    if normalize:
        hypotheses = [normalize_text(h) for h in hypotheses]
        references = [normalize_text(r) for r in references]
    e_c, n_c = edit_counts(references, hypotheses, unit="char")
    e_w, n_w = edit_counts(references, hypotheses, unit="word")
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = {"cer": np.where(n_c > 0, e_c / np.maximum(n_c, 1), np.nan),
                "wer": np.where(n_w > 0, e_w / np.maximum(n_w, 1), np.nan),
                "n_chars": n_c, "n_words": n_w, "char_errors": e_c, "word_errors": e_w}
    df = pd.DataFrame(rows, columns=["cer", "wer", "n_chars", "n_words", "char_errors",
                                     "word_errors"])
    if ids is not None:
        df.index = pd.Index(ids, name="utt_id")
    return df


def aggregate_errors(errors, by=None):
    """Corpus-level CER/WER: sum of errors / sum of reference lengths (micro average).

    Parameters
    ----------
    errors : pandas.DataFrame from :func:`ctc_errors` (possibly with extra columns)
    by : str or list of str, optional
        Columns to group by (e.g. ``"speaker"``); None aggregates everything into one row.

    Returns
    -------
    pandas.DataFrame with ``cer``, ``wer``, ``n_chars``, ``n_words`` (one row per group).
    """
    import pandas as pd

    cols = ["n_chars", "n_words", "char_errors", "word_errors"]
    sums = (errors[cols].sum().to_frame().T if by is None
            else errors.groupby(by, sort=True)[cols].sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        out = pd.DataFrame({"cer": sums["char_errors"] / sums["n_chars"].where(sums["n_chars"] > 0),
                            "wer": sums["word_errors"] / sums["n_words"].where(sums["n_words"] > 0),
                            "n_chars": sums["n_chars"].astype(np.int64),
                            "n_words": sums["n_words"].astype(np.int64)})
    return out

