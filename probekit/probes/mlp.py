"""One-hidden-layer MLP probe (ReLU) in torch, with early stopping on an internal split."""

from __future__ import annotations


import numpy as np
import torch
from sklearn.model_selection import train_test_split

from ._base import ProbeBase, early_stopping_loop, softmax, standardizer
from probekit.device import resolve_device


class MLPProbe(ProbeBase):
    """``softmax(W2 relu(W1 z + b1) + b2)`` on standardised features ``z``.

    Minimises, like sklearn's ``MLPClassifier``, the mean cross-entropy plus
    ``alpha / (2 n) * (||W1||^2 + ||W2||^2)`` (biases unpenalised), with Adam on shuffled
    minibatches or full-batch L-BFGS. With ``early_stopping`` a stratified
    ``validation_fraction`` of the training rows, drawn with ``random_state``, is held out;
    training stops after ``n_iter_no_change`` epochs without a better validation loss and
    the best weights are kept. Deterministic given ``random_state`` (init, split and
    shuffling all draw from generators seeded by it, never from the global RNG).

    Parameters
    ----------
    hidden_size : int, default 256
    alpha : float, default 1e-4     L2 strength (weight decay), sklearn's scaling
    solver : "adam" | "lbfgs", default "adam"
    learning_rate : float, default 1e-3 (Adam only)
    batch_size : int, default 256 (Adam only)
    max_epochs : int, default 200   epochs (Adam) or L-BFGS iterations
    early_stopping : bool, default True
    validation_fraction : float, default 0.1
    n_iter_no_change : int, default 10
    standardize : bool, default True
    device : "cpu" | "cuda" | "auto"
    random_state : int or None

    Attributes
    ----------
    classes_ : ndarray (K,); n_features_in_ : int; mean_, scale_ : ndarray (d,)
    model_ : torch.nn.Sequential (on CPU); n_iter_ : int; best_val_loss_ : float or None
    """

    def __init__(self, hidden_size=256, alpha=1e-4, solver="adam", learning_rate=1e-3,
                 batch_size=256, max_epochs=200, early_stopping=True, validation_fraction=0.1,
                 n_iter_no_change=10, standardize=True, device="cpu", random_state=None):
        self.hidden_size = hidden_size
        self.alpha = alpha
        self.solver = solver
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.standardize = standardize
        self.device = device
        self.random_state = random_state

    def fit(self, X, y):
        """Fit on ``X`` (n, d), ``y`` (n,) hashable labels. Returns self."""
        X, y_idx = self._validate_fit(X, y)
        if self.solver not in ("adam", "lbfgs"):
            raise ValueError(f"solver must be 'adam' or 'lbfgs'; got {self.solver!r}")
        seed = np.random.RandomState(self.random_state).randint(2**31 - 1)
        dev = resolve_device(self.device)
        mean, scale = standardizer(X, self.standardize)
        Z = ((X - mean) / scale).astype(np.float32)

        tr, va = np.arange(len(Z)), None
        if self.early_stopping:
            tr, va = self._split(y_idx, seed)
        gen = torch.Generator().manual_seed(int(seed))
        model = self._build(Z.shape[1], len(self.classes_), gen).to(dev)
        Zt = torch.from_numpy(Z).to(dev)
        yt = torch.from_numpy(y_idx).to(dev)
        penalised = [model[0].weight, model[2].weight]
        n_tr = len(tr)

        def objective(idx):
            ce = torch.nn.functional.cross_entropy(model(Zt[idx]), yt[idx])
            return ce + self.alpha / (2 * n_tr) * sum((p * p).sum() for p in penalised)

        def val_loss():
            with torch.no_grad():
                return float(torch.nn.functional.cross_entropy(model(Zt[va]), yt[va]))

        tr_t = torch.from_numpy(tr).to(dev)
        if self.solver == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=self.learning_rate)
        else:
            opt = torch.optim.LBFGS(model.parameters(), max_iter=1, history_size=20,
                                    line_search_fn="strong_wolfe")

        def run_epoch():
            if self.solver == "adam":
                order = tr_t[torch.randperm(n_tr, generator=gen).to(dev)]
                for start in range(0, n_tr, self.batch_size):
                    opt.zero_grad()
                    objective(order[start:start + self.batch_size]).backward()
                    opt.step()
            else:
                def closure():
                    opt.zero_grad()
                    loss = objective(tr_t)
                    loss.backward()
                    return loss
                opt.step(closure)

        self.n_iter_, self.best_val_loss_ = early_stopping_loop(
            model, run_epoch, val_loss, max_epochs=self.max_epochs,
            n_iter_no_change=self.n_iter_no_change, validate=va is not None)
        self.model_ = model.cpu().eval()
        self.mean_, self.scale_ = mean, scale
        return self

    def _split(self, y_idx, seed):
        idx = np.arange(len(y_idx))
        n_val = int(np.ceil(self.validation_fraction * len(idx)))
        if not 0 < n_val < len(idx):
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves no training or validation "
                f"rows out of {len(idx)}; set early_stopping=False for tiny data")
        counts = np.bincount(y_idx)
        # Stratify when every class can appear on both sides; otherwise a plain random split.
        stratify = y_idx if counts.min() >= 2 and n_val >= len(counts) else None
        return train_test_split(idx, test_size=n_val, random_state=seed % (2**32), stratify=stratify)

    def _build(self, d, k, gen):
        model = torch.nn.Sequential(torch.nn.Linear(d, self.hidden_size), torch.nn.ReLU(),
                                    torch.nn.Linear(self.hidden_size, k))
        # Re-draw torch's default (Kaiming-uniform-like) init from our generator, not the global RNG.
        with torch.no_grad():
            for layer in (model[0], model[2]):
                bound = 1.0 / np.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.uniform_(-bound, bound, generator=gen)
        return model

    def decision_function(self, X):
        """Logits, (n, d) -> (n, K)."""
        X = self._validate_predict(X)
        Z = ((X - self.mean_) / self.scale_).astype(np.float32)
        with torch.no_grad():
            return self.model_(torch.from_numpy(Z)).double().numpy()

    def predict_proba(self, X):
        """Class probabilities, (n, d) -> (n, K)."""
        return softmax(self.decision_function(X))
