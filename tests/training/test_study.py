"""The finetune_bias study is a config: it parses, and its wrapper holds no logic."""

from pathlib import Path

from probekit.study.config import load_config

STUDY = Path(__file__).parents[2] / "studies" / "finetune_bias"


def test_finetune_bias_is_a_config_with_a_training_section():
    cfg = load_config(STUDY / "config.toml")
    assert cfg.training is not None and [m.label for m in cfg.training.methods] == \
        ["erm-lora", "mas-lora"]
    assert cfg.training.base == "whisper-tiny.en" and "en-us" not in cfg.training.train_groups
    assert len((STUDY / "study.py").read_text().splitlines()) < 60
