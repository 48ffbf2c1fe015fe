"""What a fine-tuning run *is*: the settings that determine its weights, and their key.

A run folder, its checkpoints and its cached transcripts are reused only for exactly the
same settings. :func:`run_settings` collects everything that determines the trained weights:

* the utterance ids *per side* (``train:``, ``val:``, ``test:``; two splits of the same
  utterances differ);
* every :class:`~training.config.TrainConfig` field that is not cosmetic (``COSMETIC``) or a
  split setting (``SPLIT_FIELDS``, recorded by the sides);
* the adapter configuration, the objective (its ``repr`` holds its reading and weights);
* the base model's fingerprint (sha256 of its weight files, not only its name).

:func:`settings_key` hashes them; :func:`settings_diff` names what differs between two runs.
The key is stored in every ``checkpoint.pt`` and in ``finetune.json``; a folder holding
another key is never resumed or reused.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

__all__ = ["COSMETIC", "SPLIT_FIELDS", "ids_digest", "split_sides", "base_fingerprint", "run_settings",
           "settings_key", "settings_diff", "transcripts_settings"]

#: TrainConfig fields that do not change the trained weights (where files go, how much is
#: printed, the device choice, how often a checkpoint is written, the evaluation batch).
COSMETIC = frozenset({"out_dir", "progress", "eval_batch_size", "cpu", "save_every"})
#: TrainConfig fields that only choose the split (``test_speakers``, ``val_speakers``): the
#: split itself is recorded, by ids, in ``sides``.
SPLIT_FIELDS = frozenset({"test_speakers", "val_speakers"})


def ids_digest(corpus) -> str:
    """sha256 (16 hex) of a corpus' sorted utterance ids ('-' for none)."""
    if corpus is None:
        return "-"
    ids = sorted(str(u.id) for u in corpus)
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16] + f"/{len(ids)}"


def split_sides(train, val, test=None) -> dict:
    """``{"train": digest, "val": digest[, "test": digest]}``: which ids are on which side."""
    d = {"train": ids_digest(train), "val": ids_digest(val)}
    if test is not None:
        d["test"] = ids_digest(test)
    return d


@functools.lru_cache(maxsize=8)
def base_fingerprint(model: str) -> str:
    """The base model's weight fingerprint (``probekit.encoders.weights.weights_fingerprint``
    of its folder), so a changed checkpoint behind the same name is a different run."""
    from probekit.encoders.weights import resolve_whisper, weights_fingerprint

    folder = Path(model)
    if not folder.is_dir():
        folder = resolve_whisper(str(model), sources=("local", "hf-cache", "package"))
    return weights_fingerprint(folder)[:16]


def _jsonable(x):
    return json.loads(json.dumps(x, default=str))


def run_settings(*, sides: dict, config, method: str, objective: str, objective_args: dict,
                 objective_repr: str, adapter: dict, base: str, attribute: str,
                 train_groups) -> dict:
    """Everything that determines a run's weights, as a JSON-able dict."""
    cfg = {k: v for k, v in asdict(config).items() if k not in COSMETIC | SPLIT_FIELDS}
    cfg["attribute"] = attribute
    return _jsonable({"sides": sides, "train_config": cfg, "method": method,
                      "objective": objective, "objective_args": objective_args,
                      "objective_repr": objective_repr,
                      "adapter": adapter, "base": base, "train_groups": list(train_groups)})


def settings_key(settings: dict) -> str:
    """12-hex key of a settings dict."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def settings_diff(old: dict | None, new: dict, prefix: str = "") -> list[str]:
    """``["sides.train: a -> b", ...]``: the leaves that differ (old ``None``: unknown)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [] if old == new else [f"{prefix.rstrip('.') or 'settings'}: {old!r} -> {new!r}"]
    out = []
    for k in sorted(set(old) | set(new), key=str):
        if old.get(k) != new.get(k):
            if isinstance(old.get(k), dict) and isinstance(new.get(k), dict):
                out += settings_diff(old[k], new[k], f"{prefix}{k}.")
            else:
                out.append(f"{prefix}{k}: {old.get(k)!r} -> {new.get(k)!r}")
    return out


def transcripts_settings(*, model: str, corpus, max_new_tokens: int, language, decode_task,
                         known_accent_d=None) -> dict:
    """What determines a set of transcripts (the model's key or fingerprint, the ids, decoding)."""
    return _jsonable({"model": model, "ids": ids_digest(corpus), "max_new_tokens": max_new_tokens,
                      "language": language, "decode_task": decode_task, "known_accent_d": known_accent_d})
