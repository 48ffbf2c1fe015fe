"""The phone inventory of the synthetic corpus, and the mapping from espeak-ng's IPA names.

espeak-ng names phones in IPA, but each voice has its own habits: stress and length marks
glued to vowels (``ˈɑː``), dental and syllabic diacritics, five rhotic consonants, voice-specific
vowels (Scottish ``ʉ``, Dutch ``ɵ``) and diphthongs. :func:`to_inventory` reduces them to one
broad IPA inventory, :data:`INVENTORY`, so that groups share a label where they share a sound
and keep distinct labels where the sounds really differ (Spanish ``β`` is not ``b``).

The rules, in order:

1. drop stress (``ˈ ˌ``), length (``ː ˑ :``), tie bars, and the diacritics for nasal, dental,
   syllabic, non-syllabic and palatalised (``̃ ̪ ̩ ̯ ʲ`` when attached);
2. collapse a doubled letter (Italian geminate ``ss``, Caribbean ``aa``) to one;
3. look the result up in :data:`ALIASES` (rhotics to ``r``, r-coloured vowels to ``ɚ`` or a
   vowel+``ɹ`` diphthong, narrow or rare symbols to the closest broad one);
4. the result must be in :data:`INVENTORY`. An unknown symbol is never dropped: it maps to
   itself, is counted in :data:`UNMAPPED`, and ``strict=True`` raises instead.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from functools import lru_cache

from probekit.errors import CorpusError

__all__ = ["INVENTORY", "ALIASES", "UNMAPPED", "to_inventory", "phone_class", "FRICATIVES",
           "VOWELS"]

#: symbol -> (class, description). Classes: vowel, diphthong, rhotic vowel, stop, affricate,
#: fricative, nasal, approximant (liquids and glides).
INVENTORY: dict[str, tuple[str, str]] = {
    # monophthongs
    "i": ("vowel", "close front (fleece)"),
    "ɪ": ("vowel", "near-close front (kit)"),
    "e": ("vowel", "close-mid front"),
    "ɛ": ("vowel", "open-mid front (dress)"),
    "æ": ("vowel", "near-open front (trap)"),
    "a": ("vowel", "open front"),
    "ɨ": ("vowel", "close central (Polish y, Portuguese reduced e)"),
    "ə": ("vowel", "mid central, schwa"),
    "ɜ": ("vowel", "open-mid central, non-rhotic (nurse)"),
    "ʌ": ("vowel", "open-mid back unrounded (strut)"),
    "ɑ": ("vowel", "open back unrounded (palm)"),
    "ɒ": ("vowel", "open back rounded (lot, British)"),
    "ɔ": ("vowel", "open-mid back rounded (thought)"),
    "o": ("vowel", "close-mid back rounded"),
    "ʊ": ("vowel", "near-close back rounded (foot)"),
    "u": ("vowel", "close back rounded (goose)"),
    "y": ("vowel", "close front rounded"),
    "ø": ("vowel", "mid front rounded"),
    # diphthongs
    "aɪ": ("diphthong", "price"),
    "aʊ": ("diphthong", "mouth"),
    "eɪ": ("diphthong", "face"),
    "oʊ": ("diphthong", "goat"),
    "ɔɪ": ("diphthong", "choice"),
    "ɪə": ("diphthong", "near (non-rhotic)"),
    "ɛə": ("diphthong", "square (non-rhotic)"),
    "ʊə": ("diphthong", "cure (non-rhotic)"),
    # r-coloured vowels (one espeak phone covers vowel and r)
    "ɚ": ("rhotic vowel", "r-coloured schwa (nurse, letter in rhotic accents)"),
    "ɑɹ": ("rhotic vowel", "start (rhotic)"),
    "ɔɹ": ("rhotic vowel", "north (rhotic)"),
    "ɛɹ": ("rhotic vowel", "square (rhotic)"),
    "ɪɹ": ("rhotic vowel", "near (rhotic)"),
    "ʊɹ": ("rhotic vowel", "cure (rhotic)"),
    # stops
    "p": ("stop", "voiceless bilabial"),
    "b": ("stop", "voiced bilabial"),
    "t": ("stop", "voiceless alveolar/dental"),
    "d": ("stop", "voiced alveolar/dental"),
    "k": ("stop", "voiceless velar"),
    "ɡ": ("stop", "voiced velar"),
    "ʔ": ("stop", "glottal"),
    # affricates
    "tʃ": ("affricate", "voiceless postalveolar"),
    "dʒ": ("affricate", "voiced postalveolar"),
    "ts": ("affricate", "voiceless alveolar"),
    "dz": ("affricate", "voiced alveolar"),
    # fricatives
    "f": ("fricative", "voiceless labiodental"),
    "v": ("fricative", "voiced labiodental"),
    "θ": ("fricative", "voiceless dental"),
    "ð": ("fricative", "voiced dental"),
    "s": ("fricative", "voiceless alveolar"),
    "z": ("fricative", "voiced alveolar"),
    "ʃ": ("fricative", "voiceless postalveolar"),
    "ʒ": ("fricative", "voiced postalveolar"),
    "x": ("fricative", "voiceless velar/palatal"),
    "ɣ": ("fricative", "voiced velar (Spanish, Dutch g)"),
    "β": ("fricative", "voiced bilabial (Spanish b/v)"),
    "h": ("fricative", "glottal"),
    # nasals
    "m": ("nasal", "bilabial"),
    "n": ("nasal", "alveolar"),
    "ŋ": ("nasal", "velar"),
    "ɲ": ("nasal", "palatal"),
    # approximants
    "r": ("approximant", "any rhotic consonant (ɹ, r, ɾ, ʁ)"),
    "l": ("approximant", "lateral"),
    "w": ("approximant", "labial-velar"),
    "j": ("approximant", "palatal"),
}

#: cleaned espeak symbol -> inventory symbol, for symbols not already in :data:`INVENTORY`.
ALIASES: dict[str, str] = {
    # rhotic consonants: the accent difference lives in the neighbouring vowels and in r
    # dropping; keeping five r labels would split one phoneme five ways.
    "ɹ": "r", "ɾ": "r", "ʁ": "r", "ɻ": "r", "ʀ": "r",
    # r-coloured vowels
    "ɝ": "ɚ", "əɹ": "ɚ", "ʌɹ": "ɚ", "ɜɹ": "ɚ", "ʉɹ": "ʊɹ",
    "aɪɚ": "aɪ", "aɪə": "aɪ",
    # vowels
    "ɐ": "ə", "ᵻ": "ɪ", "ʉ": "u", "ɵ": "ʊ", "œ": "ø", "ɯ": "u",
    # diphthongs to the closest broad one
    "əʊ": "oʊ", "əu": "oʊ", "ou": "oʊ", "ʌʊ": "aʊ", "ʌʉ": "aʊ", "æʊ": "aʊ", "ɐʊ": "aʊ",
    "au": "aʊ", "ai": "aɪ", "ɑɪ": "aɪ", "ei": "eɪ", "ɛɪ": "eɪ", "ej": "eɪ",
    "oɪ": "ɔɪ", "ɔø": "ɔɪ", "œy": "ɔɪ", "øy": "ɔɪ", "uɪ": "ɔɪ", "əɪ": "ɔɪ", "yʊ": "u",
    "iə": "ɪə", "eə": "ɛə", "ʊɐ": "ʊə", "oə": "ɔ", "ɔə": "ɔ", "ɑə": "ɑ",
    # consonants
    "g": "ɡ", "ç": "x", "χ": "x", "ɕ": "ʃ", "ʂ": "ʃ", "ʑ": "ʒ", "ʐ": "ʒ", "tɕ": "tʃ",
    "tʂ": "tʃ", "dʑ": "dʒ", "dʐ": "dʒ", "ʋ": "v", "ʍ": "w", "ʎ": "j", "ʝ": "j", "ʲ": "j",
    "əl": "l", "ɫ": "l", "ɬ": "l", "ɱ": "m",
}

#: Phone classes used by alignment checks.
VOWELS = frozenset(s for s, (c, _) in INVENTORY.items() if c in ("vowel", "diphthong",
                                                                "rhotic vowel"))
FRICATIVES = frozenset(s for s, (c, _) in INVENTORY.items() if c == "fricative")

#: Cleaned symbols that were not in the inventory, with how often they were seen.
UNMAPPED: Counter[str] = Counter()

_STRIP = {"ˈ", "ˌ", "ː", "ˑ", ":", "\u0361", "\u035c", "\u0303", "\u032a", "\u0329", "\u032f",
          "\u0330", "\u0325", "\u0324", "ʰ", "ʷ", "ˠ", "-", "_"}


@lru_cache(maxsize=None)
def _clean(raw: str) -> str:
    s = unicodedata.normalize("NFD", raw)
    # ʲ on its own is a phone (Polish palatal glide); attached to a consonant it is a mark.
    if s != "ʲ":
        s = s.replace("ʲ", "")
    s = "".join(ch for ch in s if ch not in _STRIP)
    if len(s) == 2 and s[0] == s[1]:
        s = s[0]
    return unicodedata.normalize("NFC", s)


def to_inventory(raw: str, *, strict: bool = False) -> str:
    """Map one espeak-ng IPA phone name to the inventory.

    Parameters
    ----------
    raw : str
        espeak's name, e.g. ``"ˈɑːɹ"``.
    strict : bool
        Raise instead of passing an unknown symbol through.

    Returns
    -------
    str
        An :data:`INVENTORY` symbol, or the cleaned symbol itself when unknown (counted in
        :data:`UNMAPPED`).

    Raises
    ------
    CorpusError
        ``strict`` and the symbol is unknown, or the symbol is empty after cleaning.
    """
    s = _clean(raw)
    if not s:
        raise CorpusError(f"phone {raw!r} is empty once stress and length marks are removed")
    s = ALIASES.get(s, s)
    if s not in INVENTORY:
        if strict:
            raise CorpusError(f"phone {raw!r} (cleaned {s!r}) is not in the probekit inventory")
        UNMAPPED[s] += 1
    return s


def phone_class(symbol: str) -> str | None:
    """Class of an inventory symbol (``"vowel"``, ``"fricative"``, ...), ``None`` if unknown."""
    entry = INVENTORY.get(symbol)
    return entry[0] if entry else None
