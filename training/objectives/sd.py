"""Spectral Decoupling."""

from __future__ import annotations

import torch

from training.objectives.base import Objective, ObjectiveInput, register_objective, utterance_risks


def squared_logits(batch: ObjectiveInput, norm: str = "token"):
    """Mean squared logit over every real target position and every vocabulary entry.

    Normalisation (``norm="token"``): ``1/(N_tok * V) sum_{i,t valid} sum_v z_itv^2``
    (padding excluded), a token mean. ``norm="utterance"``: each utterance's token mean,
    then the mean over utterances, the same weighting as the per-utterance ERM and DRO risks. The mean
    (not the sum of Pezeshki et al.) keeps the term's scale independent of the vocabulary
    size and the number of tokens; even so it starts several times larger than the
    cross-entropy on Whisper (about 5x was reported by a re-implementation of
    arXiv 2510.18374; 35x was measured on whisper-tiny.en at the start of fine-tuning),
    which is why the fused weight is small (0.06). With ``batch.weights`` (importance
    weights) each utterance counts with its weight; under DDP (``batch.sync``) numerator and
    denominator are summed over processes, so the penalty is the global batch's.
    """
    if norm not in ("token", "utterance"):
        raise ValueError(f"norm must be 'token' or 'utterance', got {norm!r}")
    z = batch.logits.float()
    mask = batch.mask
    sq = (z.pow(2).mean(-1) * mask).sum(1)            # (batch,) summed over tokens
    n_tok = mask.sum(1).to(sq.dtype)
    w = torch.ones_like(sq) if batch.weights is None else batch.weights.to(sq)
    if norm == "utterance":
        num, den = (w * sq / n_tok).sum(), w.sum()
    else:
        num, den = (w * sq).sum(), (w * n_tok).sum()
    den = den.detach()
    if batch.distributed:                # the global batch's mean, as the ERM term
        num, den = batch.all_sum(num), batch.all_sum(den)
    return num / den


@register_objective("sd")
class SpectralDecoupling(Objective):
    """ERM plus a penalty on the squared logits.

    Pezeshki et al., "Gradient Starvation", NeurIPS 2021, Eq. (5):
    ``L = L_CE + lambda/2 ||z||^2``; arXiv 2510.18374, Sec. 2.4: ``L_SD = L_ERM + lambda ||o||^2``.
    Here ``||o||^2`` is :func:`squared_logits` (mean, see there) and the factor 1/2 is folded
    into ``sd_lambda``.

    Parameters
    ----------
    sd_lambda : float
        Penalty weight (DomainBed uses 0.1; the fusion of arXiv 2510.18374 weighs 0.06).
    sd_norm : {"token", "utterance"}
        See :func:`squared_logits`.

    Returns ``{"loss", "erm", "sd_penalty"}``.
    """

    importance_weighted = True

    def __init__(self, sd_lambda: float = 0.1, sd_norm: str = "token") -> None:
        self.sd_lambda = float(sd_lambda)
        self.sd_norm = sd_norm

    def __call__(self, batch: ObjectiveInput):
        erm = batch.mean_risk(utterance_risks(batch.logits, batch.labels))
        pen = squared_logits(batch, self.sd_norm)
        return {"loss": erm + self.sd_lambda * pen, "erm": erm, "sd_penalty": pen}
