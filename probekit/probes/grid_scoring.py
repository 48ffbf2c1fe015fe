"""Test errors of the grid's closed-form probes: every test row read once per layer.

:func:`stream_errors` stacks the coefficients of every probe of a seed (fitted from shared
statistics, :mod:`probekit.probes.grid_stats`) and scores each block of test rows for all
of them in one float32 product; a row whose two best scores of a probe are closer than the
float32 rounding bound is re-scored in float64, so every prediction is the float64 one
(``LDAProbe.predict``'s). Scoring is the same work as the per-cell path's predictions and,
at study size, the larger part of the grid (docs/probes.md).
"""

from __future__ import annotations

import numpy as np

from probekit.probes.grid_stats import BLOCK, layer_reader

__all__ = ["stream_errors", "ERR_UNITS", "F32_EPS"]

#: float32 unit roundoff, and the safety factor on the scoring error bound.
F32_EPS = float(np.finfo(np.float32).eps) / 2
ERR_UNITS = 4.0


def _stack(items) -> dict:
    """One seed's probes as one float32 product, scores laid out ``(class, probe, row)``:
    row ``k * P + j`` of ``W`` scores class ``k`` of probe ``j`` (a probe with fewer classes
    is padded with ``w = 0``, ``b = -inf``), so the reductions over classes run on
    contiguous ``(probe, row)`` slices; and the error bound's ``max_k |w_k|`` and
    ``max_k |b_k|`` per probe."""
    P, d = len(items), items[0][1].coef_.shape[1]
    K = max(len(est.classes_) for _, est in items)
    W, b = np.zeros((K, P, d), dtype=np.float32), np.full((K, P, 1), -np.inf, dtype=np.float32)
    for j, (_, est) in enumerate(items):
        W[:len(est.classes_), j] = est.coef_
        b[:len(est.classes_), j, 0] = est.intercept_
    wn = [np.sqrt((est.coef_ ** 2).sum(1)).max() for _, est in items]
    bn = [np.abs(est.intercept_).max() for _, est in items]
    return {"W": W.reshape(K * P, d), "b": b, "K": K, "items": items,
            "wn": np.array(wn, dtype=np.float32)[:, None],
            "bn": np.array(bn, dtype=np.float32)[:, None]}


def _predict_checked(X32, Xh, st) -> np.ndarray:
    """Class index per probe and row of a seed, ``(P, rows)``, from float32 scores; a
    (probe, row) whose runner-up is within the float32 error bound of its best score (or
    whose scores are not finite) is re-scored in float64 from ``Xh`` (the same rows as
    stored, indexed only there)."""
    K, items = st["K"], st["items"]
    S = (st["W"] @ X32.T).reshape(K, len(items), len(X32))
    S += st["b"]
    unit = np.float32(ERR_UNITS * (X32.shape[1] + 4) * F32_EPS)
    xnorm = np.sqrt(np.einsum("ij,ij->i", X32, X32))
    near = S >= S.max(0) - unit * (xnorm * st["wn"] + st["bn"])
    small = np.int8 if K < 127 else np.int32
    count = np.add.reduce(near, axis=0, dtype=small)
    # where exactly one class is near the best, it is the best: its index is the sum
    top = np.einsum("kpn,k->pn", near.view(np.int8).astype(small, copy=False),
                    np.arange(K, dtype=small)).astype(np.int64)
    redo = count != 1  # ties within the bound, NaN, inf
    for j in np.flatnonzero(redo.any(1)):
        r = np.flatnonzero(redo[j])
        est = items[j][1]
        exact = np.asarray(Xh[r], dtype=np.float64) @ est.coef_.T + est.intercept_
        top[j, r] = np.argmax(exact, axis=1)
    return top


class _Rows:
    """``Xb[at][r]`` without copying ``Xb[at]``: the few rows re-scored in float64."""

    def __init__(self, Xb, at):
        self.Xb, self.at = Xb, at

    def __getitem__(self, r):
        return self.Xb[self.at[r]]


def stream_errors(X, y: np.ndarray, tests: dict, models: dict, block: int = BLOCK) -> dict:
    """Test errors of fitted linear probes, one pass over the test rows.

    ``tests``: seed -> sorted test rows; ``models``: key -> (seed, fitted probe with
    ``coef_``, ``intercept_``, ``classes_``). Each block of rows (the union of every seed's)
    is read once and scored by the stacked coefficients of every probe of each seed in
    float32. A row whose runner-up score of a probe is within the float32 error bound of
    its best (:data:`ERR_UNITS` x ``(d + 4)`` float32 roundoffs x ``(|x| max_k |w_k| +
    max_k |b_k|)``: the rounding of ``x``, ``w``, ``b``, the products and the sums in any
    order; float16 rows are exact in float32) is re-scored in float64, so every prediction
    is the float64 one (``LDAProbe.predict``'s). Returns key -> boolean array over
    ``tests[seed]`` (True = wrong).
    """
    by_seed: dict = {}
    for key, (seed, est) in models.items():
        by_seed.setdefault(seed, []).append((key, est))
    stacked = {seed: _stack(items) for seed, items in by_seed.items()}
    wrong = {key: np.zeros(len(tests[seed]), dtype=bool) for key, (seed, _) in models.items()}
    union = np.unique(np.concatenate([tests[s] for s in by_seed])) if by_seed else []
    read = layer_reader(X)
    for start in range(0, len(union), block):
        rows = union[start:start + block]
        Xb = np.asarray(read(rows))
        X32 = Xb.astype(np.float32)
        for seed, st in stacked.items():
            t = tests[seed]
            pos = np.searchsorted(t, rows).clip(0, max(len(t) - 1, 0))
            hit = t[pos] == rows
            if not hit.any():
                continue
            if hit.all():
                top = _predict_checked(X32, Xb, st)
            else:
                at = np.flatnonzero(hit)
                top = _predict_checked(X32[at], _Rows(Xb, at), st)
            truth = y[rows[hit]]
            for j, (key, est) in enumerate(st["items"]):
                wrong[key][pos[hit]] = est.classes_[top[j]] != truth
    return wrong
