"""probekit.probes: probe estimators following scikit-learn's contract (see docs/)."""

from .estimators import LinearProbe, MLPProbe, SufficientStats, TorchLogisticProbe, fit_logistic_batched

__all__ = ["LinearProbe", "MLPProbe", "SufficientStats", "TorchLogisticProbe", "fit_logistic_batched"]
