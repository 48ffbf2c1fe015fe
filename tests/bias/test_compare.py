"""The paired before/after comparison: level, power, pairing by split and speaker, the
verdict agreeing with its intervals, degenerate rows named, the leakage guard."""

import re

import numpy as np
import pandas as pd
import pytest

from benchmarks.calib_paired import results_table, run as calibrate_retrained, simulate_retrained
from benchmarks.calibration_paired import run as calibrate, simulate_pair
from probekit.bias import BiasInputError, LeakageError, SeenIds, compare_encoders, paired_change
from probekit.bias.compare import check_unseen, split_change
from probekit.report.verdicts import comparison_verdicts


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
    gap = t[t["statistic"] == "pooled_difference"]
    assert np.allclose(gap["change"], gap["after"] - gap["before"])
    assert (t["p_fwer"] >= t["p_value"] - 1e-12).all()
    assert set(t["statistic"]) >= {"pooled_overall", "pooled_macro", "pooled_difference",
                                   "pooled_ratio", "pooled_group:g3"}
    assert set(t["weighting"]) == {"items"}
    assert (t.loc[t["statistic"] == "pooled_group:g3", "n_speakers"] == 5).all()
    # the speakers weighting names its rows unpooled; a pooled name or a typo is refused
    ts = paired_change(Ka, Na, Kb, Nb, g, n_perm=99, n_boot=49, weighting="speakers",
                       statistics=("macro",)).table
    assert set(ts["statistic"]) == {"macro"} and set(ts["weighting"]) == {"speakers"}
    assert not np.allclose(ts["before"], t.loc[t["statistic"] == "pooled_macro", "before"])
    for bad in ({"statistics": ("pooled_macro",)}, {"weighting": "utterances"}):
        with pytest.raises(BiasInputError, match="pooled_macro|utterances"):
            paired_change(Ka, Na, Kb, Nb, g, n_perm=9, n_boot=9, **bad)


def _table(seed=0, reduction=0.0, K=4):
    """A results table of two encoders (``base``, ``tuned``) on the same speakers and splits,
    probes retrained per split (4 groups x 10 speakers, 5 tested per split, 4 layers)."""
    return results_table(*simulate_retrained(np.random.default_rng(seed), K=K,
                                             reduction=reduction))


def test_retrained_before_after_holds_its_level_through_compare_encoders():
    # issue 19 item 2: no true change, probes retrained per split (split offsets sd 0.04,
    # group x split 0.025, speaker x probe 0.015). Pooling each speaker's counts over the
    # splits and treating the trained probes as fixed rejected the macro change in ~50% of
    # draws and each group's in ~25%
    rng = np.random.default_rng(11)
    n, macro, group, cover = 40, 0, 0.0, 0
    for _ in range(n):
        t = compare_encoders(results_table(*simulate_retrained(rng, K=10)), "base").table
        t = t[t["layer_index"] == 0].set_index("statistic")
        macro += t.at["macro", "p_value"] <= 0.05
        cover += t.at["macro", "ci_low"] <= 0 <= t.at["macro", "ci_high"]
        g = t[t.index.str.startswith("group:")]
        group += float((g["p_value"] <= 0.05).mean())
    assert macro / n <= 0.125 and group / n <= 0.125, (macro / n, group / n)
    assert cover / n >= 0.85, cover / n


def test_retrained_calibration_fast_version():
    # fast version of benchmarks/calib_paired.py (the benchmark: 400 draws, K = 10 and 3)
    r = calibrate_retrained(n_draws=100, seed=5, splits=(10,), baseline=False)
    for k in ("macro", "overall", "group", "gap", "gap_fwer"):
        assert 0.0 < r[f"reject_paired_{k}_retrained"] <= 0.1, (k, r)
    for k in ("macro", "group", "gap"):
        assert r[f"cover_paired_{k}_retrained"] >= 0.88, (k, r)
    assert r["power_paired_gap_retrained"] >= 0.15 and r["power_paired_macro_retrained"] >= 0.2, r


def test_split_change_pairs_by_split_and_speaker_and_matches_the_layerwise_estimates():
    b, a, n, codes = simulate_retrained(np.random.default_rng(2), K=5)
    t = split_change(b, a, codes, ["g0", "g1", "g2", "g3"]).set_index(["statistic", "row"])
    with np.errstate(invalid="ignore"):
        sp = np.nansum(np.nan_to_num(b), 1) / (~np.isnan(b)).sum(1)
    g1 = np.nanmean(sp[:, codes == 1], 1)
    assert np.allclose(t.loc["group:g1", "before"].to_numpy(), g1)
    assert np.allclose(t["change"], t["after"] - t["before"], equal_nan=True)
    # p and its interval are one decision: p <= 0.05 exactly when the 95% interval excludes 0
    ok = t["p_value"].notna()
    excl = (t["ci_low"] > 0) | (t["ci_high"] < 0)
    assert ((t.loc[ok, "p_value"] <= 0.05) == excl[ok]).all()
    assert (t["p_fwer"] >= t["p_value"] - 1e-12).all()
    assert ((t["ci_high_fwer"] - t["ci_low_fwer"]) >= (t["ci_high"] - t["ci_low"]) - 1e-12).all()
    # a cell tested for one encoder only is refused
    a2 = a.copy()
    a2[0, 0, np.flatnonzero(~np.isnan(a[0, 0]))[0]] = np.nan
    with pytest.raises(BiasInputError, match="one encoder only"):
        split_change(b, a2, codes, ["g0", "g1", "g2", "g3"])


