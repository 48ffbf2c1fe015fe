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

__all__ = ["ObjectiveError", "ObjectiveInput", "Objective", "register_objective",
           "build_objective", "available_objectives", "utterance_risks", "group_risks",
           "IGNORE_INDEX"]

#: Label value of padded positions (the transformers convention).
IGNORE_INDEX = -100

_OBJECTIVES: dict[str, type] = {}


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
    """

    logits: torch.Tensor
    labels: torch.Tensor
    groups: Sequence[str]

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
        """Distinct groups in order of first appearance and each utterance's index into them."""
        names: list[str] = []
        for g in self.groups:
            if g not in names:
                names.append(g)
        idx = torch.tensor([names.index(g) for g in self.groups], device=self.logits.device)
        return names, idx


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
    """

    name: str = ""
    needs_whole_batch: bool = False

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
    """Class decorator: make an objective buildable by name."""

    def deco(cls):
        if name in _OBJECTIVES and _OBJECTIVES[name] is not cls:
            raise ObjectiveError(f"objective {name!r} is already registered")
        cls.name = name
        _OBJECTIVES[name] = cls
        return cls

    return deco


def available_objectives() -> list[str]:
    return sorted(_OBJECTIVES)


def build_objective(name: str, **hparams) -> Objective:
    """An objective by registry name with its hyperparameters (e.g. ``sd_lambda=0.06``)."""
    if name not in _OBJECTIVES:
        raise ObjectiveError(f"unknown objective {name!r}; available: {available_objectives()}")
    try:
        return _OBJECTIVES[name](**hparams)
    except TypeError as exc:
        raise ObjectiveError(f"objective {name!r}: {exc}") from None
