"""The probe estimators, one import away. Each follows scikit-learn's classifier contract.

- :class:`LinearProbe` (``linear.py``): closed-form ridge on one-hot targets from
  :class:`SufficientStats`, which add and subtract across groups.
- :class:`LDAProbe` (``lda.py``): closed-form shared-covariance LDA with OAS shrinkage
  from the same statistics (the grid's default ``"lda"`` probe).
- :class:`TorchLogisticProbe` and :func:`fit_logistic_batched` (``logistic.py``): L2
  multinomial logistic regression, full-batch L-BFGS, many problems as one.
- :class:`MLPProbe` (``mlp.py``): one ReLU hidden layer, early stopping.
"""

from .lda import LDAProbe
from .linear import LinearProbe, SufficientStats
from .logistic import TorchLogisticProbe, fit_logistic_batched
from .mlp import MLPProbe

__all__ = ["LDAProbe", "LinearProbe", "MLPProbe", "SufficientStats", "TorchLogisticProbe", "fit_logistic_batched"]
