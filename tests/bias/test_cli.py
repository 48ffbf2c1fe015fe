"""``probekit analyze`` end to end on a simulated results table and a tiny simulated store."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from probekit.testing.simulate import simulate_results
from probekit.cli import main
from probekit.probes.results import ResultsTable


class _Store:
    """The two methods of EmbeddingStore the analysis uses, over simulated embeddings."""

    layers = ["layer0", "layer1"]

    def load_task(self, layer, task, lazy=False):  # arrays either way
        from probekit.testing.simulate import simulate_embeddings

        assert task == "phone"
        return simulate_embeddings(n_groups=3, speakers_per_group=4, phone_spread=1.0,
                                   dispersion_inflation={"g1": 1.5},
                                   random_state=self.layers.index(layer))


def test_analyze_cli_writes_tables_figures_and_note(tmp_path):
    df = simulate_results(n_groups=3, speakers_per_group=4, n_layers=3, seeds=(0, 1),
                          train_sets="full", group_offset={"g2": 0.2})
    ResultsTable(tmp_path / "res").append(df)
    rc = main(["-q", "analyze", str(tmp_path / "res"), "--out", str(tmp_path / "out"),
               "--n-boot", "50", "--n-perm", "50"])
    assert rc == 0
    out = tmp_path / "out"
    for name in ("layer_curves", "layer_summary", "transfer_matrix",
                 "own_vs_broad", "transfer_generalisation", "typing"):
        t = pd.read_csv(out / f"{name}.csv")
        assert len(t), name
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert any(f.startswith("layer_curves") for f in figs)
    assert any(f.startswith("transfer") for f in figs)
    assert any(f.startswith("decomposition") for f in figs)
    text = (out / "findings.md").read_text()
    assert "Systematic or random?" in text and "family-wise" in text


def test_analyze_with_store_adds_dispersion(tmp_path, monkeypatch):
    from probekit.bias.analysis import analyze

    df = simulate_results(n_groups=3, speakers_per_group=4, n_layers=2, seeds=(0, 1),
                          train_sets="full")
    an = analyze(df, store=_Store(), n_boot=50, n_perm=50)
    assert "dispersion_speakers" in an.tables
    assert (an.tables["typing"]["random_source"] == "embedding").all()
    from probekit.bias import figures
    fig = figures.dispersion_scatter(an.tables["dispersion_speakers"])
    assert "speaker" in fig._suptitle.get_text()
    assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()


def test_analyze_cli_error_names_folder(tmp_path, capsys):
    rc = main(["analyze", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "nothing" in capsys.readouterr().err


def test_every_figure_has_labels_units_and_speaker_count():
    from probekit.bias import figures
    from probekit.bias.analysis import analyze

    df = simulate_results(n_groups=3, speakers_per_group=4, n_layers=3, seeds=(0, 1),
                          train_sets="full")
    t = analyze(df, n_boot=30, n_perm=30).tables
    figs = [figures.layer_curves(t["layer_curves"]), figures.transfer_heatmaps(t["transfer_matrix"]),
            figures.decomposition_bars(t["typing"])]
    for fig in figs[:2]:
        assert "speakers" in fig._suptitle.get_text()
    for fig in figs:
        for ax in fig.axes:
            if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>":
                assert ax.get_ylabel(), fig._suptitle.get_text()
    assert "rate" in figs[0].axes[0].get_ylabel()


@pytest.mark.parametrize("case", ["zero_error", "identical", "one_layer", "group_missing_at_layer"])
def test_degenerate_input_gives_nan_with_reason_and_exit_0(tmp_path, case):
    """No errors anywhere, identical errors, one layer, a group absent at one layer: the
    analysis finishes, the affected statistics are NaN with a reason, the summary says so."""
    df = simulate_results(n_groups=3, speakers_per_group=4, n_layers=1 if case == "one_layer" else 3,
                          seeds=(0, 1), train_sets="full")
    if case == "zero_error":
        df["value"] = 0.0
    if case == "identical":
        df["value"] = 0.25
    if case == "group_missing_at_layer":
        df = df[~((df["layer"] == "layer1") & (df["test_group"] == "g0"))]
    ResultsTable(tmp_path / "res").append(df)
    rc = main(["-q", "analyze", str(tmp_path / "res"), "--out", str(tmp_path / "out"),
               "--n-boot", "30", "--n-perm", "30"])
    assert rc == 0
    c = pd.read_csv(tmp_path / "out" / "layer_curves.csv", keep_default_na=True)
    s = pd.read_csv(tmp_path / "out" / "layer_summary.csv", keep_default_na=True)
    text = (tmp_path / "out" / "findings.md").read_text()
    if case == "zero_error":
        assert c["reason"].fillna("").str.contains("no errors").all()
        assert "no errors" in text
    if case == "identical":
        assert c["reason"].fillna("").str.contains("same error").all()
    if case == "one_layer":
        assert s["spearman"].isna().all()
        assert s["reason"].str.contains("fewer than 3 layers").all()
    if case == "group_missing_at_layer":
        g0 = c[(c["statistic"] == "group:g0") & (c["layer"] == "layer1")]
        assert g0["estimate"].isna().all() and g0["p_fwer"].isna().all()
        assert c.loc[c["layer"] == "layer1", "reason"].fillna("").str.contains("fewer than 2").all()
        assert "fewer than 2 test speakers" in text
