"""The demo pipelines at test size (a tiny synthetic corpus and a randomly initialised model):
:func:`tiny_demo_config` for ``probekit demo``, :func:`finetune_demo_config` for ``probekit demo
--finetune``. Test helpers, not demos: their numbers describe random weights."""

from __future__ import annotations

import json
from pathlib import Path

from probekit.demo import FINETUNE_DEMO_CONFIG, demo_config
from probekit.study.config import StudyConfig, config_from_dict

__all__ = ["tiny_demo_config", "finetune_demo_config"]


def tiny_demo_config(model_dir: str | Path) -> StudyConfig:
    """The demo pipeline at test size: 3 accents x 8 speakers x 4 sentences (36 utterances)
    and the randomly initialised model saved in ``model_dir``
    (:func:`probekit.testing.tiny_models.save_tiny_whisper`); runs in well under a minute."""
    return demo_config(
        corpus={"synthetic": "small", "speakers_per_group": 6, "sentences_per_speaker": 2,
                "sentence_pool": 2, "group_attribute": "accent"},
        encoders=[{"name": str(model_dir), "label": "tiny-random-whisper", "sources": ["local"],
                   "random_init": True}],
        tasks={"phone": {"seeds": [0, 1]}, "speaker": {"seeds": [0]},
               "group:accent": {"seeds": [0]}, "asr": {"seeds": [0], "max_epochs": 2}},
        analysis={"n_boot": 50, "n_perm": 50})


def finetune_demo_config(*, model: str | None = None, corpus: dict | None = None,
                         steps: int | None = None, max_new_tokens: int | None = None,
                         n_boot: int | None = None) -> StudyConfig:
    """:data:`FINETUNE_DEMO_CONFIG`, optionally on another (e.g. tiny random) model folder,
    corpus, number of steps, decoding length or resampling size (tests)."""
    d = json.loads(json.dumps(FINETUNE_DEMO_CONFIG))
    if model:
        d["encoders"] = [{"name": model, "label": "tiny-random-whisper", "sources": ["local"],
                          "random_init": True}]
    if corpus:
        d["corpus"] = corpus
    if steps:
        d["training"]["steps"] = steps
    if max_new_tokens:
        d["training"]["max_new_tokens"] = max_new_tokens
    if n_boot:
        d["analysis"] = {"n_boot": n_boot, "n_perm": n_boot}
    return config_from_dict(d, source=None)
