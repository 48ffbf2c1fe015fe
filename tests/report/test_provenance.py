"""Issue 18 item 6 and the report parts of item 7: provenance in a step-by-step report, the
synthetic banner names the corpus used, --random-init and the analysis folder are checked."""

from __future__ import annotations


from probekit.cli import main
from probekit.probes.grid import run_grid

from tests.probes.test_grid import FakeStore, _meta


def _step_by_step(tmp_path):
    st = FakeStore(_meta(speakers=4))
    st.fingerprint = {"encoder": "fake", "corpus": "c1"}
    res = tmp_path / "res"
    run_grid(st, "phone", res, seeds=(0, 1), progress=False, train_sets=("single", "all"))
    from probekit.bias.analysis import analyze
    from probekit.probes.results import ResultsTable

    an = analyze(ResultsTable(res).load(), store=st, n_boot=20, n_perm=20)
    an.save(tmp_path / "an")
    return res, tmp_path / "an"


def test_step_by_step_report_has_configuration_fingerprints_stores_versions(tmp_path):
    res, an = _step_by_step(tmp_path)
    assert main(["report", str(an), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    config = md.split("## Configuration")[1].split("## Fingerprints")[0]
    assert '"n_boot": 20' in config and '"n_perm": 20' in config
    prov = md.split("## Fingerprints and versions")[1]
    assert '"numpy"' in prov and '"results:fake"' in prov
    stores = prov.split("### Embedding stores")[1]
    assert '"corpus": "c1"' in stores
    # the split line, per encoder / task
    assert "Sentence split of fake / phone: sentence-disjoint" in md


def test_synthetic_banner_names_the_corpus_used(tmp_path):
    _, an = _step_by_step(tmp_path)
    assert main(["report", str(an), "--out", str(tmp_path / "r1"), "--synthetic"]) == 0
    text = (tmp_path / "r1" / "report.md").read_text()
    assert "SYNTHETIC DATA" in text and "espeak" not in text
    assert main(["report", str(an), "--out", str(tmp_path / "r2"),
                 "--synthetic-source", "Piper TTS voices reading English"]) == 0
    text = (tmp_path / "r2" / "report.md").read_text()
    assert "SYNTHETIC DATA: the corpus is Piper TTS voices reading English" in text


def test_random_init_refuses_an_encoder_not_in_the_analysis(tmp_path, capsys):
    _, an = _step_by_step(tmp_path)
    assert main(["report", str(an), "--out", str(tmp_path / "r"), "--random-init", "wavlm"]) == 2
    err = capsys.readouterr().err
    assert "wavlm" in err and "its encoders: fake" in err and len(err.strip().splitlines()) == 1
    assert main(["report", str(an), "--out", str(tmp_path / "r"), "--random-init", "fake"]) == 0
    assert "RANDOMLY INITIALISED MODEL: fake" in (tmp_path / "r" / "report.md").read_text()


def test_report_refuses_a_folder_that_is_not_an_analysis(tmp_path, capsys):
    res, _ = _step_by_step(tmp_path)
    assert main(["report", str(res), "--out", str(tmp_path / "r")]) == 2
    assert "is a results table, not an analysis folder" in capsys.readouterr().err
    assert not (tmp_path / "r" / "report.html").exists()
