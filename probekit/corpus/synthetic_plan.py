"""What the synthetic accented corpus contains, decided before any audio is made: the
accent groups (:data:`ACCENTS`), the config and its presets (:class:`SyntheticConfig`,
:data:`PRESETS`), the Harvard sentences, and the deterministic speaker and sentence plans.

The builder that synthesises these plans is :mod:`probekit.corpus.synthetic`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from importlib import resources

import numpy as np

from probekit.errors import CorpusError

__all__ = ["ACCENTS", "PRESETS", "Accent", "SyntheticConfig", "SpeakerPlan", "harvard_sentences",
           "speaker_plan", "sentence_plan", "resolve_config", "GENERATOR_VERSION",
           "MALE_VARIANTS", "FEMALE_VARIANTS"]

#: Bump when the generator's output changes for the same config (invalidates caches).
GENERATOR_VERSION = 1


@lru_cache(maxsize=1)
def harvard_sentences() -> tuple[tuple[str, str], ...]:
    """The shipped Harvard sentences as ``(sentence_id, text)`` in file order."""
    text = resources.files("probekit").joinpath("data/harvard_sentences.txt").read_text("utf-8")
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        sid, sep, sentence = line.partition("\t")
        if not sep or not sentence.strip():
            raise CorpusError(f"harvard_sentences.txt:{lineno}: expected '<id><TAB><text>'")
        out.append((sid.strip(), sentence.strip()))
    return tuple(out)


@dataclass(frozen=True)
class Accent:
    """An accent group: an espeak-ng voice and the first language it stands for."""

    voice: str
    l1: str
    description: str


#: Accent groups whose phones were checked to differ (docs/corpus.md has the distances).
ACCENTS: dict[str, Accent] = {a.voice: a for a in (
    Accent("en-us", "english", "General American"),
    Accent("en-us-nyc", "english", "New York City"),
    Accent("en", "english", "British English (espeak default)"),
    Accent("en-gb-x-rp", "english", "Received Pronunciation"),
    Accent("en-gb-scotland", "english", "Scottish English"),
    Accent("en-gb-x-gbclan", "english", "Lancastrian"),
    Accent("en-gb-x-gbcwmd", "english", "West Midlands"),
    Accent("en-029", "english", "Caribbean English"),
    Accent("es", "spanish", "Spanish voice reading English"),
    Accent("it", "italian", "Italian voice reading English"),
    Accent("pl", "polish", "Polish voice reading English"),
    Accent("de", "german", "German voice reading English"),
    Accent("pt", "portuguese", "Portuguese voice reading English"),
)}

#: Variants by gender (files in espeak-ng-data/voices/!v with a `gender` line).
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")


@dataclass(frozen=True)
class SyntheticConfig:
    """What to synthesise.

    Parameters
    ----------
    name : str
        Preset name, used in the cache folder name.
    groups : tuple of str
        Accent group voices, keys of :data:`ACCENTS`.
    speakers_per_group : int
        Alternately male and female, starting with male.
    sentences_per_speaker : int
        Each speaker reads one block of this many sentences.
    sentence_pool : int
        How many Harvard sentences are used; a multiple of ``sentences_per_speaker``.
    seed : int
        Chooses the sentences, each speaker's variant, pitch and rate, and espeak's noise.
    pitch_range, rate_range : tuple of int
        Inclusive ranges for espeak's pitch (0-100) and rate (words per minute).
    sample_rate : int
        Hz of the WAV files.
    """

    name: str = "custom"
    groups: tuple[str, ...] = ("en-us", "en-gb-scotland", "es")
    speakers_per_group: int = 2
    sentences_per_speaker: int = 3
    sentence_pool: int = 6
    seed: int = 0
    pitch_range: tuple[int, int] = (35, 65)
    rate_range: tuple[int, int] = (150, 190)
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "pitch_range", tuple(self.pitch_range))
        object.__setattr__(self, "rate_range", tuple(self.rate_range))
        unknown = [g for g in self.groups if g not in ACCENTS]
        if unknown:
            raise CorpusError(f"unknown accent group(s) {unknown}; known: {sorted(ACCENTS)}")
        if not self.groups or len(set(self.groups)) != len(self.groups):
            raise CorpusError(f"groups must be non-empty and distinct, got {self.groups}")
        if not 1 <= self.speakers_per_group <= len(MALE_VARIANTS) + len(FEMALE_VARIANTS):
            raise CorpusError(f"speakers_per_group must be 1-13, got {self.speakers_per_group}")
        if self.sentences_per_speaker < 1 or self.sentence_pool < self.sentences_per_speaker:
            raise CorpusError("need 1 <= sentences_per_speaker <= sentence_pool, got "
                              f"{self.sentences_per_speaker} and {self.sentence_pool}")
        if self.sentence_pool % self.sentences_per_speaker:
            raise CorpusError(f"sentence_pool ({self.sentence_pool}) must be a multiple of "
                              f"sentences_per_speaker ({self.sentences_per_speaker})")
        if self.sentence_pool > len(harvard_sentences()):
            raise CorpusError(f"sentence_pool {self.sentence_pool} exceeds the "
                              f"{len(harvard_sentences())} shipped sentences")
        lo, hi = self.pitch_range
        if not 0 <= lo <= hi <= 100:
            raise CorpusError(f"pitch_range must lie in 0-100, got {self.pitch_range}")
        lo, hi = self.rate_range
        if not 80 <= lo <= hi <= 450:
            raise CorpusError(f"rate_range must lie in 80-450, got {self.rate_range}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def fingerprint(self) -> str:
        """Short hash of everything that changes the output (the name excluded)."""
        d = self.to_dict()
        d.pop("name")
        d["generator_version"] = GENERATOR_VERSION
        d["sentences"] = harvard_sentences()[: self.sentence_pool]  # the text, not just ids
        blob = json.dumps(d, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def n_utterances(self) -> int:
        return len(self.groups) * self.speakers_per_group * self.sentences_per_speaker


PRESETS: dict[str, SyntheticConfig] = {
    # Tests: three clearly different groups, one male and one female speaker each.
    "small": SyntheticConfig(name="small", groups=("en-us", "en-gb-scotland", "es"),
                             speakers_per_group=2, sentences_per_speaker=3, sentence_pool=6),
    # The demo: 10 groups x 10 speakers (5 male, 5 female) x 5 sentences = 500 utterances
    # (about 19 minutes of audio; Whisper tiny encodes it in about 3 minutes on 2 CPU cores).
    # Ten speakers per group leave five unseen test speakers per group in a half/half speaker
    # split: with fewer, a paired sign-flip test over speakers cannot reach p < 0.05.
    "default": SyntheticConfig(
        name="default",
        groups=("en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbcwmd",
                "es", "it", "pl", "de", "pt"),
        speakers_per_group=10, sentences_per_speaker=5, sentence_pool=40),
}


def resolve_config(config: SyntheticConfig | str, **overrides) -> SyntheticConfig:
    """A config from a preset name or a config, with fields replaced by ``overrides``."""
    if isinstance(config, str):
        if config not in PRESETS:
            raise CorpusError(f"unknown synthetic corpus preset {config!r}; known: "
                              f"{sorted(PRESETS)}")
        config = PRESETS[config]
    if not isinstance(config, SyntheticConfig):
        raise CorpusError(f"expected a SyntheticConfig or a preset name, got {config!r}")
    return replace(config, **overrides) if overrides else config


# -- speakers -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpeakerPlan:
    """One synthetic speaker: an accent group, a voice variant, pitch and rate."""

    id: str
    accent: str
    variant: str
    gender: str
    pitch: int
    rate: int
    block: int  # which block of sentences this speaker reads
    seed: int = field(default=0)  # espeak noise seed


def speaker_plan(config: SyntheticConfig) -> list[SpeakerPlan]:
    """Every speaker of the corpus, deterministic in ``config``.

    Within a group, variants are drawn without replacement (so no two speakers of a group
    share a voice quality) and genders alternate, starting with male. Speaker ``i`` of group
    ``g`` reads sentence block ``(g + i) mod n_blocks``: each group covers every block when it
    has at least ``n_blocks`` speakers, and blocks are read equally often across groups.
    """
    n_blocks = config.sentence_pool // config.sentences_per_speaker
    out = []
    for g, accent in enumerate(config.groups):
        # One generator per group: adding a group does not change the others' speakers.
        rng = np.random.default_rng([config.seed, g, 7])
        males = list(rng.permutation(MALE_VARIANTS))
        females = list(rng.permutation(FEMALE_VARIANTS))
        for i in range(config.speakers_per_group):
            use_male = bool(i % 2 == 0 and males) or not females
            variant = str(males.pop(0) if use_male else females.pop(0))
            pitch = int(rng.integers(config.pitch_range[0], config.pitch_range[1] + 1))
            rate = int(rng.integers(config.rate_range[0], config.rate_range[1] + 1))
            out.append(SpeakerPlan(
                id=f"{accent}_{variant}", accent=accent, variant=variant,
                gender="male" if use_male else "female", pitch=pitch, rate=rate,
                block=(g + i) % n_blocks, seed=int(rng.integers(0, 2**31 - 1))))
    return out


def sentence_plan(config: SyntheticConfig) -> list[list[tuple[str, str]]]:
    """The sentence blocks: ``sentence_pool`` sentences drawn with ``seed``, cut into blocks."""
    pool = harvard_sentences()
    rng = np.random.default_rng([config.seed, 11])
    chosen = [pool[i] for i in sorted(rng.permutation(len(pool))[: config.sentence_pool])]
    k = config.sentences_per_speaker
    # Shuffle before cutting so a block mixes Harvard lists.
    order = rng.permutation(len(chosen))
    chosen = [chosen[i] for i in order]
    return [chosen[b * k:(b + 1) * k] for b in range(config.sentence_pool // k)]
