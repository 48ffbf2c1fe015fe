"""What a corpus holds, per group: speakers, utterances, hours, phones, words.

:func:`describe` is the table ``probekit corpus summary`` prints and :meth:`Corpus.summary`
returns (moved from ``corpus/model.py``, issue 22 item 9).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["describe"]


def _row(utts: Sequence) -> dict:
    return {
        "speakers": len({u.speaker for u in utts}),
        "utterances": len(utts),
        "hours": sum(u.duration or 0.0 for u in utts) / 3600.0,
        "phones": sum(len(u.phones) for u in utts),
        "words": sum(len(u.words) for u in utts),
        "unknown_duration": sum(u.duration is None for u in utts),
    }


def describe(corpus, attribute: str | None = None):
    """Per-group summary of ``corpus`` as a ``pandas.DataFrame``.

    Columns: ``speakers``, ``utterances``, ``hours``, ``phones`` (aligned phone tokens),
    ``words``; one row per label of ``attribute`` plus an ``ALL`` row (one row only when
    ``attribute`` is ``None``). Durations that are unknown count as zero and are reported in
    ``unknown_duration``.
    """
    import pandas as pd

    utts = list(corpus)
    rows = {}
    if attribute is not None:
        for g in corpus.groups(attribute):
            rows[g] = _row([u for u in utts if u.groups[attribute] == g])
    rows["ALL"] = _row(utts)
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = attribute or "corpus"
    return df
