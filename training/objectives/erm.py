"""Empirical risk minimisation: the plain fine-tuning loss."""

from __future__ import annotations

from training.objectives.base import (Objective, ObjectiveError, ObjectiveInput,
                                      register_objective, utterance_risks)


@register_objective("erm")
class ERM(Objective):
    """Token cross-entropy averaged per utterance, then over the batch.

    Vapnik (1992); as used by arXiv 2510.18374, Sec. 2.4:
    ``L_ERM = 1/B sum_i 1/T_i sum_t -log p(y_it | y_<t, x_i)``.

    Parameters
    ----------
    erm_reduction : {"utterance", "token"}
        ``utterance`` (default, seed 000): the mean of per-utterance token means. ``token``:
        the mean over all target tokens of the batch (the MAS-LoRA authors' transformers
        loss), so long utterances weigh more.

    Returns ``{"loss", "erm"}`` (equal).
    """

    def __init__(self, erm_reduction: str = "utterance") -> None:
        if erm_reduction not in ("utterance", "token"):
            raise ObjectiveError(f"erm_reduction must be 'utterance' or 'token', got "
                                 f"{erm_reduction!r}")
        self.erm_reduction = erm_reduction

    def __call__(self, batch: ObjectiveInput):
        risks = utterance_risks(batch.logits, batch.labels)
        if self.erm_reduction == "token":
            n = batch.mask.sum(1).to(risks.dtype)
            num, den = (risks * n).sum(), n.sum()
            if batch.distributed:
                num, den = batch.all_sum(num), batch.all_sum(den)
            risk = num / den
        else:
            risk = batch.mean_risk(risks)
        return {"loss": risk, "erm": risk}


@register_objective("erm_balanced")
class BalancedERM(ERM):
    """ERM on group-balanced batches, unweighted: the control that separates the effect of
    the sampler from that of a group objective ("fused beats ERM" mixes both, since the
    group objectives get balanced batches). Same loss as :class:`ERM`; ``sampler="auto"``
    balances its batches and no importance weights are applied.

    Returns ``{"loss", "erm"}`` (equal).
    """

    compares_groups = True
