"""Batch samplers: group-balanced (for losses that compare groups) and uniform.

Group-DRO and IRM compare groups within a batch, so a batch with one group gives them
nothing to compare, and a batch with one utterance per group makes the "group" risk one
utterance's: :class:`GroupBalancedBatchSampler` draws several groups with at least
``min_per_group`` utterances each. ERM (the baseline) and MAS-LoRA are trained on uniform
batches (:class:`UniformBatchSampler`), as both reference implementations do: balancing is
itself a fairness intervention and would confound the comparison.

Both are pure functions of ``(seed, step)`` and generate their stream incrementally (linear
in the number of steps, so 28k steps cost what 28k batches cost).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.objectives import ObjectiveError

__all__ = ["GroupBalancedBatchSampler", "UniformBatchSampler", "default_groups_per_batch"]


def default_groups_per_batch(n_groups: int, batch_size: int, min_per_group: int = 2) -> int:
    """All groups, capped so that each gets at least ``min_per_group`` utterances."""
    return max(1, min(n_groups, batch_size // max(min_per_group, 1)))


class _Incremental:
    """Memo of a deterministic batch stream, extended as needed (never regenerated)."""

    def _reset(self) -> None:
        self._batches: list[list[int]] = []
        self._state = self._start()

    def batch(self, step: int) -> list[int]:
        """Indices of batch number ``step`` (0-based)."""
        if step < 0:
            raise ObjectiveError(f"step must be >= 0, got {step}")
        while len(self._batches) <= step:
            self._batches.append(self._next(self._state))
        return self._batches[step]

    def __iter__(self):
        for s in range(len(self)):
            yield self.batch(s)


class GroupBalancedBatchSampler(_Incremental):
    """Deterministic batches of indices, ``batch_size // groups_per_batch`` from each group.

    Parameters
    ----------
    groups : sequence of str
        The group of each dataset item.
    batch_size : int
    groups_per_batch : int, optional
        Groups drawn into each batch (default: all, capped at ``batch_size``; the trainer's
        default caps it at ``batch_size // min_per_group``). Groups take turns in a shuffled
        order, so over an epoch all of them appear equally often.
    seed : int
    min_per_group : int, optional
        Refuse a ``groups_per_batch`` that leaves a group fewer utterances than this.

    Notes
    -----
    Each group's items are reshuffled whenever that group runs out, so smaller groups are
    revisited more often (over-sampling). :meth:`batch` is a pure function of
    ``(seed, step)``: a resumed run sees the same batches as an uninterrupted one.
    ``len(self)`` is the number of batches in one epoch (``ceil(n_items / batch_size)``).
    """

    def __init__(self, groups: Sequence[str], batch_size: int, groups_per_batch: int | None = None,
                 seed: int = 0, min_per_group: int | None = None) -> None:
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
        if min_per_group and batch_size // self.groups_per_batch < min_per_group:
            raise ObjectiveError(
                f"{self.groups_per_batch} groups per batch of {batch_size} leave "
                f"{batch_size // self.groups_per_batch} utterance(s) per group, fewer than "
                f"{min_per_group}: the group risks would be single utterances; use "
                f"groups_per_batch <= {batch_size // min_per_group} or a larger batch")
        self._reset()

    def __len__(self) -> int:
        return -(-self.n_items // self.batch_size)

    def _start(self) -> dict:
        return {"rng": np.random.default_rng(self.seed), "pools": {g: [] for g in self.names},
                "order": []}

    def _stream(self, steps: int) -> list[list[int]]:
        """The first ``steps`` batches, from scratch (kept for reference; :meth:`batch`
        extends one stream instead)."""
        st = self._start()
        return [self._next(st) for _ in range(steps)]

    def _next(self, st: dict) -> list[int]:
        rng, pools = st["rng"], st["pools"]
        order = st["order"]
        chosen = []
        while len(chosen) < self.groups_per_batch:
            if not order:
                order.extend(rng.permutation(self.names))
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
        return batch


class UniformBatchSampler(_Incremental):
    """Deterministic uniform batches: the items in a reshuffled order, epoch after epoch.

    Same interface as :class:`GroupBalancedBatchSampler` (``batch(step)``, ``len``); a batch
    may straddle two epochs. Group shares follow the data, as in plain fine-tuning.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int = 0) -> None:
        if batch_size < 1:
            raise ObjectiveError(f"batch_size must be >= 1, got {batch_size}")
        if n_items < 1:
            raise ObjectiveError("no items to sample from")
        self.n_items, self.batch_size, self.seed = int(n_items), int(batch_size), seed
        self._reset()

    def __len__(self) -> int:
        return -(-self.n_items // self.batch_size)

    def _start(self) -> dict:
        return {"rng": np.random.default_rng(self.seed), "pool": []}

    def _next(self, st: dict) -> list[int]:
        out = []
        while len(out) < self.batch_size:
            if not st["pool"]:
                st["pool"] = list(st["rng"].permutation(self.n_items))
            out.append(int(st["pool"].pop(0)))
        return out
