"""Every encoder family through every entry point that loads an encoder (issue 11).

Rows: Whisper, each self-supervised family :mod:`probekit.testing.tiny_models` knows, and
w2v-BERT, all tiny random models saved to folders. Columns: ``probekit encoders info``,
``probekit extract``, ``probekit study run`` (two encoders: a Whisper with its own options
beside the family's model, the side-by-side comparison the study READMEs promise), the demo's
config with the encoder overridden, and, for Whisper only (training adapts Whisper), the
training hand-back (an adapted model's folder, studied beside its base model).
Everything runs end to end on a 24-utterance cut of the ``small`` synthetic preset.

Before typed options the study column failed for every self-supervised family with
``TypeError: WavLMModel.__init__() got an unexpected keyword argument 'sources'``.
"""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from probekit.cli import main
from probekit.encoders import load_encoder
from probekit.errors import EncoderError
from probekit.testing.tiny_models import (SSL_FAMILIES, save_tiny_ssl, save_tiny_w2v_bert,
                                          save_tiny_whisper)

#: row -> registry family that must load it
FAMILIES = {"whisper": "whisper", **{f: "hf-ssl" for f in SSL_FAMILIES}, "w2v-bert": "w2v-bert"}
SSL_ROWS = [f for f in FAMILIES if f != "whisper"]
CORPUS = {"synthetic": "small", "speakers_per_group": 4, "sentences_per_speaker": 2,
          "sentence_pool": 2, "group_attribute": "accent"}
#: The two-encoder study wall times, printed at the end of the module (-s shows them).
WALL: dict[str, float] = {}


