"""probekit.probes: probe estimators (scikit-learn contract), tasks, the grid runner and the
results table that analysis reads."""

from .ctc import CTCProbe, aggregate_errors, ctc_errors, frames_by_utterance, normalize_text
from .lda import LDAProbe
from .linear import LinearProbe, SufficientStats
from .logistic import TorchLogisticProbe, fit_logistic_batched
from .mlp import MLPProbe
from .results import (CELL_KEYS, RESULT_COLUMNS, DuplicateCellsError, ResultsError, ResultsTable,
                      validate_results)

__all__ = ["CTCProbe", "aggregate_errors", "ctc_errors", "frames_by_utterance", "normalize_text",
           "LDAProbe", "LinearProbe", "MLPProbe", "SufficientStats", "TorchLogisticProbe",
           "fit_logistic_batched", "CELL_KEYS", "RESULT_COLUMNS", "ResultsError", "ResultsTable",
           "DuplicateCellsError", "validate_results"]
