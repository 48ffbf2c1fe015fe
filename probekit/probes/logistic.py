"""Multinomial logistic regression in torch, full-batch L-BFGS, one or many problems at once."""

from __future__ import annotations

import numpy as np
import torch

from probekit.device import resolve_device

from ._base import LinearScoresBase, standardizer

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def fit_logistic_batched(X, y, n_classes, *, weights=None, C=1.0, max_iter=100, tol=1e-4,
                         device="cpu", dtype="float32", history_size=20):
    """Fit K independent L2 multinomial logistic regressions as one L-BFGS problem.

    Problem k minimises sklearn's ``LogisticRegression`` objective (lbfgs, multinomial)

        L_k(W_k, b_k) = sum_i w_ki * CE(softmax(W_k^T x_i + b_k), y_ki) + 0.5 / C * ||W_k||_F^2

    with the intercept ``b_k`` unpenalised. The joint objective is ``sum_k L_k / n_k``
    (``n_k = sum_i w_ki``): the 1/n_k rescaling leaves every minimiser unchanged but gives
    all problems gradients of similar size, so one tolerance serves them all. Since the
    problems share no parameters, the joint minimiser is exactly the K separate minimisers;
    the batch only shares L-BFGS's line search and matmuls.

    Parameters
    ----------
    X : array or tensor (n, d)
        Shared features (standardise beforehand if wanted).
    y : int array (n,) or (K, n)
        Class indices in ``[0, n_classes)``: one label vector for all problems, or one each.
    n_classes : int
    weights : array (K, n) or None
        Row weights per problem; a 0/1 mask selects a row subset (e.g. one speaker group or
        one bootstrap resample). ``None`` means all ones; K is then taken from ``y``.
    C : float or array (K,)
        Inverse L2 strength per problem, as in sklearn.
    max_iter : int       L-BFGS iterations (torch ``max_iter``).
    tol : float          stop when the max-abs gradient of the joint objective is below tol.
    device : "cpu" | "cuda" | "auto"
    dtype : "float32" | "float64"

    Returns
    -------
    W : ndarray (K, d, n_classes)
    b : ndarray (K, n_classes)
    n_iter : int         L-BFGS iterations used
    """
    dev = resolve_device(device)
    tdt = _DTYPES[dtype]
    X = torch.as_tensor(np.asarray(X), dtype=tdt, device=dev)
    n, d = X.shape
    y = torch.as_tensor(np.asarray(y), dtype=torch.long, device=dev)
    if weights is None:
        K = 1 if y.ndim == 1 else y.shape[0]
        w = torch.ones(K, n, dtype=tdt, device=dev)
    else:
        w = torch.as_tensor(np.asarray(weights), dtype=tdt, device=dev)
        if w.ndim != 2 or w.shape[1] != n:
            raise ValueError(f"weights must have shape (K, {n}); got {tuple(w.shape)}")
        K = w.shape[0]
    Y = y.expand(K, n) if y.ndim == 1 else y
    if Y.shape != (K, n):
        raise ValueError(f"y must have shape ({n},) or ({K}, {n}); got {tuple(y.shape)}")
    if int(Y.min()) < 0 or int(Y.max()) >= n_classes:
        raise ValueError(f"class indices must lie in [0, {n_classes}); got [{int(Y.min())}, {int(Y.max())}]")
    n_k = w.sum(1)
    if torch.any(n_k <= 0):
        raise ValueError(f"problems {torch.nonzero(n_k <= 0).flatten().tolist()} have no rows")
    inv_c = 1.0 / torch.as_tensor(np.broadcast_to(np.asarray(C, dtype=float), (K,)).copy(), dtype=tdt, device=dev)
    if torch.any(inv_c <= 0):
        raise ValueError(f"C must be > 0; got {C!r}")

    # Zero init, as sklearn: the objective is strictly convex so the start only affects speed.
    W = torch.zeros(K, d, n_classes, dtype=tdt, device=dev, requires_grad=True)
    b = torch.zeros(K, n_classes, dtype=tdt, device=dev, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, history_size=history_size,
                            tolerance_grad=tol, tolerance_change=1e-15 if dtype == "float64" else 1e-9,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = torch.einsum("nd,kdc->knc", X, W) + b[:, None, :]  # (K, n, c)
        ce = torch.nn.functional.cross_entropy(logits.reshape(K * n, n_classes), Y.reshape(-1),
                                               reduction="none").view(K, n)
        per_problem = (w * ce).sum(1) + 0.5 * inv_c * (W * W).sum((1, 2))
        loss = (per_problem / n_k).sum()
        loss.backward()
        return loss

    opt.step(closure)
    n_iter = opt.state[opt._params[0]].get("n_iter", 0)
    return W.detach().cpu().numpy(), b.detach().cpu().numpy(), int(n_iter)


class TorchLogisticProbe(LinearScoresBase):
    """Multinomial logistic regression with an L2 penalty, trained by full-batch L-BFGS in torch.

    Minimises sklearn's objective (``LogisticRegression(solver="lbfgs")``)

        sum_i CE(softmax(W^T z_i + b), y_i) + 0.5 / C * ||W||_F^2,   b unpenalised,

    where ``z`` are the (optionally standardised) features; see :func:`fit_logistic_batched`.
    With ``standardize=False`` the model and minimiser are sklearn's on the same X.

    Parameters
    ----------
    C : float, default 1.0         inverse L2 strength, as in sklearn
    standardize : bool, default True
        Standardise with the training mean/std first (better conditioned L-BFGS; the penalty
        then acts on standardised weights, so it differs from sklearn on raw X).
    max_iter : int, default 100
    tol : float, default 1e-4      max-abs gradient of the (1/n-scaled) objective at which to stop
    device : "cpu" | "cuda" | "auto", default "cpu"
    dtype : "float32" | "float64", default "float32"
    random_state : None or int
        Accepted for the contract; the fit is deterministic (zero init, full batch).

    Attributes
    ----------
    classes_ : ndarray (K,); n_features_in_ : int
    coef_ : ndarray (K, d) on raw features; intercept_ : ndarray (K,)
    mean_, scale_ : ndarray (d,); n_iter_ : int
    """

    def __init__(self, C=1.0, standardize=True, max_iter=100, tol=1e-4, device="cpu",
                 dtype="float32", random_state=None):
        self.C = C
        self.standardize = standardize
        self.max_iter = max_iter
        self.tol = tol
        self.device = device
        self.dtype = dtype
        self.random_state = random_state

    def fit(self, X, y):
        """Fit on ``X`` (n, d), ``y`` (n,) hashable labels. Returns self."""
        X, y_idx = self._validate_fit(X, y)
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}; got {self.dtype!r}")
        mean, scale = standardizer(X, self.standardize)
        Z = (X - mean) / scale
        W, b, self.n_iter_ = fit_logistic_batched(
            Z, y_idx, len(self.classes_), C=self.C, max_iter=self.max_iter, tol=self.tol,
            device=self.device, dtype=self.dtype)
        coef = W[0].astype(np.float64) / scale[:, None]  # fold standardisation into the weights
        self.coef_ = coef.T
        self.intercept_ = b[0].astype(np.float64) - mean @ coef
        self.mean_, self.scale_ = mean, scale
        return self

