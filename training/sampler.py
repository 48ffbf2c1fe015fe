"""A group-balanced batch sampler: every batch holds several groups in equal shares.

Group-DRO and IRM compare groups within a batch, so a batch with one group gives them
nothing to compare; balancing also stops the largest group from dominating ERM.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.objectives import ObjectiveError

__all__ = ["GroupBalancedBatchSampler"]


class GroupBalancedBatchSampler:
    """Deterministic batches of indices, ``batch_size // groups_per_batch`` from each group.

    Parameters
    ----------
    groups : sequence of str
        The group of each dataset item.
    batch_size : int
    groups_per_batch : int, optional
        Groups drawn into each batch (default: all, capped at ``batch_size``). Groups take
        turns in a shuffled order, so over an epoch all of them appear equally often.
    seed : int

    Notes
    -----
    Each group's items are reshuffled whenever that group runs out, so smaller groups are
    revisited more often (over-sampling). :meth:`batch` is a pure function of
    ``(seed, step)``: a resumed run sees the same batches as an uninterrupted one.
    ``len(self)`` is the number of batches in one epoch (``ceil(n_items / batch_size)``).
    """

    def __init__(self, groups: Sequence[str], batch_size: int, groups_per_batch: int | None = None,
                 seed: int = 0) -> None:
        if batch_size < 1:
            raise ObjectiveError(f"batch_size must be >= 1, got {batch_size}")
        self.names = sorted(set(groups))
        if not self.names:
            raise ObjectiveError("no items to sample from")
        self.members = {g: np.array([i for i, x in enumerate(groups) if x == g])
                        for g in self.names}
        self.n_items, self.batch_size, self.seed = len(groups), batch_size, seed
        self.groups_per_batch = min(groups_per_batch or len(self.names), len(self.names),
                                    batch_size)
        self._memo: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return -(-self.n_items // self.batch_size)

    def _stream(self, steps: int) -> list[list[int]]:
        rng = np.random.default_rng(self.seed)
        pools = {g: [] for g in self.names}
        order: list[str] = []
        batches = []
        for _ in range(steps):
            chosen = []
            while len(chosen) < self.groups_per_batch:
                if not order:
                    order = list(rng.permutation(self.names))
                g = order.pop(0)
                if g not in chosen:
                    chosen.append(g)
            shares = [self.batch_size // len(chosen)] * len(chosen)
            for k in range(self.batch_size - sum(shares)):
                shares[k] += 1
            batch = []
            for g, k in zip(chosen, shares):
                for _ in range(k):
                    if not pools[g]:
                        pools[g] = list(rng.permutation(self.members[g]))
                    batch.append(int(pools[g].pop(0)))
            batches.append(batch)
        return batches

    def batch(self, step: int) -> list[int]:
        """Indices of batch number ``step`` (0-based)."""
        if step not in self._memo:
            self._memo = dict(enumerate(self._stream(step + 64)))
        return self._memo[step]

    def __iter__(self):
        for s in range(len(self)):
            yield self.batch(s)
