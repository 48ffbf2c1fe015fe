"""Study configs: the shipped ones parse, errors name the file and field, fingerprints move
with what changes results."""

from __future__ import annotations

from pathlib import Path

import pytest

from probekit.cli import main
from probekit.study import StudyConfigError, config_from_dict, load_config

STUDIES = Path(__file__).resolve().parents[2] / "studies"


@pytest.mark.parametrize("name", ["layerwise_bias", "phoneme_typing"])
def test_shipped_configs_parse(name):
    cfg = load_config(STUDIES / name / "config.toml")
    assert cfg.name == name and cfg.synthetic and cfg.encoders[0].name == "whisper-tiny.en"
    assert cfg.question and (STUDIES / name / "README.md").exists()
    assert "hub" not in cfg.encoders[0].sources


def test_several_encoders_and_labels():
    cfg = config_from_dict({"encoders": ["a", {"name": "b", "label": "B"}]})
    assert [e.display for e in cfg.encoders] == ["a", "B"]
    with pytest.raises(StudyConfigError, match="distinct"):
        config_from_dict({"encoders": ["a", "a"]})


@pytest.mark.parametrize("d, match", [
    ({}, "no \\[\\[encoders\\]\\]"),
    ({"encoders": ["a"], "tasks": {"pitch": {}}}, "unknown task"),
    ({"encoders": ["a"], "tasks": {"phone:x": {}}}, "unknown task.*takes no argument"),
    ({"encoders": ["a"], "tasks": {"phone": {"train_sets": ["single", "al"]}}},
     r"\[tasks.'phone'\]: unknown train_sets \['al'\]"),
    ({"encoders": ["a"], "tasks": {"group:accent": {"max_epochs": 3}}}, "under \[tasks.asr\]"),
    ({"encoders": ["a"], "tasks": {"phone": {"seed": [1]}}}, "unknown key.*seed"),
    ({"encoders": ["a"], "corpus": {"synthetic": "default", "path": "x"}}, "exactly one"),
    ({"encoders": ["a"], "colour": 1}, "unknown key.*colour.*known"),
])
def test_errors_name_the_field(d, match):
    with pytest.raises(StudyConfigError, match=match):
        config_from_dict(d, source="my.toml")


def test_fingerprint_follows_results_not_device():
    base = {"encoders": ["a"]}
    fp = config_from_dict(base).fingerprint()
    assert config_from_dict({**base, "device": "cuda"}).fingerprint() == fp
    assert config_from_dict({**base, "tasks": {"phone": {"seeds": [0]}}}).fingerprint() != fp


def test_bad_toml_is_one_line_error(tmp_path, capsys):
    (tmp_path / "c.toml").write_text("name = [")
    assert main(["study", "show", str(tmp_path / "c.toml")]) == 2
    assert "not valid TOML" in capsys.readouterr().err
