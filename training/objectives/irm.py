"""Invariant risk minimisation (IRMv1), with accent groups as environments."""

from __future__ import annotations

import torch

from training.objectives.base import Objective, ObjectiveInput, register_objective, utterance_risks


def irm_terms(batch: ObjectiveInput) -> tuple[torch.Tensor, torch.Tensor]:
    """Utterance risks and the IRMv1 penalty from one cross-entropy pass.

    One dummy scale per group, ``w_g`` (all 1), multiplies the logits of that group's
    utterances; a single ``autograd.grad`` of the summed group risks w.r.t. ``w`` gives every
    group's ``d R^g / d w_g`` at once (``R^g`` depends on ``w_g`` only), so the cost is one
    double-backward, not one per group, and the risks (equal to the unscaled ones, since
    ``w = 1``) are reused for the risk term. Under DDP (``batch.sync``) the per-group sums
    of those derivatives are added over processes before squaring, so the penalty is the
    whole batch's.

    Returns ``(risks (batch,), penalty ())``.
    """
    names, idx = batch.group_index()
    w = torch.ones(len(names), device=batch.logits.device, requires_grad=True)
    scale = w[idx].to(batch.logits.dtype)[:, None, None]
    risks = utterance_risks(batch.logits * scale, batch.labels)
    local = torch.zeros(len(names), dtype=risks.dtype, device=risks.device).index_add(
        0, idx, risks)
    (grad,) = torch.autograd.grad(local.sum(), w, create_graph=True)
    counts = torch.bincount(idx, minlength=len(names)).to(grad.dtype)
    grad, counts = batch.all_sum(grad), batch.all_sum(counts)
    present = counts > 0
    return risks, (grad[present] / counts[present]).pow(2).mean()


def irm_penalty(batch: ObjectiveInput) -> torch.Tensor:
    """IRMv1 penalty: mean over the batch's groups of ``(d R^e(w * logits) / d w |_{w=1})^2``.

    ``w`` is a dummy scale on the logits; ``create_graph=True`` so the penalty itself is
    differentiated. It is zero when the logits are already optimally scaled for every group.
    The mean over environments (DomainBed) rather than the sum keeps it independent of how
    many groups a batch holds (:class:`~training.objectives.fused.Fused` has a switch for
    the sum). See :func:`irm_terms` for how it is computed.
    """
    return irm_terms(batch)[1]


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

    compares_groups = True

    def __init__(self, irm_lambda: float = 1.0) -> None:
        self.irm_lambda = float(irm_lambda)

    def __call__(self, batch: ObjectiveInput):
        risks, pen = irm_terms(batch)
        erm = batch.mean_risk(risks)
        return {"loss": erm + self.irm_lambda * pen, "erm": erm, "irm_penalty": pen}
