"""Speech with phone and word timings from espeak-ng, through ctypes.

espeak-ng (the shared library and data shipped by the ``espeakng-loader`` wheel) is driven in
synchronous mode: ``espeak_Synth`` calls our callback with blocks of 16-bit samples at 22050 Hz
and a list of events. Phoneme events (type 7) carry the IPA name of each phone and where it
starts; word events (type 1) carry the word's character position in the text.

Timing rules
------------
* A phone starts at its event's sample position and ends where the next phone event (a pause
  included) starts; the last one ends at the end-of-message event (or the end of the audio).
  Pause events (empty IPA name) close the previous phone and are not phones themselves.
* Some phones have zero duration: espeak merges them into their neighbour (typically a
  post-vocalic /l/ folded into its vowel, as in "ball"). ``Synthesis.raw_phones`` keeps them
  with ``start == end``; ``Synthesis.phones`` (mapped to :mod:`probekit.corpus.phones`) drops
  them, because no audio belongs to them, and ``Synthesis.dropped_phones`` records them.
* Language-switch markers such as ``(en)`` (non-English voices read some English words with
  English rules) are ignored.
* A word spans from its first phone's start to its last phone's end; words with no phone
  (e.g. punctuation read as nothing) are left out. espeak joins some unstressed function
  words to the word before them and reports one word event for both ("on the"): such a group
  is one word segment whose symbol holds both words separated by a space.

The library is process-global and not thread-safe: every call holds a module lock. It also
keeps synthesis state between calls, so each call runs in a freshly loaded copy (see
``_Engine``) with its noise generator seeded: the same arguments give the same samples in any
order and in any process.
"""

from __future__ import annotations

import ctypes
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from probekit.corpus.model import Segment
from probekit.corpus.phones import to_inventory
from probekit.errors import CorpusError

__all__ = ["Synthesis", "synthesize", "ESPEAK_SAMPLE_RATE", "available_variants", "voice_exists"]

#: espeak-ng's native output rate (Hz).
ESPEAK_SAMPLE_RATE = 22050

# Values from espeak-ng's speak_lib.h (API revision 12).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x1
_INIT_PHONEME_IPA = 0x2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EV_LIST_TERMINATED, _EV_WORD, _EV_MSG_TERMINATED, _EV_PHONEME = 0, 1, 6, 7
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_EE_OK = 0

# A written word: letters and digits with inner apostrophes or hyphens ("It's", "well-oiled").
_WORD = re.compile(r"\w+(?:['’-]\w+)*")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    # espeak_EVENT from speak_lib.h; ctypes adds the same padding before `user_data` as C does.
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character position in the text
        ("length", ctypes.c_int),  # word length in characters (word events)
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # sample index at 22050 Hz ("internal use"; checked below)
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True, eq=False)
class Synthesis:
    """One synthesised utterance with its alignment.

    Attributes
    ----------
    samples : numpy.ndarray, shape (n_samples,), float32
        Mono audio in [-1, 1] at ``sample_rate``.
    sample_rate : int
        Hz.
    words : tuple of Segment
        Words of the text (as written) with times in seconds.
    phones : tuple of Segment
        Phones mapped to the probekit inventory (:mod:`probekit.corpus.phones`), zero-length
        phones removed; times in seconds.
    raw_phones : tuple of Segment
        espeak's own IPA phone names (stress and length marks included), zero-length phones
        kept; times in seconds.
    dropped_phones : tuple of Segment
        The zero-length raw phones left out of ``phones``.
    """

    samples: np.ndarray
    sample_rate: int
    words: tuple[Segment, ...]
    phones: tuple[Segment, ...]
    raw_phones: tuple[Segment, ...]
    dropped_phones: tuple[Segment, ...] = ()

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


# -- the process-global library --------------------------------------------------------------
_LOCK = threading.Lock()


