"""Corpora: utterances with speakers, group labels, transcripts and time alignments."""

from probekit.corpus.model import (
    MANIFEST_NAME,
    AudioSource,
    Corpus,
    Mispronunciation,
    Segment,
    Utterance,
)

__all__ = ["AudioSource", "Corpus", "Mispronunciation", "Segment", "Utterance", "MANIFEST_NAME"]
