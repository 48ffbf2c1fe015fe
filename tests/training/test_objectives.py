"""Objectives on hand-computed values, and one table-driven test over the registry."""

import math

import pytest
import torch

from training.objectives import (IGNORE_INDEX, PAPER_WEIGHTS, ObjectiveError, ObjectiveInput,
                                 available_objectives, build_objective, irm_penalty,
                                 squared_logits)

LN2, LN4 = math.log(2), math.log(4)


def two_utterances(requires_grad=False):
    """utt0 (group a): one token, logits [0, ln 3], target 0 -> CE ln 4.
    utt1 (group b): two tokens, logits 0, any target -> CE ln 2 each."""
    logits = torch.zeros(2, 2, 2)
    logits[0, 0, 1] = math.log(3)
    labels = torch.tensor([[0, IGNORE_INDEX], [1, 0]])
    logits.requires_grad_(requires_grad)
    return ObjectiveInput(logits, labels, ["a", "b"])


def test_erm_averages_per_utterance_then_over_batch():
    out = build_objective("erm")(two_utterances())
    # per utterance: (ln4 + ln2)/2; a token-mean would give (ln4 + 2 ln2)/3
    assert out["loss"].item() == pytest.approx((LN4 + LN2) / 2, abs=1e-6)
    assert out["loss"].item() != pytest.approx((LN4 + 2 * LN2) / 3, abs=1e-3)


def test_sd_value_is_mean_squared_logit_over_real_tokens():
    b = two_utterances()
    # real positions: utt0 t0 ([0, ln3]), utt1 t0, t1 (zeros); mean over 3 tokens x 2 entries
    expected = math.log(3) ** 2 / 6
    assert squared_logits(b).item() == pytest.approx(expected, abs=1e-6)
    out = build_objective("sd", sd_lambda=0.5)(b)
    assert out["loss"].item() == pytest.approx((LN4 + LN2) / 2 + 0.5 * expected, abs=1e-6)


def test_group_dro_hard_max_puts_all_weight_on_the_worst_group():
    b = two_utterances(requires_grad=True)
    out = build_objective("group_dro")(b)
    assert out["loss"].item() == pytest.approx(LN4, abs=1e-6)  # group a is worse
    out["loss"].backward()
    assert b.logits.grad[0].abs().sum() > 0
    assert b.logits.grad[1].abs().sum() == 0  # the better group gets no gradient


def test_group_dro_online_exponentiated_weights():
    obj = build_objective("group_dro", dro_mode="online", dro_eta=0.01, dro_groups=["a", "b"])
    out = obj(two_utterances())
    qa, qb = math.exp(0.01 * LN4), math.exp(0.01 * LN2)
    qa, qb = qa / (qa + qb), qb / (qa + qb)
    assert qa > 0.5  # more weight on the worse group
    assert out["loss"].item() == pytest.approx(qa * LN4 + qb * LN2, abs=1e-6)
    assert obj.state_dict()["q"]["a"] == pytest.approx(qa)
    assert not obj.needs_whole_batch
    assert build_objective("group_dro").needs_whole_batch


def irm_batch(c):
    """Three tokens with logits [0, c], targets 1, 1, 0: the optimal scale has sigmoid(c)=2/3."""
    logits = torch.tensor([[[0.0, c]] * 3])
    return ObjectiveInput(logits.requires_grad_(True), torch.tensor([[1, 1, 0]]), ["a"])


def test_irm_penalty_is_zero_at_the_optimal_scale():
    assert irm_penalty(irm_batch(math.log(2))).item() == pytest.approx(0.0, abs=1e-10)


def test_irm_penalty_hand_computed_and_differentiable():
    c = 1.0
    s = 1 / (1 + math.exp(-c))
    expected = (c / 3 * (2 - 3 * s)) ** 2  # (d/dw of -(1/3)[2 log s(wc) + log(1 - s(wc))])^2
    b = irm_batch(c)
    pen = irm_penalty(b)
    assert pen.item() == pytest.approx(expected, rel=1e-5)
    pen.backward()  # create_graph=True: the penalty itself trains the model
    assert b.logits.grad.abs().sum() > 0
    out = build_objective("irm", irm_lambda=2.0, irm_estimator="squared")(irm_batch(c))
    assert out["loss"].item() == pytest.approx(out["erm"].item() + 2 * expected, rel=1e-5)


def test_fused_is_the_weighted_sum_of_its_terms():
    b = two_utterances()
    out = build_objective("fused")(b)
    assert PAPER_WEIGHTS == {"erm": 1.0, "dro": 1.0, "sd": 0.06, "irm": 0.01}
    expected = (out["erm"] + out["dro"] + 0.06 * out["sd_penalty"]
                + 0.01 * out["irm_penalty"])
    assert out["loss"].item() == pytest.approx(expected.item(), abs=1e-6)
    assert out["dro"].item() == pytest.approx(LN4, abs=1e-6)
    assert out["sd_penalty"].item() == pytest.approx(squared_logits(b).item())
    w = {"erm": 0.5, "dro": 0.0, "sd": 1.0, "irm": 0.0}
    out2 = build_objective("fused", fused_weights=w)(b)
    assert "dro" not in out2 and "irm_penalty" not in out2
    assert out2["loss"].item() == pytest.approx(0.5 * out["erm"].item() + out["sd_penalty"].item())
    assert not build_objective("fused", fused_weights=w).needs_whole_batch


def test_bad_input_names_the_problem():
    with pytest.raises(ObjectiveError, match="unknown objective 'nope'"):
        build_objective("nope")
    with pytest.raises(ObjectiveError, match="unknown fused weight"):
        build_objective("fused", fused_weights={"xx": 1})
    with pytest.raises(ObjectiveError, match="utterance 1 of the batch has no target"):
        ObjectiveInput(torch.zeros(2, 1, 3), torch.tensor([[0], [IGNORE_INDEX]]), ["a", "b"])


@pytest.mark.parametrize("name", available_objectives())
def test_every_objective_returns_a_differentiable_loss_and_named_terms(name):
    torch.manual_seed(0)
    logits = torch.randn(4, 5, 7, requires_grad=True)
    labels = torch.randint(0, 7, (4, 5))
    labels[1, 3:] = IGNORE_INDEX
    out = build_objective(name)(ObjectiveInput(logits, labels, ["a", "b", "a", "b"]))
    assert "loss" in out and len(out) >= 2
    assert all(torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