def test_verdict_quotes_an_interval_of_its_own_family():
    # probekit compare printed intervals that exclude zero next to "not distinguishable":
    # now a layer named as changed has a per-layer interval without 0, and "at no layer"
    # quotes the simultaneous interval, which holds 0 (or says why a per-layer one does not)
    seen_both = set()
    for seed in range(6):
        cmp = compare_encoders(_table(seed, reduction=0.5, K=10), "base")
        t = cmp.table[cmp.table["statistic"] == "difference"]
        v = comparison_verdicts(cmp)[0]
        assert "family-wise over 4 layers at 0.05" in v, v
        if "at no layer" in v:
            seen_both.add("none")
            lo, hi = map(float, re.search(r"simultaneous interval \[([-+.\d]+), ([-+.\d]+)\]",
                                          v).groups())
            assert lo <= 0 <= hi, v
            raw = t[(t["ci_low"] > 0) | (t["ci_high"] < 0)]
            if len(raw):
                assert "per-layer 95% interval excludes 0" in v, v
        else:
            seen_both.add("some")
            for r in t[t["p_fwer"] <= 0.05].itertuples():
                assert r.ci_low > 0 or r.ci_high < 0
                assert f"at {r.layer} " in v and f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]" in v
    assert seen_both == {"none", "some"}, seen_both


def test_one_split_is_not_assessed_and_degenerate_rows_are_named():
    df = _table(K=1)
    cmp = compare_encoders(df, "base")
    assert cmp.table["p_value"].isna().all() and cmp.table["ci_low"].isna().all()
    assert cmp.table["note"].str.contains("one probe split").all()
    assert "not assessed" in comparison_verdicts(cmp)[0] and "one probe split" in comparison_verdicts(cmp)[0]
    # a group at error 1.0 before and after while the others are not; identical encoders
    df = _table(K=4)
    df.loc[df["test_group"] == "g3", "value"] = 1.0
    t = compare_encoders(df, "base").table.set_index(["statistic", "layer_index"])
    assert "group at error 1 before" in t.at[("group:g3", 0), "note"]
    same = df[df["encoder"] == "base"]
    t = compare_encoders(pd.concat([same, same.assign(encoder="copy")]), "base").table
    assert (t["change"].dropna() == 0).all()
    assert t["note"].str.startswith("no variance").any() or t["note"].str.startswith("group at").all()


def test_compare_encoders_gives_a_verdict_and_n_per_cell():
    cmp = compare_encoders(_table(reduction=0.8), "base")
    assert set(cmp.table["after"]) == {"tuned"}
    assert cmp.table.groupby("statistic")["layer"].nunique().eq(4).all()
    assert len(comparison_verdicts(cmp)) == 1 and "tuned vs base, phone-probe (lda)" in comparison_verdicts(cmp)[0]
    assert "gap (max - min group error)" in comparison_verdicts(cmp)[0]
    # distinct test speakers over 4 splits of 5 of 10 (one may never be drawn)
    assert cmp.n_table["n_speakers"].between(8, 10).all() and len(cmp.n_table) == 4
    assert (cmp.n_table["n_per_split"] == 5).all() and (cmp.n_table["n_seeds"] == 4).all()
    assert (cmp.table["n_splits"] == 4).all()
    assert "no record of training speakers" in cmp.guard[0]
    fig = cmp.figure()
    assert len(fig.axes) == 1


def test_guard_refuses_a_leaky_comparison_and_names_the_speakers():
    df = _table()
    seen = {"tuned": SeenIds(frozenset({"g0_s03", "g1_s11", "other"}), frozenset({"s1"}))}
    with pytest.raises(LeakageError, match=r"2 of \d+ test speakers \(g0_s03, g1_s11\)"):
        compare_encoders(df, "base", seen=seen)
    ok = compare_encoders(df, "base", seen=seen, allow_seen=True)
    assert "GUARD OVERRIDDEN" in ok.guard[0]
    clean = {"tuned": SeenIds(frozenset({"other"}))}
    note = compare_encoders(df, "base", seen=clean).guard[0]
    assert re.search(r"none of the \d+ test speakers", note)
    with pytest.raises(LeakageError, match="1 test sentences"):
        check_unseen("tuned", ["x"], seen["tuned"], test_sentences=["s1", "s2"])


def test_seen_ids_round_trip(tmp_path):
    s = SeenIds(frozenset({"a", "b"}), frozenset({"x"}), note="train+val")
    s.save(tmp_path)
    assert SeenIds.load(tmp_path) == s and SeenIds.load(tmp_path / "none") is None


