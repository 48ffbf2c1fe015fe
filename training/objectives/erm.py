"""Empirical risk minimisation: the plain fine-tuning loss."""

from __future__ import annotations

from training.objectives.base import Objective, ObjectiveInput, register_objective, utterance_risks


@register_objective("erm")
class ERM(Objective):
    """Token cross-entropy averaged per utterance, then over the batch.

    Vapnik (1992); as used by arXiv 2510.18374, Sec. 2.4:
    ``L_ERM = 1/B sum_i 1/T_i sum_t -log p(y_it | y_<t, x_i)``.

    Returns ``{"loss", "erm"}`` (equal).
    """

    def __call__(self, batch: ObjectiveInput):
        risk = batch.mean_risk(utterance_risks(batch.logits, batch.labels))
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
