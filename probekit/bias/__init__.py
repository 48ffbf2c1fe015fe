"""probekit.bias: speaker-level group metrics, permutation tests, layerwise curves, cross-group
transfer and the random-variance vs systematic-bias decomposition (see docs/concepts.md)."""

from probekit.bias.errors import BiasInputError, TooFewSpeakersError
from probekit.bias.metrics import GroupMetrics, gap_statistics
from probekit.bias.speakers import SpeakerMatrix, speaker_matrix

__all__ = ["BiasInputError", "TooFewSpeakersError", "GroupMetrics", "gap_statistics",
           "SpeakerMatrix", "speaker_matrix"]