def test_unpaired_tables_are_refused():
    df = _table()
    df = df[~((df["encoder"] == "tuned") & (df["unit"] == "g0_s00") & (df["seed"] == 1))]
    with pytest.raises(BiasInputError, match="not tested on the same"):
        compare_encoders(df, "base")
    with pytest.raises(BiasInputError, match="not in the table"):
        compare_encoders(_table(), "base", after="nope")


def test_compare_cli_refuses_then_writes(tmp_path, capsys):
    from probekit.cli import main
    from probekit.probes.results import ResultsTable

    ResultsTable(tmp_path / "res").append(_table())
    SeenIds(frozenset({"g1_s17"})).save(tmp_path / "tuned")
    argv = ["-q", "compare", str(tmp_path / "res"), "--before", "base",
            "--seen", f"tuned={tmp_path / 'tuned'}"]
    assert main(argv) == 2 and "g1_s17" in capsys.readouterr().err
    assert main(argv + ["--allow-seen", "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "comparison.csv").is_file()
    out = capsys.readouterr().out
    assert "GUARD OVERRIDDEN" in out and "family-wise over 4 layers" in out
    # one seed: said, not tested
    ResultsTable(tmp_path / "one").append(_table(K=1))
    assert main(["-q", "compare", str(tmp_path / "one"), "--before", "base"]) == 0
    out = capsys.readouterr().out
    assert "not assessed: one probe split" in out and "degenerate: tuned vs base" in out


def test_report_section_names_degenerate_rows_and_shows_the_simultaneous_interval(tmp_path):
    from probekit.report.compare import before_after_section

    df = _table(K=4)
    df.loc[df["test_group"] == "g3", "value"] = 1.0
    cmp = compare_encoders(df, "base", alpha=0.05)
    cmp.wer_table = pd.DataFrame({"model": ["zero-shot"], "statistic": ["pooled_macro"],
                                  "weighting": ["items"], "groups": ["g0"], "change_from": [""],
                                  "estimate": [0.10], "ci_low": [0.08], "ci_high": [0.12],
                                  "p_value": [float("nan")], "n_speakers": [4]})
    cmp.info.update(split="s", train_groups=["g0"], n_test_utterances_wer=1)
    cmp.save(tmp_path / "cmp")
    md, html = before_after_section(tmp_path / "cmp", tmp_path)
    text = "\n".join(md)
    assert "**Degenerate rows.**" in text
    assert "group g3 at layer0, layer1, layer2, layer3: group at error 1 before" in text
    assert "simultaneous CI (layers)" in text and "two-way (split x speaker)" in text
    assert any("Degenerate rows" in h for h in html)


def test_comparison_save_load_round_trip_and_labels_follow_alpha(tmp_path):
    """Issue 22 item 1: Comparison.save is the one writer (claimed through outdir) and
    Comparison.load reads back every table; the verdicts, the report section, its bold cells
    and the figure state the comparison's own level (0.1 here), never 95 % / 0.05."""
    from probekit.bias.compare import Comparison
    from probekit.outdir import OutputFolderError, read_stamp
    from probekit.report.compare import before_after_section

    cmp = compare_encoders(_table(reduction=0.8), "base", alpha=0.1)
    assert (cmp.table["decision"] == (cmp.table["p_fwer"] <= 0.1)).all()
    assert (cmp.table["decision_level"] == 0.1).all()
    out = cmp.save(tmp_path / "cmp")
    stamp = read_stamp(out)
    assert stamp["kind"] == "comparison" and stamp["complete"]
    back = Comparison.load(out)
    assert set(back.tables()) == set(cmp.tables()) == {"comparison", "n_per_cell"}
    assert len(back.table) == len(cmp.table) and list(back.table.columns) == list(cmp.table.columns)
    assert back.alpha == 0.1 and back.info == {"base": "base", "adapted": ["tuned"]}
    assert comparison_verdicts(back) == comparison_verdicts(cmp)
    assert "90% interval" in comparison_verdicts(cmp)[0] and "at 0.1" in comparison_verdicts(cmp)[0]
    text = "\n".join(before_after_section(out, tmp_path)[0])
    assert "change [90% CI]" in text and "p <= 0.1" in text and "Holm over layers at 0.1" in text
    assert "95%" not in text and "p <= 0.05" not in text
    ax = cmp.figure().axes[0]
    assert "90% interval" in ax.get_ylabel()
    # an edited table is refused, naming it
    head = (out / "n_per_cell.csv").read_text().splitlines()[0]
    (out / "n_per_cell.csv").write_text(head + "\n")  # the rows cut, the header kept
    with pytest.raises(OutputFolderError, match="n_per_cell.csv has 0 rows"):
        Comparison.load(out)
    (out / "n_per_cell.csv").unlink()
    with pytest.raises(OutputFolderError, match="n_per_cell.csv is missing"):
        Comparison.load(out)
