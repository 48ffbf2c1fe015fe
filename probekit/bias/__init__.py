"""probekit.bias: speaker-level group metrics, permutation tests, layerwise curves, cross-group
transfer and the random-variance vs systematic-bias decomposition (see docs/concepts.md).

Entry points: :class:`GroupMetrics` (one slice), :func:`layerwise_bias`,
:func:`cross_group_transfer`, :func:`speaker_dispersion`, :func:`count_model`,
:func:`type_groups`, and :func:`analyze` (all of them from a results table); the
``probekit analyze`` command writes their tables and figures. Every group statistic comes
from one core, :func:`group_statistics`, with its weighting named (``speakers`` or
``items``; docs/concepts.md, "Weightings"); the before/after WER table is
:func:`probekit.bias.wer.wer_table`.
"""

from probekit.bias.analysis import Analysis, analyze
from probekit.bias.decomposition import TYPES, type_groups, typing_rule
from probekit.bias.design import SplitMatrix, split_matrix
from probekit.bias.dispersion import speaker_dispersion
from probekit.bias.errors import BiasInputError, TooFewSpeakersError
from probekit.bias.inference import holm, maxt_adjust, twoway_cluster_t
from probekit.bias.layerwise import LayerwiseBias, layerwise_bias
from probekit.bias.compare import Comparison, LeakageError, SeenIds, compare_encoders, paired_change
from probekit.bias.counts import count_model
from probekit.bias.metrics import GroupMetrics, group_statistics
from probekit.bias.permutation import group_vs_rest, paired_signflip
from probekit.bias.speakers import SpeakerMatrix, speaker_matrix
from probekit.bias.transfer import POOLED, Transfer, cross_group_transfer

__all__ = ["Analysis", "analyze", "TYPES", "type_groups", "typing_rule", "speaker_dispersion",
           "BiasInputError", "TooFewSpeakersError", "LayerwiseBias", "layerwise_bias",
           "GroupMetrics", "group_statistics", "count_model", "group_vs_rest", "holm", "maxt_adjust",
           "twoway_cluster_t", "paired_signflip",
           "SpeakerMatrix", "speaker_matrix", "SplitMatrix", "split_matrix", "POOLED",
           "Transfer", "cross_group_transfer", "Comparison", "LeakageError", "SeenIds",
           "compare_encoders", "paired_change"]
