"""Shared pieces of the objectives: the batch they see, per-utterance risks, the registry.

Every objective is a small callable class. It receives the decoder logits, the label ids and
each utterance's group, and returns a dict of named scalar tensors: ``"loss"`` (what the
trainer back-propagates) plus every term it is made of, for logging. Objectives never own an
optimizer; their hyperparameters carry the objective's name as a prefix (DomainBed style).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from probekit.errors import ProbekitError
from probekit.registry import Registry

__all__ = ["ObjectiveError", "ObjectiveInput", "Objective", "register_objective",
           "build_objective", "available_objectives", "utterance_risks", "group_risks",
           "IGNORE_INDEX"]

#: Label value of padded positions (the transformers convention).
IGNORE_INDEX = -100

_OBJECTIVES: Registry[type] = Registry("objective")


class ObjectiveError(ProbekitError, ValueError):
    """A bad objective name, weight or batch."""


@dataclass
class ObjectiveInput:
    """One batch as the objectives see it.

    Attributes
    ----------
    logits : torch.Tensor, shape (batch, tokens, vocab)
        Decoder logits (pre-softmax).
    labels : torch.LongTensor, shape (batch, tokens)
        Target ids aligned with ``logits``; :data:`IGNORE_INDEX` marks padding.
    groups : sequence of str, length batch
        Each utterance's group (environment), e.g. its accent.
    group_names : sequence of str, optional
        The groups of the *whole* (global) batch in a fixed order, the same on every process.
        Set by the trainer under DDP, where this process sees only its shard; ``None``: the
        groups of ``groups`` in order of first appearance.
    sync : bool
        Sum group statistics over all processes (:func:`all_sum`) before any max, mean or
        penalty, so a loss computed on a shard equals the loss of the whole batch. Only has
        an effect when ``torch.distributed`` is initialised with more than one process.
    weights : torch.Tensor, shape (batch,), optional
        Importance weights of the pooled (ERM, SD) terms: the trainer sets them under a
        group-balanced sampler for objectives with ``importance_weighted`` (training share
        of the utterance's group / its share of the batch), so those terms keep their
        empirical-risk meaning; :meth:`mean_risk` is then the self-normalised weighted mean.
        ``None``: unweighted.
    """

    logits: torch.Tensor
    labels: torch.Tensor
    groups: Sequence[str]
    group_names: Sequence[str] | None = None
    sync: bool = False
    weights: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.logits.dim() != 3 or self.labels.shape != self.logits.shape[:2]:
            raise ObjectiveError(f"logits (batch, tokens, vocab) and labels (batch, tokens) "
                                 f"disagree: {tuple(self.logits.shape)} vs "
                                 f"{tuple(self.labels.shape)}")
        if len(self.groups) != self.logits.shape[0]:
            raise ObjectiveError(f"{len(self.groups)} group labels for a batch of "
                                 f"{self.logits.shape[0]}")
        n_tokens = (self.labels != IGNORE_INDEX).sum(1)
        if bool((n_tokens == 0).any()):
            bad = int(torch.nonzero(n_tokens == 0)[0, 0])
            raise ObjectiveError(f"utterance {bad} of the batch has no target token")

    @property
    def mask(self) -> torch.Tensor:
        """(batch, tokens) bool, True on real target tokens."""
        return self.labels != IGNORE_INDEX

    def group_index(self) -> tuple[list[str], torch.Tensor]:
        """Distinct groups (:attr:`group_names`, else in order of first appearance) and each
        utterance's index into them."""
        if self.group_names is not None:
            names = list(self.group_names)
            missing = sorted(set(self.groups) - set(names))
            if missing:
                raise ObjectiveError(f"group(s) {missing} are not in group_names {names}")
        else:
            names = []
            for g in self.groups:
                if g not in names:
                    names.append(g)
        idx = torch.tensor([names.index(g) for g in self.groups], device=self.logits.device,
                           dtype=torch.long)
        return names, idx

    @property
    def distributed(self) -> bool:
        """Statistics are summed over processes (``sync`` and a multi-process group)."""
        return self.sync and world_size() > 1

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over processes when :attr:`distributed`, differentiably; else ``t``."""
        return all_sum(t) if self.distributed else t

    def group_stats(self, risks: torch.Tensor):
        """Global per-group risk sums and utterance counts, and the global utterance count.

        Returns ``(names, sums, counts, n)``; ``sums`` carries gradients (summed over
        processes with a differentiable all-reduce under DDP), ``counts`` and ``n`` do not.
        """
        names, idx = self.group_index()
        sums = torch.zeros(len(names), dtype=risks.dtype, device=risks.device).index_add(
            0, idx, risks)
        counts = torch.bincount(idx, minlength=len(names)).to(risks.dtype)
        if self.distributed:
            sums = all_sum(sums)
            counts = all_sum(counts.detach())
        return names, sums, counts, counts.sum()

    def mean_risk(self, risks: torch.Tensor) -> torch.Tensor:
        """Mean per-utterance risk over the whole (global) batch (importance-weighted and
        self-normalised when :attr:`weights` is set)."""
        if self.weights is None:
            num, den = risks.sum(), torch.tensor(float(risks.numel()), device=risks.device)
        else:
            w = self.weights.to(risks.device, risks.dtype)
            num, den = (w * risks).sum(), w.sum().detach()
        if self.distributed:
            num, den = all_sum(num), all_sum(den)
        return num / den


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over all processes, differentiable.

    A differentiable all-gather (``torch.distributed.nn.functional.all_gather``) then a sum:
    its backward hands each process the sum of every process's gradient, i.e. world-size
    times the gradient of the (identical) global loss; DDP's gradient *average* then divides
    that factor out again, so the parameters receive exactly the gradient of the loss of the
    whole batch (tested against one process in ``tests/training/test_ddp.py``).
    """
    from torch.distributed.nn.functional import all_gather

    return torch.stack(all_gather(t)).sum(0)


def utterance_risks(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token cross-entropy averaged over each utterance's own target tokens.

    Length normalisation makes every utterance weigh the same whatever its length, so a
    group's mean risk does not grow with its utterances' length (CTC-DRO, arXiv 2502.01777,
    shows naive group losses on ASR chase long utterances).

    Returns
    -------
    torch.Tensor, shape (batch,)
    """
    mask = labels != IGNORE_INDEX
    tok = F.cross_entropy(logits.transpose(1, 2).float(), labels.masked_fill(~mask, 0),
                          reduction="none")
    return (tok * mask).sum(1) / mask.sum(1)


def group_risks(risks: torch.Tensor, group_idx: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Mean of per-utterance risks within each group, shape (n_groups,); absent groups NaN."""
    sums = torch.zeros(n_groups, dtype=risks.dtype, device=risks.device).index_add(
        0, group_idx, risks)
    counts = torch.bincount(group_idx, minlength=n_groups).to(risks.dtype)
    return sums / counts  # 0/0 -> NaN marks a group missing from the batch


class Objective:
    """Base class. Subclasses set ``name`` and implement :meth:`__call__`.

    Attributes
    ----------
    needs_whole_batch : bool
        True when the loss is not a sum over utterances (hard-max Group-DRO), so splitting a
        batch into gradient-accumulation micro-batches would change it; the trainer refuses
        that combination.
    compares_groups : bool
        True for losses built from group risks (Group-DRO, IRM, fused with either): the
        trainer's ``sampler="auto"`` then balances groups; ERM and SD get uniform batches
        (group balancing is itself a fairness intervention).
    """

    name: str = ""
    needs_whole_batch: bool = False
    #: The loss compares groups within a batch (DRO, IRM): the trainer then draws
    #: group-balanced batches with several utterances per group; otherwise uniform batches.
    compares_groups: bool = False
    #: Its pooled ERM/SD terms take importance weights under a group-balanced sampler
    #: (``TrainConfig.importance_weights``), so they stay empirical risks.
    importance_weighted: bool = False

    def __call__(self, batch: ObjectiveInput) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # Stateful objectives (online Group-DRO) checkpoint their state with the trainer.
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self) -> str:
        hp = {k: v for k, v in vars(self).items() if k.startswith(self.name + "_")}
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in hp.items())})"


def register_objective(name: str):
    """Class decorator: make an :class:`Objective` subclass buildable by name. The same class
    again is allowed; another under a taken name raises
    :class:`~probekit.registry.RegistryError` naming both."""

    def deco(cls):
        if not (isinstance(cls, type) and issubclass(cls, Objective)):
            raise ObjectiveError(f"objective {name!r}: {cls!r} is not a subclass of Objective")
        _OBJECTIVES.add(name, cls)
        cls.name = name
        return cls

    return deco


def available_objectives() -> list[str]:
    """Registered objective names, sorted."""
    return _OBJECTIVES.names()


def build_objective(name: str, **hparams) -> Objective:
    """An objective by registry name with its hyperparameters (e.g. ``sd_lambda=0.06``)."""
    if name not in _OBJECTIVES:
        raise ObjectiveError(f"unknown objective {name!r}; available: {available_objectives()}")
    try:
        return _OBJECTIVES[name](**hparams)
    except TypeError as exc:
        raise ObjectiveError(f"objective {name!r}: {exc}") from None
