"""Invariant risk minimisation (IRMv1), with accent groups as environments."""

from __future__ import annotations

import torch

from training.objectives.base import (Objective, ObjectiveError, ObjectiveInput,
                                      register_objective, utterance_risks)


#: IRM penalty estimators: the squared group mean (biased) or the mean over pairs (unbiased).
IRM_ESTIMATORS = ("squared", "pairs")


def irm_terms(batch: ObjectiveInput, estimator: str = "squared"
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Utterance risks and the IRMv1 penalty from one cross-entropy pass.

    One dummy scale per *utterance*, ``w_i`` (all 1), multiplies its logits; a single
    ``autograd.grad`` of the summed risks w.r.t. ``w`` gives every utterance's
    ``d_i = d r_i / d w_i`` at once, so the cost is one double-backward, and the risks
    (equal to the unscaled ones, since ``w = 1``) are reused for the risk term. Per group
    ``g`` with ``n_g`` utterances, ``S_g = sum d_i`` is ``n_g`` times the derivative of the
    group risk with respect to a shared group scale (IRMv1's ``grad_w R^g``), and the
    penalty is the mean over groups of

    * ``estimator="squared"``: ``(S_g / n_g)^2``, IRMv1's squared group derivative. Biased
      upwards by the within-group variance of ``d_i`` over ``n_g`` (with 2 utterances per
      group it mostly measures their disagreement);
    * ``estimator="pairs"``: ``(S_g^2 - sum d_i^2) / (n_g (n_g - 1))``, the mean of
      ``d_i d_j`` over pairs ``i != j``: unbiased for the squared expected derivative (the
      all-pairs form of DomainBed's split-batch product). It can be negative; groups with
      one utterance have no pair and are left out (the trainer's balanced batches give
      every group ``min_per_group >= 2``).

    Under DDP (``batch.sync``) ``S_g``, ``sum d_i^2`` and ``n_g`` are summed over processes
    before the penalty, so it is the whole batch's.

    Returns ``(risks (batch,), penalty ())``.
    """
    if estimator not in IRM_ESTIMATORS:
        raise ObjectiveError(f"IRM estimator must be one of {IRM_ESTIMATORS}, got {estimator!r}")
    names, idx = batch.group_index()
    w = torch.ones(len(idx), device=batch.logits.device, requires_grad=True)
    scale = w.to(batch.logits.dtype)[:, None, None]
    risks = utterance_risks(batch.logits * scale, batch.labels)
    (d,) = torch.autograd.grad(risks.sum(), w, create_graph=True)
    zeros = torch.zeros(len(names), dtype=d.dtype, device=d.device)
    S, Q = zeros.index_add(0, idx, d), zeros.index_add(0, idx, d * d)
    counts = torch.bincount(idx, minlength=len(names)).to(d.dtype)
    S, Q, counts = batch.all_sum(S), batch.all_sum(Q), batch.all_sum(counts)
    if estimator == "squared":
        present = counts > 0
        return risks, (S[present] / counts[present]).pow(2).mean()
    paired = counts > 1
    if not bool(paired.any()):
        raise ObjectiveError("the pairs IRM estimator needs a group with at least 2 utterances "
                             "in the batch (use a balanced sampler with min_per_group >= 2)")
    n = counts[paired]
    return risks, ((S[paired].pow(2) - Q[paired]) / (n * (n - 1))).mean()


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
    irm_estimator : {"pairs", "squared"}
        ``pairs`` (default): the unbiased mean over pairs of utterances of a group (see
        :func:`irm_terms`); ``squared``: IRMv1's squared group-mean derivative (biased; the
        estimator of the fused objective's reference implementation).

    Returns ``{"loss", "erm", "irm_penalty"}``; the risk term is importance-weighted under
    a balanced sampler (``TrainConfig.importance_weights``).
    """

    compares_groups = True
    importance_weighted = True

    def __init__(self, irm_lambda: float = 1.0, irm_estimator: str = "pairs") -> None:
        if irm_estimator not in IRM_ESTIMATORS:
            raise ObjectiveError(f"irm_estimator must be one of {IRM_ESTIMATORS}, got "
                                 f"{irm_estimator!r}")
        self.irm_lambda = float(irm_lambda)
        self.irm_estimator = irm_estimator

    def __call__(self, batch: ObjectiveInput):
        risks, pen = irm_terms(batch, self.irm_estimator)
        erm = batch.mean_risk(risks)
        return {"loss": erm + self.irm_lambda * pen, "erm": erm, "irm_penalty": pen}
