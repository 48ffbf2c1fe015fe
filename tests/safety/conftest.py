"""The tiny Whisper and small corpus fixtures of tests/training (one definition), for the
kill -9 and bad-input tests of ``probekit train``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_training_conftest", Path(__file__).resolve().parents[1] / "training" / "conftest.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
tiny_whisper_dir, small_corpus = _mod.tiny_whisper_dir, _mod.small_corpus
