"""Group distributionally robust optimisation, over accent groups."""

from __future__ import annotations

import math

import torch

from training.objectives.base import (Objective, ObjectiveError, ObjectiveInput,
                                      register_objective, utterance_risks)


@register_objective("group_dro")
class GroupDRO(Objective):
    """Minimise the worst group's mean (length-normalised) risk.

    ``dro_mode="max"`` (default) is the hard max of arXiv 2510.18374, Sec. 2.4:
    ``L_DRO = max_g L^g_ASR`` with ``L^g`` the mean per-utterance risk of group ``g`` in the
    batch (per-utterance risks are length-normalised, see
    :func:`~training.objectives.base.utterance_risks`). It is a max over the batch's groups,
    not a sum over utterances, so it needs the whole batch at once (``needs_whole_batch``):
    gradient accumulation would take the max of each micro-batch instead.

    ``dro_mode="online"`` is the online algorithm of Sagawa et al., ICLR 2020, Algorithm 1:
    ``q_g <- q_g exp(eta L^g)``, ``q <- q / sum q``, ``L = sum_g q_g L^g`` (DomainBed,
    ``eta = 0.01``); the weights ``q`` persist across steps (checkpointed with the trainer)
    and only groups present in the batch are updated and weighted. Under DDP the group risks
    are summed over processes first, so every process updates ``q`` from the same global
    risks and the ranks never diverge (a resume restores the one ``q``).

    Parameters
    ----------
    dro_mode : {"max", "online"}
    dro_eta : float
        Step size of the online weights.
    dro_groups : sequence of str, optional
        All training groups (online mode), so weights exist before a group is first seen.

    Returns ``{"loss", "erm", "dro_worst", "dro"}`` (+ ``dro_q_<group>`` in online mode), where
    ``erm`` is the plain mean risk for comparison and ``dro_worst`` the worst group's risk.
    """

    compares_groups = True

    def __init__(self, dro_mode: str = "max", dro_eta: float = 0.01, dro_groups=()) -> None:
        if dro_mode not in ("max", "online"):
            raise ObjectiveError(f"dro_mode must be 'max' or 'online', got {dro_mode!r}")
        self.dro_mode = dro_mode
        self.dro_eta = float(dro_eta)
        self.q: dict[str, float] = {g: 1.0 / len(dro_groups) for g in dro_groups}

    @property
    def needs_whole_batch(self) -> bool:  # type: ignore[override]
        return self.dro_mode == "max"

    def __repr__(self) -> str:   # the hyperparameters (a run key reads them)
        return f"GroupDRO(dro_mode={self.dro_mode}, dro_eta={self.dro_eta})"

    def group_losses(self, batch: ObjectiveInput, risks: torch.Tensor | None = None):
        """``(names, per-group mean risk, mean risk)`` of the groups present in the whole
        batch (summed over processes first when ``batch.sync``, so every process takes the
        max of the same global group risks). ``risks``: precomputed utterance risks."""
        if risks is None:
            risks = utterance_risks(batch.logits, batch.labels)
        names, sums, counts, n = batch.group_stats(risks)
        present = counts > 0
        names = [g for g, p in zip(names, present.tolist()) if p]
        return names, sums[present] / counts[present], sums.sum() / n

    def __call__(self, batch: ObjectiveInput, risks: torch.Tensor | None = None):
        names, per_group, erm = self.group_losses(batch, risks)
        worst = per_group.max()
        out = {"erm": erm, "dro_worst": worst}
        if self.dro_mode == "max":
            out["dro"] = worst
        else:
            for g in names:
                self.q.setdefault(g, 1.0 / max(len(self.q), 1))
            with torch.no_grad():
                for g, r in zip(names, per_group.tolist()):
                    self.q[g] *= math.exp(self.dro_eta * r)
                total = sum(self.q.values())
                self.q = {g: v / total for g, v in self.q.items()}
            q = torch.tensor([self.q[g] for g in names], device=per_group.device)
            out["dro"] = (q * per_group).sum() / q.sum()
            out.update({f"dro_q_{g}": torch.tensor(v) for g, v in self.q.items()})
        out["loss"] = out["dro"]
        return out

    def state_dict(self) -> dict:
        return {"q": dict(self.q)}

    def load_state_dict(self, state: dict) -> None:
        self.q = dict(state.get("q", {}))
