"""Layerwise curves and cross-group transfer recover what the simulator planted."""

from __future__ import annotations

import numpy as np
import pytest

from probekit.bias import BiasInputError
from probekit.bias.layerwise import layerwise_bias
from probekit.bias.simulate import simulate_results
from probekit.bias.transfer import cross_group_transfer

L = 6


@pytest.mark.parametrize("profile,sign", [(np.linspace(0, 1, L), -1), (np.linspace(1, 0, L), 1)])
def test_layerwise_error_bias_correlation_sign(profile, sign):
    # error falls with depth; the planted gap grows (sign -1) or shrinks (sign +1) with depth
    df = simulate_results(n_groups=4, speakers_per_group=12, n_layers=L, seeds=(0, 1),
                          base_error=np.linspace(0.45, 0.2, L), group_offset={"g1": 0.2},
                          offset_profile=profile, items_per_speaker=200, concentration=60)
    r = layerwise_bias(df, n_boot=300, n_perm=300)
    s = r.summary.set_index("bias_measure").loc["difference"]
    assert s["min_error_layer"] == f"layer{L - 1}"
    assert s["max_bias_layer"] == (f"layer{L - 1}" if sign < 0 else "layer0")
    assert np.sign(s["spearman"]) == sign
    assert (s["ci_high"] < 0) if sign < 0 else (s["ci_low"] > 0)
    c = r.curves.set_index(["layer", "statistic"])
    strongest = f"layer{L - 1}" if sign < 0 else "layer0"
    assert c.loc[(strongest, "difference"), "p_value"] <= 0.01
    assert c.loc[(strongest, "group:g1"), "p_value"] <= 0.05
    assert list(r.curves.columns[-6:]) == ["statistic", "estimate", "ci_low", "ci_high",
                                           "p_value", "n_speakers"]


def test_layerwise_deterministic_and_encoders_apart():
    a = simulate_results(n_groups=3, speakers_per_group=4, n_layers=3, encoder="before")
    b = simulate_results(n_groups=3, speakers_per_group=4, n_layers=3, encoder="after",
                         group_offset={"g0": 0.2}, random_state=1)
    import pandas as pd

    df = pd.concat([a, b], ignore_index=True)
    r1 = layerwise_bias(df, n_boot=100, n_perm=100, seed=3)
    r2 = layerwise_bias(df, n_boot=100, n_perm=100, seed=3)
    pd.testing.assert_frame_equal(r1.curves, r2.curves)
    assert set(r1.summary["encoder"]) == {"before", "after"}


def test_own_group_probe_that_wins_is_found():
    df = simulate_results(n_groups=4, speakers_per_group=8, n_layers=2, seeds=(0, 1),
                          train_sets="full", own_group_advantage={"g2": 0.08},
                          unseen_penalty=0.0, items_per_speaker=200)
    t = cross_group_transfer(df, n_boot=300, n_perm=300)
    o = t.own_vs_broad[t.own_vs_broad.reference == "all"].set_index(["layer", "group"])
    for layer in ("layer0", "layer1"):
        row = o.loc[(layer, "g2")]
        assert row["ci_high"] < 0 and row["p_value"] <= 0.05
        assert row["difference"] == pytest.approx(-0.08, abs=0.03)
    others = o.drop(index=["g2", "(pooled)"], level="group")
    assert (others["ci_low"] <= 0.01).all()
    # pooled over groups the own-group advantage is still visible, and absent without it
    assert o.loc[("layer0", "(pooled)"), "difference"] < 0
    t0 = cross_group_transfer(simulate_results(n_groups=4, speakers_per_group=8, n_layers=2,
                                               seeds=(0, 1), train_sets="full",
                                               items_per_speaker=200), n_boot=100, n_perm=300)
    p0 = t0.own_vs_broad.set_index(["group", "reference"]).loc[("(pooled)", "all")]
    assert (~p0["reliable_win"]).all()
    m = t.matrix
    assert set(m["train_set"]) == {"all", "g0", "g1", "g2", "g3", "all-but:g0", "all-but:g1",
                                   "all-but:g2", "all-but:g3"}
    assert len(m) == 2 * 9 * 4


def test_generalisation_correlation_centred_and_detected():
    # hard test groups but no transfer effect: the centred correlation should not be positive
    null = simulate_results(n_groups=6, speakers_per_group=6, n_layers=6, train_sets="full",
                            group_offset={"g0": 0.25, "g1": 0.15, "g2": 0.05},
                            items_per_speaker=200, concentration=100)
    g0 = cross_group_transfer(null, n_boot=100, n_perm=500).generalisation
    assert (g0["p_value"] <= 0.05).mean() <= 2 / 6
    # planted: probes of harder groups err less elsewhere (train_offset below 0 for hard groups)
    hard = np.linspace(0.25, 0.0, 8)
    eff = simulate_results(n_groups=8, speakers_per_group=5, n_layers=6, train_sets="full",
                           group_offset={f"g{i}": h for i, h in enumerate(hard)},
                           train_offset={f"g{i}": -h / 2 for i, h in enumerate(hard)},
                           items_per_speaker=200, concentration=100)
    g1 = cross_group_transfer(eff, n_boot=100, n_perm=500).generalisation
    assert (g1["spearman"] > 0.6).all(), g1
    assert (g1["p_value"] <= 0.05).mean() >= 4 / 6


def test_transfer_needs_group_trained_probes():
    df = simulate_results(n_groups=3, speakers_per_group=3, n_layers=1)
    with pytest.raises(BiasInputError, match="single group"):
        cross_group_transfer(df)
