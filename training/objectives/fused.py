"""The fused fairness objective of arXiv 2510.18374."""

from __future__ import annotations

import torch

from training.objectives.base import (Objective, ObjectiveError, ObjectiveInput,
                                      register_objective, utterance_risks)
from training.objectives.group_dro import GroupDRO
from training.objectives.irm import irm_penalty
from training.objectives.sd import squared_logits

#: The paper's weights, greedily searched on its validation data (Sec. 3).
PAPER_WEIGHTS = {"erm": 1.0, "dro": 1.0, "sd": 0.06, "irm": 0.01}


@register_objective("fused")
class Fused(Objective):
    """Weighted sum of ERM risk, Group-DRO risk, SD penalty and IRM penalty.

    arXiv 2510.18374, Sec. 2.5:
    ``L = lambda_e L_ERM + lambda_d L_DRO + lambda_s L_SD + lambda_i L_IRM`` with
    ``lambda_e = lambda_d = 1, lambda_s = 0.06, lambda_i = 0.01``.
    Each term is counted once: ``L_SD`` is the squared-logit penalty and ``L_IRM`` the IRMv1
    penalty, since the risk they are added to in their standalone forms is already the ERM
    term (so IRM here always comes with a risk and cannot collapse).

    Parameters
    ----------
    fused_weights : dict, optional
        Any of ``erm``, ``dro``, ``sd``, ``irm``; missing keys take :data:`PAPER_WEIGHTS`.
    dro_mode, dro_eta, dro_groups
        Passed to :class:`~training.objectives.group_dro.GroupDRO`.

    Returns ``{"loss", "erm", "dro", "sd_penalty", "irm_penalty"}`` (terms with weight 0 are
    not computed).
    """

    def __init__(self, fused_weights: dict | None = None, dro_mode: str = "max",
                 dro_eta: float = 0.01, dro_groups=()) -> None:
        unknown = set(fused_weights or {}) - set(PAPER_WEIGHTS)
        if unknown:
            raise ObjectiveError(f"unknown fused weight(s) {sorted(unknown)}; known: "
                                 f"{sorted(PAPER_WEIGHTS)}")
        self.fused_weights = {**PAPER_WEIGHTS, **(fused_weights or {})}
        self.dro = GroupDRO(dro_mode=dro_mode, dro_eta=dro_eta, dro_groups=dro_groups)

    @property
    def needs_whole_batch(self) -> bool:  # type: ignore[override]
        return self.fused_weights["dro"] != 0 and self.dro.needs_whole_batch

    def __call__(self, batch: ObjectiveInput):
        w = self.fused_weights
        out = {"erm": utterance_risks(batch.logits, batch.labels).mean()}
        if w["dro"]:
            out["dro"] = self.dro(batch)["dro"]
        if w["sd"]:
            out["sd_penalty"] = squared_logits(batch)
        if w["irm"]:
            out["irm_penalty"] = irm_penalty(batch)
        key = {"erm": "erm", "dro": "dro", "sd": "sd_penalty", "irm": "irm_penalty"}
        out["loss"] = sum((w[k] * out[key[k]] for k in w if w[k]), torch.zeros(()))
        return out

    def state_dict(self) -> dict:
        return self.dro.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.dro.load_state_dict(state)
