"""probekit.bias: speaker-level group metrics, permutation tests, layerwise curves, cross-group
transfer and the random-variance vs systematic-bias decomposition (see docs/concepts.md).

Entry points: :class:`GroupMetrics` (one slice), :func:`layerwise_bias`,
:func:`cross_group_transfer`, :func:`speaker_dispersion`, :func:`mixed_effects`,
:func:`type_groups`, and :func:`analyze` (all of them from a results table); the
``probekit analyze`` command writes their tables and figures.
"""

from probekit.bias.analysis import Analysis, analyze
from probekit.bias.decomposition import TYPES, type_groups, typing_rule
from probekit.bias.dispersion import speaker_dispersion
from probekit.bias.errors import BiasInputError, TooFewSpeakersError
from probekit.bias.layerwise import LayerwiseBias, layerwise_bias
from probekit.bias.metrics import GroupMetrics, gap_statistics
from probekit.bias.mixed import mixed_effects
from probekit.bias.permutation import group_vs_rest, holm, paired_signflip
from probekit.bias.simulate import simulate_embeddings, simulate_results
from probekit.bias.speakers import SpeakerMatrix, speaker_matrix
from probekit.bias.transfer import POOLED, Transfer, cross_group_transfer

__all__ = ["Analysis", "analyze", "TYPES", "type_groups", "typing_rule", "speaker_dispersion",
           "BiasInputError", "TooFewSpeakersError", "LayerwiseBias", "layerwise_bias",
           "GroupMetrics", "gap_statistics", "mixed_effects", "group_vs_rest", "holm",
           "paired_signflip", "simulate_embeddings", "simulate_results", "SpeakerMatrix",
           "speaker_matrix", "POOLED", "Transfer", "cross_group_transfer"]
from probekit.bias.compare import Comparison, LeakageError, SeenIds, compare_encoders, paired_change  # noqa: E402,F401
