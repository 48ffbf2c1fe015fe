"""The before/after WER table (probekit.bias.wer): a use of the one group-statistics core,
WER as a fraction, item-pooled rows named ``pooled_*`` with their weighting."""

import numpy as np
import pandas as pd
import pytest

from probekit.bias import BiasInputError
from probekit.bias.metrics import group_statistics, parse_statistic
from probekit.bias.wer import WER_COLUMNS, speaker_word_errors, wer_table


def _tx(ids, spk):
    return pd.DataFrame({"id": ids, "speaker": spk, "accent": ["a"] * len(ids),
                         "ref_norm": ["a b c"] * len(ids), "hyp_norm": ["a b"] * len(ids)})


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    ids, spk, acc = [], [], []
    for g in ("es", "it", "en-us", "pt"):
        for s in range(4):
            for k in range(3):
                ids.append(f"{g}{s}_{k}"), spk.append(f"{g}{s}"), acc.append(g)
    refs = ["a b c d"] * len(ids)
    before = pd.DataFrame({"id": ids, "speaker": spk, "accent": acc, "ref_norm": refs,
                           "hyp_norm": ["a b c d" if rng.random() < .5 else "a b" for _ in ids]})
    after = before.copy()
    after.loc[after["accent"] == "en-us", "hyp_norm"] = "x"       # forgot the native group
    return before, after


def test_wer_table_refuses_models_evaluated_on_other_utterances():
    before = _tx(["u1", "u2", "u3", "u4"], ["s1", "s1", "s2", "s2"])
    after = _tx(["u1", "u3", "u5", "u6"], ["s1", "s2", "s1", "s2"])
    with pytest.raises(BiasInputError, match="same utterances"):
        wer_table({"zero-shot": before, "lora": after}, reference="zero-shot", n_boot=20)
    assert len(wer_table({"zero-shot": before, "lora": before.copy()}, reference="zero-shot",
                         n_boot=20))
    with pytest.raises(BiasInputError, match="'base'"):
        wer_table({"zero-shot": before}, reference="base", n_boot=20)


def test_wer_table_gives_paired_changes_with_intervals_for_untrained_groups():
    before, after = _pair()
    t = wer_table({"zero-shot": before, "lora": after}, trained=["es", "it"],
                  reference="zero-shot", n_boot=50)
    d = t[(t["model"] == "lora") & (t["change_from"] == "zero-shot")]
    row = d[d["statistic"] == "pooled_group:en-us"].iloc[0]
    assert row["estimate"] > 0 and row["ci_low"] <= row["estimate"] <= row["ci_high"]
    assert row["n_speakers"] == 4
    assert set(d["statistic"]) == {"pooled_macro", "pooled_difference", "pooled_group:en-us",
                                   "pooled_group:pt"}
    assert set(d.loc[d["statistic"] == "pooled_macro", "groups"]) == {"es,it", "en-us,pt"}


def test_wer_table_is_a_fraction_from_the_core_and_names_its_weighting():
    before, after = _pair(1)
    t = wer_table({"zero-shot": before, "lora": after}, trained=["es", "it"],
                  reference="zero-shot", n_boot=50)
    assert list(t.columns) == list(WER_COLUMNS)
    assert set(t["weighting"]) == {"items"}
    assert all(parse_statistic(s)[2] == "items" for s in t["statistic"])
    lv = t[t["change_from"] == ""].set_index(["model", "statistic"])["estimate"]
    assert lv.between(0, 1).all()
    # the levels are the core's item-pooled statistics of the per-speaker counts
    c = speaker_word_errors(after)
    codes, names = pd.factorize(c["accent"], sort=True)
    st = group_statistics(c["errors"].to_numpy(float), c["words"].to_numpy(float), codes,
                          len(names), weighting="items")
    assert lv[("lora", "pooled_overall")] == pytest.approx(st["overall"])
    assert lv[("lora", "pooled_group:en-us")] == pytest.approx(1.0)
    for j, g in enumerate(names):
        assert lv[("lora", f"pooled_group:{g}")] == pytest.approx(st["by_group"][j])
    # macro and gap over the trained groups only
    tr = c[c["accent"].isin(["es", "it"])]
    e = (tr.groupby("accent")["errors"].sum() / tr.groupby("accent")["words"].sum())
    assert lv[("lora", "pooled_macro")] == pytest.approx(e.mean())
    assert lv[("lora", "pooled_difference")] == pytest.approx(e.max() - e.min())
