"""``TrainConfig`` is the one source of the training defaults (issue 22, item 6): the
``probekit train`` flags, a study's ``[training]`` section and the fine-tuning split all take
theirs from it, and the study's device reaches the training."""

from __future__ import annotations

from dataclasses import fields

import pytest

from probekit.cli import build_parser
from probekit.study.config import TrainingSpec, config_from_dict
from training.config import TrainConfig, default_of, help_of
from training.splits import finetune_splits

_ARGS = ["train", "--corpus", "c/", "--out", "o"]


def test_train_flags_default_to_trainconfig():
    """Every TrainConfig field that ``probekit train`` sets comes out at the library default
    when no flag is given (the held-out share included: it was 0.2 on the command line and
    0.5 in the library and a study)."""
    from training.cli import train_settings

    cfg = train_settings(build_parser().parse_args(_ARGS))[0]
    for f in fields(TrainConfig):
        if f.name not in ("out_dir", "progress"):
            assert getattr(cfg, f.name) == default_of(f.name), f.name


def test_train_flags_show_trainconfig_help():
    helps = {a.dest: a.help for a in build_parser()._subparsers._group_actions[0]
             .choices["train"]._actions}
    assert helps["test_speakers"] == help_of("test_speakers")
    assert helps["steps"] == help_of("steps", with_default=True) \
        and "(default: 100)" in helps["steps"]
    assert "lora_alpha" in helps and "decode_task" in helps and "alpha" not in helps


def test_a_study_and_the_split_use_the_same_defaults():
    spec = TrainingSpec(methods=())
    for name in ("steps", "batch_size", "lr", "eval_every", "seed", "test_speakers",
                 "val_speakers"):
        assert getattr(spec, name) == default_of(name), name
    import inspect
    sig = inspect.signature(finetune_splits).parameters
    assert sig["test_speakers"].default == TrainConfig.test_speakers
    assert sig["val_speakers"].default == TrainConfig.val_speakers


_STUDY = {"name": "t", "corpus": {"synthetic": "small"},
          "encoders": [{"name": "whisper-tiny.en"}], "tasks": {"group:accent": {}},
          "training": {"methods": ["lora"], "steps": 6, "test_speakers": 0.6}}


@pytest.mark.parametrize("device, study_device, cpu", [
    ("cpu", "auto", True), (None, "cpu", True), (None, "auto", False), ("cuda", "cpu", False)])
def test_the_study_device_reaches_training(tmp_path, device, study_device, cpu):
    from probekit.study.stages import train_config

    config = config_from_dict({**_STUDY, "device": study_device})
    cfg = train_config(config, tmp_path / "lora", device=device, progress=False)
    assert cfg.cpu is cpu
    assert (cfg.steps, cfg.test_speakers, cfg.attribute) == (6, 0.6, "accent")
    assert cfg.batch_size == TrainConfig.batch_size and cfg.lr == TrainConfig.lr
