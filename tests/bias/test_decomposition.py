"""Random variance vs systematic bias: planted effects are typed correctly, the null is not."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from probekit.bias.decomposition import type_groups, typing_rule
from probekit.bias.dispersion import speaker_dispersion
from probekit.bias.simulate import simulate_embeddings, simulate_results

N_SIM = 30
SIM = dict(n_groups=4, speakers_per_group=16, items_per_speaker=200, concentration=30,
           n_layers=1, include_all_rows=False)


def _types(planted, n_sim=N_SIM):
    target, others = Counter(), Counter()
    for i in range(n_sim):
        r = type_groups(simulate_results(random_state=i, **SIM, **planted), n_perm=499, seed=i)
        target[r.loc[r.group == "g1", "type"].iloc[0]] += 1
        others.update(r.loc[r.group != "g1", "type"])
    return target, others


@pytest.mark.parametrize("planted,expected", [
    ({"group_offset": {"g1": 0.15}}, "systematic"),
    ({"variance_inflation": {"g1": 6.0}}, "random"),
])
def test_planted_effect_recovered(planted, expected):
    target, others = _types(planted)
    assert target[expected] / N_SIM >= 0.9, target
    # the other kind is not reported for the planted group, and bystanders stay "neither"
    assert target["both"] + target[{"systematic": "random", "random": "systematic"}[expected]] <= 2
    assert others["neither"] / sum(others.values()) >= 0.95, others


def test_no_effect_typed_neither_at_nominal_rate():
    target, others = _types({})
    flagged = sum(v for k, v in (target + others).items() if k != "neither")
    # Holm keeps each family (4 groups, one test kind) at <= 5 %; two kinds -> <= 10 % of layers
    assert flagged / N_SIM <= 0.15, target + others


def test_typing_rule_table():
    np.testing.assert_array_equal(typing_rule([False, True, False, True], [False, False, True, True]),
                                  ["neither", "systematic", "random", "both"])


def test_embedding_dispersion_recovers_inflated_group_and_ignores_shift():
    X, y, meta = simulate_embeddings(n_groups=3, speakers_per_group=6, phone_spread=1.0,
                                     dispersion_inflation={"g1": 1.5}, group_shift={"g2": 2.0})
    d = speaker_dispersion(X, y, meta)
    by = d.groupby("group")["dispersion"].mean()
    assert by["g1"] / by["g0"] == pytest.approx(1.5 ** 2, rel=0.2)
    assert by["g2"] / by["g0"] == pytest.approx(1.0, rel=0.2)       # a shift is not dispersion
    from scipy.stats import spearmanr
    # dispersed speakers err more (g2 is left out: its shift costs accuracy without dispersion)
    d01 = d[d.group != "g2"]
    assert spearmanr(d01["dispersion"], d01["accuracy"])[0] < -0.5
    # (that a shift costs accuracy is checked on a larger design in test_dispersion.py)
    # the typing uses it as the random-variance evidence for the matching layer
    res = simulate_results(n_groups=3, speakers_per_group=6, n_layers=1)
    disp = d.assign(layer="layer0", group_attribute="accent")
    t = type_groups(res, dispersion=disp, n_perm=499)
    assert (t["random_source"] == "embedding").all()
    assert t.set_index("group").loc["g1", "type"] in ("random", "both")
    assert (t.set_index("group").loc[["g0", "g2"], "type"] == "neither").all()
