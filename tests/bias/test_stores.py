"""Issue 18 item 2 and the analysis parts of item 7: one store per encoder in the analysis,
intersectional results with a store, an empty table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probekit.bias import analysis
from probekit.bias.analysis import analyze
from probekit.bias.errors import BiasInputError
from probekit.probes.grid import run_grid
from probekit.probes.results import ResultsTable

from tests.probes.test_grid import FakeStore, _meta

KW = dict(n_boot=20, n_perm=50, seed=0)


def _two_encoders(tmp_path):
    meta = _meta(speakers=4)
    a = FakeStore(meta, noisy_group="g3", seed=0)   # g3's embeddings are spread out
    b = FakeStore(meta, noisy_group="none", seed=1)  # nobody's are
    a.fingerprint = {"encoder": "whisper", "corpus": "c"}
    b.fingerprint = {"encoder": "wavlm", "corpus": "c"}
    res = tmp_path / "res"
    for enc, st in (("whisper", a), ("wavlm-random", b)):
        run_grid(st, "phone", res, seeds=(0, 1), encoder=enc, progress=False,
                 train_sets=("single", "all"))
    return ResultsTable(res).load(), a, b


def test_two_encoders_two_stores_each_typed_from_its_own_store(tmp_path):
    df, a, b = _two_encoders(tmp_path)
    assert analysis.match_stores(df, [b, a]) == {"whisper": a, "wavlm-random": b}
    an = analyze(df, store=[a, b], **KW)
    disp = an.tables["dispersion_speakers"]
    assert set(disp["encoder"]) == {"whisper", "wavlm-random"}
    ty = an.tables["typing"]
    g3 = ty[ty["group"] == "g3"].set_index(["encoder", "layer"])["dispersion_t"]
    # whisper's g3 is spread out in its own store; wavlm's is not: the two differ
    assert (g3.loc["whisper"] > 2).all()
    assert (g3.loc["wavlm-random"] < g3.loc["whisper"]).all()
    assert set(ty["random_source"]) == {"embedding"}
    # Only whisper's store: wavlm is "not assessed", whisper unchanged.
    one = analyze(df, store=a, **KW).tables["typing"]
    src = one.groupby("encoder")["random_source"].agg(set)
    assert src["whisper"] == {"embedding"} and src["wavlm-random"] == {"not assessed"}
    assert one[one["encoder"] == "wavlm-random"]["dispersion_t"].isna().all()
    pd.testing.assert_series_equal(
        one[one["encoder"] == "whisper"]["dispersion_t"].reset_index(drop=True),
        ty[ty["encoder"] == "whisper"]["dispersion_t"].reset_index(drop=True))


def test_store_matching_no_encoder_is_an_error_naming_both(tmp_path):
    df, a, b = _two_encoders(tmp_path)
    c = FakeStore(_meta(speakers=4))
    c.fingerprint = {"encoder": "hubert", "corpus": "other"}
    with pytest.raises(BiasInputError, match=r"encoder 'hubert'.*matches no encoder.*whisper"):
        analyze(df, store=[a, c], **KW)
    with pytest.raises(BiasInputError, match=r"given for encoder 'whisper' did not produce"):
        analysis.match_stores(df, {"whisper": b})


def test_intersectional_results_with_a_store(tmp_path):
    meta = _meta(speakers=8)
    meta["group:gender"] = np.where(meta["speaker"].str[-1].astype(int) % 2 == 0, "female", "male")
    st = FakeStore(meta)
    st.index = {"attributes": ["accent", "gender"]}
    res = tmp_path / "res"
    run_grid(st, "phone", res, group_attribute="accent*gender", seeds=(0,), layers=["conv"],
             progress=False)
    st.meta = st.meta.drop(columns=["group:accent*gender"])  # a store's metadata lacks it
    an = analyze(ResultsTable(res).load(), store=st, **KW)
    d = an.tables["dispersion_speakers"]
    assert set(d["group_attribute"]) == {"accent*gender"} and "g3*male" in set(d["group"])


def test_analyze_on_an_empty_table_is_one_line(tmp_path):
    from probekit.cli import main

    with pytest.raises(BiasInputError, match="empty"):
        analyze(ResultsTable(tmp_path / "none").load())
    (tmp_path / "res").mkdir()
    ResultsTable(tmp_path / "res").load().to_csv(tmp_path / "res" / "part-0.csv", index=False)
    assert main(["analyze", str(tmp_path / "res"), "--out", str(tmp_path / "an")]) == 2


def test_analyze_cli_takes_one_store_per_encoder(tmp_path, monkeypatch, capsys):
    from probekit.cli import main

    df, a, b = _two_encoders(tmp_path)
    c = FakeStore(_meta(speakers=4))
    c.fingerprint = {"encoder": "hubert", "corpus": "other"}
    monkeypatch.setattr("probekit.store.store.EmbeddingStore.open",
                        lambda path: {"sa": a, "sb": b, "sc": c}[str(path)])
    args = ["-q", "analyze", str(tmp_path / "res"), "--n-boot", "20", "--n-perm", "20"]
    assert main(args + ["--store", "sa", "--store", "sb", "--out", str(tmp_path / "an")]) == 0
    disp = pd.read_csv(tmp_path / "an" / "dispersion_speakers.csv")
    assert set(disp["encoder"]) == {"whisper", "wavlm-random"}
    assert main(args + ["--store", "sc", "--out", str(tmp_path / "an2")]) == 2
    err = capsys.readouterr().err.strip()
    assert "matches no encoder in the results" in err and "wavlm-random" in err
    assert len(err.splitlines()) == 1
