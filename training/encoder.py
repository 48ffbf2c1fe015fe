"""Hand an adapted model back to probekit as an ordinary :class:`~probekit.encoders.Encoder`.

Two ways, both giving the same hidden states:

* in memory: :func:`adapted_encoder` wraps the model's encoder (merged into plain weights, or
  still carrying its adapters and current mixture) in :class:`probekit.encoders.whisper.WhisperEncoder`;
* on disk: :func:`save_adapted_model` writes the merged model as a transformers folder that
  ``probekit.encoders.load_encoder(folder)`` loads like any Whisper checkpoint: an adapted
  encoder *is* that folder (a study names it by its path and gives it a ``label``).

Extraction, probes and bias analysis then run on it unchanged, so "before vs after
fine-tuning" is the same pipeline run twice.
"""

from __future__ import annotations

import copy
from pathlib import Path

from probekit.encoders.whisper import WhisperEncoder
from training.adapters import merge_adapters

__all__ = ["adapted_encoder", "save_adapted_model"]


def adapted_encoder(model, feature_extractor, name: str, *, merge: bool = True,
                    device="cpu") -> WhisperEncoder:
    """An Encoder over (a copy of) ``model``'s encoder.

    ``merge=True`` folds the adapters (with their current mixture weights) into the weights
    first, so the encoder costs what the base model costs; ``merge=False`` keeps the LoRA
    modules (same states within float tolerance).
    """
    m = copy.deepcopy(model)
    if merge and getattr(m, "adapter_config", None) is not None:
        merge_adapters(m)
    return WhisperEncoder(name, m.get_encoder(), feature_extractor, device=device)


def save_adapted_model(model, processor, out_dir, *, info: dict | None = None,
                       seen=None) -> Path:
    """Save the merged model + processor files as a folder ``load_encoder`` can open.

    ``info`` (method, objective, mixture, ...) is written to ``adaptation.json`` beside it;
    ``seen`` (:class:`probekit.corpus.seen.SeenIds`: the training and validation speakers
    and sentences) to ``seen_ids.json``, which before/after comparisons check test speakers
    against (the leakage guard).
    """
    out = Path(out_dir)
    m = copy.deepcopy(model)
    cfg = getattr(m, "adapter_config", None)
    if cfg is not None:
        merge_adapters(m)
    m.save_pretrained(out)
    processor.save_pretrained(out)
    meta = {"adapters": cfg.to_dict() if cfg is not None else None, **(info or {})}
    if seen is not None:
        seen.save(out)
        meta["seen"] = {"speakers": len(seen.speakers), "sentences": len(seen.sentences),
                        "file": "seen_ids.json"}
    from probekit.atomic import write_json
    write_json(out / "adaptation.json", meta, default=str)
    return out
