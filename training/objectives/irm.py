"""Invariant risk minimisation (IRMv1), with accent groups as environments."""

from __future__ import annotations

import torch

from training.objectives.base import (Objective, ObjectiveInput, group_risks, register_objective,
                                      utterance_risks)


def irm_penalty(batch: ObjectiveInput) -> torch.Tensor:
    """IRMv1 penalty: mean over the batch's groups of ``(d R^e(w * logits) / d w |_{w=1})^2``.

    ``w`` is a dummy scalar scale on the logits; ``create_graph=True`` so the penalty itself
    is differentiated. It is zero when the logits are already optimally scaled for every
    group. The mean over environments (DomainBed) rather than the sum keeps it independent
    of how many groups a batch holds.
    """
    names, idx = batch.group_index()
    w = torch.ones((), device=batch.logits.device, requires_grad=True)
    per_group = group_risks(utterance_risks(batch.logits * w, batch.labels), idx, len(names))
    pens = []
    for g in range(len(names)):
        (grad,) = torch.autograd.grad(per_group[g], w, create_graph=True)
        pens.append(grad.pow(2))
    return torch.stack(pens).mean()


@register_objective("irm")
class IRM(Objective):
    """IRMv1: risk plus the gradient-norm penalty of a dummy classifier scale.

    Arjovsky et al., "Invariant Risk Minimization", 2019, Eq. (IRMv1):
    ``min sum_e R^e(Phi) + lambda ||grad_{w|w=1.0} R^e(w . Phi)||^2``; arXiv 2510.18374,
    Sec. 2.4. The risk term is kept: penalty-only IRM collapses transcription (reported by a
    re-implementation of the fused objective).

    Parameters
    ----------
    irm_lambda : float
        Penalty weight.

    Returns ``{"loss", "erm", "irm_penalty"}``.
    """

    def __init__(self, irm_lambda: float = 1.0) -> None:
        self.irm_lambda = float(irm_lambda)

    def __call__(self, batch: ObjectiveInput):
        erm = utterance_risks(batch.logits, batch.labels).mean()
        pen = irm_penalty(batch)
        return {"loss": erm + self.irm_lambda * pen, "erm": erm, "irm_penalty": pen}