@pytest.fixture(scope="module")
def corpus():
    from probekit.corpus.synthetic import build_synthetic_corpus, resolve_config

    c = dict(CORPUS)
    c.pop("group_attribute")
    return build_synthetic_corpus(resolve_config(c.pop("synthetic"), **c), progress=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    made: dict = {}

    def get(row: str):
        if row not in made:
            folder = tmp_path_factory.mktemp("models") / row
            if row == "whisper":
                save_tiny_whisper(folder)
            elif row == "w2v-bert":
                save_tiny_w2v_bert(folder)
            else:
                save_tiny_ssl(row, folder)
            made[row] = folder
        return made[row]

    yield get
    if WALL:
        print("\ntwo-encoder study wall time (s): "
              + ", ".join(f"{k} {v:.1f}" for k, v in WALL.items()))


def _study_toml(path, encoders: list[dict]) -> str:
    lines = ['name = "entry-points"', "poolings = [\"utterance\", \"phone\"]", "[corpus]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in CORPUS.items()]
    for e in encoders:
        lines.append("[[encoders]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in e.items() if k != "options"]
        if e.get("options"):
            lines.append("[encoders.options]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in e["options"].items()]
    lines += ["[tasks.phone]", 'probes = ["lda"]', "seeds = [0]", 'train_sets = ["all"]',
              "[analysis]", "n_boot = 10", "n_perm = 10"]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _whisper_entry(model_dir, label="tiny-whisper"):
    # A Whisper-only option (the study configs' ``sources`` shorthand), given beside a family
    # that does not take it.
    return {"name": str(model_dir("whisper")), "label": label, "random_init": True,
            "sources": ["local"]}


def _check_study(out, labels):
    from probekit.probes.results import ResultsTable

    assert (out / "report.html").exists() and (out / "report.md").exists()
    table = ResultsTable(out / "work" / "results").load()
    assert sorted(set(table["encoder"])) == sorted(labels)
    md = (out / "report.md").read_text()
    assert all(label in md for label in labels)


# -- the table ---------------------------------------------------------------------------------
@pytest.mark.parametrize("row", list(FAMILIES))
def test_encoders_info(row, model_dir, capsys):
    assert main(["encoders", "info", str(model_dir(row)), "--device", "cpu"]) == 0
    assert "fingerprint=" in capsys.readouterr().out


@pytest.mark.parametrize("row", list(FAMILIES))
def test_extract(row, model_dir, corpus, tmp_path):
    from probekit.store import EmbeddingStore

    enc = load_encoder(str(model_dir(row)), device="cpu")
    assert enc.family == FAMILIES[row]
    rc = main(["-q", "extract", "--encoder", str(model_dir(row)), "--corpus", str(corpus.root),
               "--out", str(tmp_path / "store"), "--pooling", "utterance", "--device", "cpu",
               "--no-progress"])
    assert rc == 0
    store = EmbeddingStore.open(tmp_path / "store")
    assert store.layers == enc.layer_names and store.index["rows"]["utterance"] == len(corpus)


@pytest.mark.parametrize("row", list(FAMILIES))
def test_study_two_encoders(row, model_dir, tmp_path):
    """``probekit study run`` with Whisper beside the family's model (for the Whisper row, a
    second Whisper given its other option in an ``[encoders.options]`` table)."""
    other = {"name": str(model_dir(row)), "label": f"tiny-{row}", "random_init": True}
    if row == "whisper":
        other.update(label="tiny-whisper-window", options={"long_form": "window"})
    cfg = _study_toml(tmp_path / "study.toml", [_whisper_entry(model_dir), other])
    t = time.perf_counter()
    assert main(["-q", "study", "run", cfg, "--out", str(tmp_path / "out")]) == 0
    WALL[row] = time.perf_counter() - t
    _check_study(tmp_path / "out", ["tiny-whisper", other["label"]])
    # issue 18: every encoder's own store reaches the analysis (dispersion per encoder)
    import pandas as pd
    disp = pd.read_csv(tmp_path / "out" / "analysis" / "dispersion_speakers.csv")
    assert sorted(set(disp["encoder"])) == sorted(["tiny-whisper", other["label"]])


@pytest.mark.parametrize("row", list(FAMILIES))
def test_demo_with_encoder_override(row, model_dir, tmp_path):
    from probekit.demo import demo_config, run_demo

    label = f"tiny-{row}"
    cfg = demo_config(corpus=CORPUS, poolings=["utterance", "phone"],
                      encoders=[{"name": str(model_dir(row)), "label": label,
                                 "random_init": True}],
                      tasks={"phone": {"probes": ["lda"], "seeds": [0], "train_sets": ["all"]}},
                      analysis={"n_boot": 10, "n_perm": 10})
    run = run_demo(tmp_path / "demo", config=cfg, progress=False)
    _check_study(run.out, [label])


def test_training_hand_back_beside_its_base(model_dir, corpus, tmp_path):
    """The hand-back applies to Whisper: an adapted model is its saved folder, studied beside
    its base (the before/after comparison) and extracted from that folder."""
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    from training.adapters import AdapterConfig, inject_adapters
    from training.encoder import save_adapted_model

    base = model_dir("whisper")
    model = WhisperForConditionalGeneration.from_pretrained(base)
    inject_adapters(model, AdapterConfig(r=4), seed=0)
    folder = save_adapted_model(model, WhisperFeatureExtractor.from_pretrained(base),
                                tmp_path / "adapted")
    assert load_encoder(str(folder), device="cpu").family == "whisper"
    cfg = _study_toml(tmp_path / "study.toml", [
        _whisper_entry(model_dir, "before"),
        {"name": str(folder), "label": "after", "options": {"long_form": "window"}}])
    assert main(["-q", "study", "run", cfg, "--out", str(tmp_path / "out")]) == 0
    _check_study(tmp_path / "out", ["before", "after"])
    assert main(["-q", "extract", "--encoder", str(folder), "--corpus",
                 str(corpus.root), "--out", str(tmp_path / "store"), "--pooling", "utterance",
                 "--device", "cpu", "--no-progress"]) == 0


# -- options are typed per family ----------------------------------------------------------
@pytest.mark.parametrize("row", SSL_ROWS)
def test_ssl_families_refuse_whisper_options_in_one_line(row, model_dir):
    with pytest.raises(EncoderError) as err:
        load_encoder(str(model_dir(row)), device="cpu", sources=("local",))
    msg = str(err.value)
    assert "\n" not in msg
    assert f"encoder family {FAMILIES[row]!r}" in msg and "does not take option 'sources'" in msg
    assert "revision" in msg  # what it does take


def test_option_values_are_typed(model_dir):
    from probekit.encoders.registry import family_options

    whisper = str(model_dir("whisper"))
    with pytest.raises(EncoderError, match="'whisper'.*does not take option 'revision'"):
        load_encoder(whisper, device="cpu", revision="main")
    with pytest.raises(EncoderError, match="option 'long_form' must be 'error' \\| 'window'"):
        load_encoder(whisper, device="cpu", long_form="chunk")
    with pytest.raises(EncoderError, match="option 'sources' must be list of"):
        load_encoder(whisper, device="cpu", sources=["ftp"])
    enc = load_encoder(whisper, device="cpu", sources="local", long_form="window")
    assert enc.long_form == "window"
    with pytest.raises(EncoderError, match="option 'local_files_only' must be bool"):
        load_encoder(str(model_dir("wavlm")), device="cpu", local_files_only="yes")
    assert load_encoder(str(model_dir("wavlm")), device="cpu", local_files_only=True,
                        revision="main").family == "hf-ssl"
    assert set(family_options("whisper")) == {"sources", "long_form"}
    assert set(family_options("hf-ssl")) == set(family_options("w2v-bert")) == {
        "revision", "cache_dir", "local_files_only"}


def test_study_refuses_an_option_before_building_anything(model_dir, tmp_path, capsys):
    cfg = _study_toml(tmp_path / "study.toml", [
        _whisper_entry(model_dir),
        {"name": str(model_dir("wavlm")), "label": "wavlm", "sources": ["local"]}])
    assert main(["-q", "study", "run", cfg, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("probekit: error:")]
    assert len(errors) == 1 and "Traceback" not in err
    assert "encoder family 'hf-ssl'" in errors[0] and "option 'sources'" in errors[0]
    assert not (tmp_path / "out").exists()


def test_study_config_options_table(tmp_path):
    from probekit.study import StudyConfigError, config_from_dict, load_config

    path = tmp_path / "c.toml"
    path.write_text('[[encoders]]\nname = "whisper-tiny.en"\nsources = ["local", "package"]\n'
                    '[encoders.options]\nlong_form = "window"\n'
                    '[[encoders]]\nname = "facebook/wav2vec2-base"\n'
                    '[encoders.options]\nrevision = "main"\n')
    a, b = load_config(path).encoders
    assert a.options == {"long_form": "window", "sources": ("local", "package")}
    assert a.sources == ("local", "package") and b.options == {"revision": "main"}
    assert b.sources is None
    cfg = config_from_dict({"encoders": [{"name": "x", "options": {"revision": "v2"}}]})
    assert cfg.fingerprint() != config_from_dict({"encoders": ["x"]}).fingerprint()
    with pytest.raises(StudyConfigError, match="given twice"):
        config_from_dict({"encoders": [{"name": "x", "sources": ["local"],
                                        "options": {"sources": ["hub"]}}]})
    with pytest.raises(StudyConfigError, match="'device' is set for the whole study"):
        config_from_dict({"encoders": [{"name": "x", "options": {"device": "cuda"}}]})
    with pytest.raises(StudyConfigError, match="options: expected a table"):
        config_from_dict({"encoders": [{"name": "x", "options": ["revision"]}]})