class _Collector:
    """Receives the callback's blocks for the synthesis in progress."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[int, int, int, int, int, str]] = []

    def __call__(self, wav, n, events) -> int:
        if wav and n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            e = events[i]
            name = ""
            if e.type == _EV_PHONEME:
                # char[8], NUL-terminated unless the name needs all 8 bytes.
                name = bytes(e.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
            self.events.append((e.type, e.text_position, e.length, e.audio_position, e.sample,
                                name))
            i += 1
        return 0


class _Engine:
    """One load of the library: initialise, synthesise, unload.

    espeak-ng keeps synthesis state in static variables that ``espeak_Terminate`` does not
    reset (pitch flutter phase, wave phase, echo buffer): the same call gives different
    samples, even different lengths, depending on what was synthesised before. Unloading the
    library (``dlclose``) and loading it again gives fresh statics for about 1 ms, so every
    synthesis runs in a freshly loaded library. We load a private copy of the ``.so`` so that
    another user of the same file in this process (e.g. a phonemizer) cannot keep it loaded.
    """

    def __init__(self) -> None:
        lib = ctypes.CDLL(str(_private_library()), mode=ctypes.RTLD_LOCAL)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        lib.espeak_Terminate.restype = ctypes.c_int
        self.lib = lib
        data = str(_data_path()).encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data,
                                     _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA)
        if rate != ESPEAK_SAMPLE_RATE:
            self.close()
            raise CorpusError(f"espeak-ng failed to initialise from {data.decode()} "
                              f"(returned {rate}, expected {ESPEAK_SAMPLE_RATE} Hz)")
        self.collector: _Collector | None = None
        # Keep a reference: ctypes frees the trampoline when the Python object dies.
        self._callback = _CALLBACK(self._dispatch)
        lib.espeak_SetSynthCallback(self._callback)

    def close(self) -> None:
        import _ctypes

        self.lib.espeak_Terminate()
        _ctypes.dlclose(self.lib._handle)

    def __enter__(self) -> "_Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _dispatch(self, wav, n, events) -> int:
        return self.collector(wav, n, events) if self.collector is not None else 0

    def set_voice(self, voice: str) -> int:
        return self.lib.espeak_SetVoiceByName(voice.encode())

    def run(self, text: str, voice: str, rate: int, pitch: int, seed: int) -> _Collector:
        lib = self.lib
        rc = self.set_voice(voice)
        if rc != _EE_OK:
            raise CorpusError(f"espeak-ng has no voice {voice!r} (error {rc})")
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, 50),
                             (_PARAM_VOLUME, 100)):
            if lib.espeak_SetParameter(param, value, 0) != _EE_OK:
                raise CorpusError(f"espeak-ng rejected parameter {param}={value}")
        lib.espeak_ng_SetRandSeed(seed)
        self.collector = col = _Collector()
        data = text.encode("utf-8")
        buf = ctypes.create_string_buffer(data)
        try:
            rc = lib.espeak_Synth(buf, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        finally:
            self.collector = None
        if rc != _EE_OK:
            raise CorpusError(f"espeak-ng failed to synthesise {text!r} with voice {voice!r} "
                              f"(error {rc})")
        return col


@lru_cache(maxsize=1)
def _private_library() -> Path:
    import atexit
    import shutil
    import tempfile

    import espeakng_loader

    folder = Path(tempfile.mkdtemp(prefix="probekit-espeak-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return Path(shutil.copy2(espeakng_loader.get_library_path(), folder / "libespeak-ng.so"))


def _data_path() -> Path:
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


@lru_cache(maxsize=1)
def available_variants() -> tuple[str, ...]:
    """Names of the voice variants (``m1``, ``f3``, ``Annie``, ...) in the data folder."""
    return tuple(sorted(p.name for p in (_data_path() / "voices" / "!v").iterdir() if p.is_file()))


@lru_cache(maxsize=None)
def voice_exists(voice: str) -> bool:
    """Whether espeak-ng accepts ``voice`` (a language voice such as ``en-gb-scotland``)."""
    with _LOCK, _Engine() as engine:
        return engine.set_voice(voice) == _EE_OK


# -- public entry point ----------------------------------------------------------------------
def synthesize(text: str, voice: str = "en-us", *, variant: str | None = None, rate: int = 175,
               pitch: int = 50, sample_rate: int = 16000, seed: int = 0) -> Synthesis:
    """Synthesise ``text`` with espeak-ng and return audio with word and phone timings.

    Parameters
    ----------
    text : str
        What to say (UTF-8; plain text, no SSML).
    voice : str
        espeak-ng voice name, e.g. ``"en-us"``, ``"en-gb-scotland"``, ``"es"``.
    variant : str or None
        Voice variant from ``espeak-ng-data/voices/!v`` (``"m3"``, ``"f2"``, ...).
    rate : int
        Speaking rate in words per minute (80-450).
    pitch : int
        Base pitch, 0-100 (50 is the voice's default).
    sample_rate : int
        Output rate in Hz; 22050 keeps espeak's samples, anything else is resampled with a
        polyphase filter (``scipy.signal.resample_poly``), which is deterministic.
    seed : int
        Seed of espeak's noise generator (breathy variants and frication use it).

    Returns
    -------
    Synthesis

    Raises
    ------
    CorpusError
        Unknown voice or variant, parameters out of range, empty text, or no speech produced.
    """
    if not isinstance(text, str) or not text.strip():
        raise CorpusError(f"cannot synthesise empty text {text!r}")
    if not 80 <= rate <= 450:
        raise CorpusError(f"rate must be 80-450 words per minute, got {rate}")
    if not 0 <= pitch <= 100:
        raise CorpusError(f"pitch must be 0-100, got {pitch}")
    if sample_rate <= 0:
        raise CorpusError(f"sample_rate must be positive, got {sample_rate}")
    if variant is not None and variant not in available_variants():
        raise CorpusError(f"espeak-ng has no voice variant {variant!r}; "
                          f"known: {', '.join(available_variants())}")
    name = voice if variant is None else f"{voice}+{variant}"
    with _LOCK, _Engine() as engine:
        col = engine.run(text, name, rate, pitch, seed)
    if not col.chunks:
        raise CorpusError(f"espeak-ng produced no audio for {text!r} with voice {name!r}")
    pcm = np.concatenate(col.chunks)
    n_native = len(pcm)
    raw_phones, words = _align(text, col.events, n_native, name)
    samples = pcm.astype(np.float32) / np.float32(32768.0)
    if sample_rate != ESPEAK_SAMPLE_RATE:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(sample_rate, ESPEAK_SAMPLE_RATE)
        samples = resample_poly(samples, sample_rate // g, ESPEAK_SAMPLE_RATE // g)
        samples = np.clip(samples, -1.0, 1.0).astype(np.float32)
    phones = tuple(Segment(to_inventory(p.symbol), p.start, p.end) for p in raw_phones
                   if p.end > p.start)
    dropped = tuple(p for p in raw_phones if p.end <= p.start)
    # Times are in seconds and do not depend on the output rate; keep them inside the audio.
    dur = len(samples) / sample_rate
    return Synthesis(
        samples=samples,
        sample_rate=sample_rate,
        words=tuple(_clip(s, dur) for s in words),
        phones=tuple(_clip(s, dur) for s in phones),
        raw_phones=tuple(_clip(s, dur) for s in raw_phones),
        dropped_phones=tuple(_clip(s, dur) for s in dropped),
    )


def _clip(s: Segment, dur: float) -> Segment:
    if s.end <= dur:
        return s
    return Segment(s.symbol, min(s.start, dur), dur)


def _event_sample(audio_ms: int, sample: int, voice: str) -> int:
    """Sample index of an event at 22050 Hz.

    ``sample`` is exact but documented as internal, ``audio_position`` is public but rounded
    to whole milliseconds: use the former, checked against the latter.
    """
    if abs(sample - audio_ms * ESPEAK_SAMPLE_RATE / 1000.0) > 0.002 * ESPEAK_SAMPLE_RATE:
        raise CorpusError(f"espeak-ng event positions disagree for voice {voice!r}: "
                          f"sample {sample} vs {audio_ms} ms")
    return sample


def _align(text: str, events, n_samples: int, voice: str
           ) -> tuple[tuple[Segment, ...], tuple[Segment, ...]]:
    """Turn the event list into raw phone segments and word segments (seconds)."""
    sr = float(ESPEAK_SAMPLE_RATE)
    # (start sample, name, word index); pauses have name "".
    marks: list[tuple[int, str, int]] = []
    word_spans: list[tuple[int, int]] = []
    end = n_samples
    for etype, tpos, length, ms, sample, name in events:
        if etype == _EV_WORD:
            word_spans.append((tpos, length))
        elif etype == _EV_PHONEME:
            if name.startswith("("):
                # A language switch such as "(en)" (a German voice reading "the" as English):
                # a marker, not a sound, and it takes no time.
                continue
            marks.append((_event_sample(ms, sample, voice), name, len(word_spans) - 1))
        elif etype == _EV_MSG_TERMINATED:
            end = min(end, _event_sample(ms, sample, voice))
    phones: list[tuple[Segment, int]] = []
    for i, (start, name, widx) in enumerate(marks):
        if not name:
            continue
        stop = marks[i + 1][0] if i + 1 < len(marks) else end
        stop = min(max(stop, start), n_samples)
        start = min(start, stop)
        phones.append((Segment(name, start / sr, stop / sr), widx))
    words: list[Segment] = []
    for widx, (tpos, _length) in enumerate(word_spans):
        inside = [seg for seg, w in phones if w == widx]
        # espeak joins some unstressed function words to their neighbour ("on the") and
        # reports one word event for both: the event's text runs up to the next event.
        stop = word_spans[widx + 1][0] - 1 if widx + 1 < len(word_spans) else len(text)
        word = " ".join(_WORD.findall(text[tpos - 1: stop]))
        if not inside or not word:
            continue
        words.append(Segment(word, inside[0].start, inside[-1].end))
    return tuple(seg for seg, _ in phones), tuple(words)
