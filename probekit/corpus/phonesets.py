"""Phone-set foldings, kept as data (``probekit/data/phonesets/*.tsv``), selectable per study.

=====================  ====================================================================
folding                what it does
=====================  ====================================================================
``timit39``            TIMIT's 61 labels -> the 39 of Lee & Hon (1989): closures and pauses
                       fold to ``sil``, the glottal stop ``q`` is removed
``arpabet-nostress``   ARPAbet stress digits removed (``AH0``/``AH1`` -> ``AH``), upper case
``arpabet-ipa``        ARPAbet (any case, with or without stress; TIMIT 39 too) -> IPA, reduced
                       to :data:`probekit.corpus.phones.INVENTORY` (``AH0`` -> ``ə``)
``ipa-arpabet``        the inverse: the synthetic corpus's IPA inventory -> ARPAbet (symbols
                       without an ARPAbet phone, e.g. Spanish ``β``, are kept as written)
=====================  ====================================================================

To share one label set across TIMIT, L2-ARCTIC and the synthetic corpus, fold TIMIT with
``timit39`` then ``arpabet-ipa``, L2-ARCTIC with ``arpabet-ipa``, and leave the synthetic corpus
(already in the inventory); or go the other way with ``ipa-arpabet``. A study selects foldings
with ``phone_folding = ["timit39", "arpabet-ipa"]`` in its ``[corpus]`` table, and Python code
with :func:`fold_corpus`. Unknown symbols are never dropped: they are kept as written and
counted in the returned report (``strict=True`` raises instead).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

from probekit.corpus.model import Corpus, Segment
from probekit.errors import CorpusError

__all__ = ["FOLDINGS", "fold_phone", "fold_phones", "fold_corpus", "folding_table"]

#: Folding names and one-line descriptions.
FOLDINGS = {
    "timit39": "TIMIT 61 -> 39 phones (Lee & Hon 1989)",
    "arpabet-nostress": "ARPAbet without stress digits",
    "arpabet-ipa": "ARPAbet -> IPA (probekit's inventory)",
    "ipa-arpabet": "IPA (probekit's inventory) -> ARPAbet",
}
_STRESS = re.compile(r"^([A-Za-z]+)[012]$")


def _tsv(name: str) -> dict[str, str]:
    text = resources.files("probekit").joinpath(f"data/phonesets/{name}").read_text("utf-8")
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        src, _, dst = line.partition("\t")
        out[src.strip()] = dst.strip()
    return out


@lru_cache(maxsize=None)
def folding_table(folding: str) -> dict[str, str]:
    """The mapping behind a folding (``""`` = remove the phone)."""
    if folding == "timit39":
        return _tsv("timit61_to_39.tsv")
    if folding == "arpabet-ipa":
        from probekit.corpus.phones import to_inventory
        return {a: (to_inventory(i) if i != "sil" else "sil")
                for a, i in _tsv("arpabet_to_ipa.tsv").items()}
    if folding == "ipa-arpabet":
        inv: dict[str, str] = {}
        for a, i in folding_table("arpabet-ipa").items():
            inv.setdefault(i, a)
        inv["ə"] = "AH"
        return inv
    if folding == "arpabet-nostress":
        return {}
    raise CorpusError(f"unknown phone folding {folding!r}; known: {sorted(FOLDINGS)}")


def _fold(symbol: str, folding: str) -> tuple[str | None, bool]:
    """(folded symbol or None when removed, whether the folding knew the symbol)."""
    table = folding_table(folding)
    s = symbol.strip()
    m = _STRESS.match(s)
    if folding == "arpabet-nostress":
        return (m.group(1) if m else s).upper(), True
    if folding == "timit39":
        key = s.lower()
    elif folding == "arpabet-ipa":
        if m and m.group(1).upper() == "AH" and s.endswith("0"):
            return "ə", True
        key = (m.group(1) if m else s).upper()
    else:
        key = s
    if key not in table:
        return s, False
    return (table[key] or None), True


def fold_phone(symbol: str, folding: str, *, strict: bool = False) -> str | None:
    """One symbol through one folding; ``None`` when the folding removes it. An unknown
    symbol is kept as written (``strict=True``: ``CorpusError``)."""
    out, known = _fold(symbol, folding)
    if not known and strict:
        raise CorpusError(f"phone {symbol!r} is not in folding {folding!r}")
    return out


def fold_phones(segments: Sequence[Segment], foldings: str | Sequence[str], *,
                strict: bool = False, unknown: Counter | None = None) -> tuple[Segment, ...]:
    """Segments with every label folded (foldings applied in order); removed phones dropped.
    Unknown symbols are counted in ``unknown`` (a Counter) when given."""
    names = [foldings] if isinstance(foldings, str) else list(foldings)
    out = []
    for seg in segments:
        sym: str | None = seg.symbol
        for f in names:
            before = sym
            sym, known = _fold(sym, f)
            if not known:
                if strict:
                    raise CorpusError(f"phone {before!r} is not in folding {f!r}")
                if unknown is not None:
                    unknown[f"{f}:{before}"] += 1
            if sym is None:
                break
        if sym is not None:
            out.append(Segment(sym, seg.start, seg.end))
    return tuple(out)


def fold_corpus(corpus: Corpus, foldings: str | Sequence[str], *,
                strict: bool = False) -> tuple[Corpus, Counter]:
    """The corpus with every utterance's phone labels folded, and a count of unknown symbols.

    Mispronunciation records keep their labels (they describe what the annotator wrote).
    """
    names = [foldings] if isinstance(foldings, str) else list(foldings)
    for f in names:
        folding_table(f)  # unknown names fail before any work
    unknown: Counter = Counter()
    utts = [u.replace(phones=fold_phones(u.phones, names, strict=strict, unknown=unknown))
            for u in corpus]
    return corpus._derive(utts), unknown
