"""The paired before/after comparison: level, power, pairing, the leakage guard."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.calibration_paired import run as calibrate, simulate_pair
from probekit.bias import BiasInputError, LeakageError, SeenIds, compare_encoders, paired_change
from probekit.bias.compare import check_unseen


def test_paired_test_holds_level_and_detects_a_planted_reduction():
    # fast version of benchmarks/calibration_paired.py: loose but real bounds
    r = calibrate(n_draws=120, seed=3, n_perm=199, n_boot=99)
    for k in ("reject_paired_difference", "reject_paired_macro", "reject_paired_overall",
              "reject_paired_difference_fwer"):
        assert r[k] <= 0.12, (k, r)
    assert r["power_paired_difference"] >= 0.3, r
    assert r["power_paired_difference"] > 3 * r["reject_paired_difference"], r
    assert r["cover_paired_macro"] >= 0.85, r


def test_swap_null_is_exact_on_few_speakers():
    # 2 groups x 3 speakers: all 64 swap patterns are enumerated
    rng = np.random.default_rng(0)
    Ka, Na, Kb, Nb, _ = simulate_pair(rng)
    Ka, Na, Kb, Nb = Ka[:, :6], Na[:, :6], Kb[:, :6], Nb[:, :6]
    pc = paired_change(Ka, Na, Kb, Nb, ["a"] * 3 + ["b"] * 3, n_perm=1000)
    assert pc.exact
    p = pc.table["p_value"].dropna()
    assert ((p * 64).round(6) % 1 == 0).all() and (p >= 2 / 64).all()
    # identical encoders: no change anywhere, p = 1
    same = paired_change(Ka, Na, Ka, Na, ["a"] * 3 + ["b"] * 3, n_perm=1000).table
    assert np.allclose(same["change"].dropna(), 0) and (same["p_value"].dropna() == 1).all()


def test_the_change_is_after_minus_before_and_fwer_is_no_smaller_than_raw():
    rng = np.random.default_rng(1)
    Ka, Na, Kb, Nb, g = simulate_pair(rng, reduction=1.0)
    t = paired_change(Ka, Na, Kb, Nb, g, n_perm=499, n_boot=199).table
    gap = t[t["statistic"] == "difference"]
    assert np.allclose(gap["change"], gap["after"] - gap["before"])
    assert (t["p_fwer"] >= t["p_value"] - 1e-12).all()
    assert set(t["statistic"]) >= {"overall", "macro", "difference", "ratio", "group:g3"}
    assert (t.loc[t["statistic"] == "group:g3", "n_speakers"] == 5).all()


def _table(seed=0, reduction=0.8):
    """A results table of two encoders on the same speakers (one seed, 4 layers)."""
    rng = np.random.default_rng(seed)
    Ka, Na, Kb, Nb, groups = simulate_pair(rng, reduction=reduction)
    rows = []
    for enc, K, N in (("base", Ka, Na), ("tuned", Kb, Nb)):
        for layer in range(K.shape[0]):
            for s in range(K.shape[1]):
                rows.append({"encoder": enc, "layer": f"block{layer}", "layer_index": layer,
                             "task": "phone", "probe": "lda", "group_attribute": "accent",
                             "train_set": "all", "test_group": groups[s], "seed": 0,
                             "unit": f"spk{s:02d}", "metric": "error",
                             "value": K[layer, s] / N[layer, s], "n": int(N[layer, s]),
                             "n_train": 100, "n_train_speakers": 10})
    return pd.DataFrame(rows)


def test_compare_encoders_gives_a_verdict_and_n_per_cell():
    cmp = compare_encoders(_table(), "base", n_boot=199, n_perm=499)
    assert set(cmp.table["after"]) == {"tuned"}
    assert cmp.table.groupby("statistic")["layer"].nunique().eq(4).all()
    assert len(cmp.verdicts) == 1 and "tuned vs base, phone-probe (lda)" in cmp.verdicts[0]
    assert "gap (max - min group error)" in cmp.verdicts[0]
    assert (cmp.n_table["n_speakers"] == 5).all() and len(cmp.n_table) == 4
    assert "no record of training speakers" in cmp.guard[0]
    fig = cmp.figure()
    assert len(fig.axes) == 1


def test_guard_refuses_a_leaky_comparison_and_names_the_speakers():
    df = _table()
    seen = {"tuned": SeenIds(frozenset({"spk03", "spk11", "other"}), frozenset({"s1"}))}
    with pytest.raises(LeakageError, match=r"2 of 20 test speakers \(spk03, spk11\)"):
        compare_encoders(df, "base", seen=seen, n_boot=50, n_perm=50)
    ok = compare_encoders(df, "base", seen=seen, allow_seen=True, n_boot=50, n_perm=50)
    assert "GUARD OVERRIDDEN" in ok.guard[0]
    clean = {"tuned": SeenIds(frozenset({"other"}))}
    note = compare_encoders(df, "base", seen=clean, n_boot=50, n_perm=50).guard[0]
    assert "none of the 20 test speakers" in note
    with pytest.raises(LeakageError, match="1 test sentences"):
        check_unseen("tuned", ["x"], seen["tuned"], test_sentences=["s1", "s2"])


def test_seen_ids_round_trip(tmp_path):
    s = SeenIds(frozenset({"a", "b"}), frozenset({"x"}), note="train+val")
    s.save(tmp_path)
    assert SeenIds.load(tmp_path) == s and SeenIds.load(tmp_path / "none") is None


def test_unpaired_tables_are_refused():
    df = _table()
    df = df[~((df["encoder"] == "tuned") & (df["unit"] == "spk00"))]
    with pytest.raises(BiasInputError, match="not tested on the same"):
        compare_encoders(df, "base", n_boot=20, n_perm=20)
    with pytest.raises(BiasInputError, match="not in the table"):
        compare_encoders(_table(), "base", after="nope")


def test_compare_cli_refuses_then_writes(tmp_path, capsys):
    from probekit.cli import main
    from probekit.probes.results import ResultsTable

    ResultsTable(tmp_path / "res").append(_table())
    SeenIds(frozenset({"spk07"})).save(tmp_path / "tuned")
    argv = ["-q", "compare", str(tmp_path / "res"), "--before", "base", "--n-boot", "50",
            "--n-perm", "50", "--seen", f"tuned={tmp_path / 'tuned'}"]
    assert main(argv) == 2 and "spk07" in capsys.readouterr().err
    assert main(argv + ["--allow-seen", "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "comparison.csv").is_file()
    assert "GUARD OVERRIDDEN" in capsys.readouterr().out
