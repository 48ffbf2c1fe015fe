"""Turn corpus utterances into Whisper training inputs (log-mel features + label ids).

Also the pieces every fine-tuning entry point shares: the forced decoder prefix (the same
for labels and for generation, :func:`decoder_prefix` / :func:`generation_kwargs`), the
length limits of Whisper's window and decoder (:func:`check_lengths`). The speaker- and
sentence-disjoint train / validation / test split is :func:`training.finetune.finetune_splits`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from training.config import MAX_LABEL_TOKENS
from training.objectives import IGNORE_INDEX

__all__ = ["AudioCache", "collate", "is_multilingual", "decoder_prefix", "generation_kwargs",
           "window_seconds", "check_lengths", "MAX_LABEL_TOKENS"]

log = logging.getLogger(__name__)


_LANGUAGE_CODES = {"english": "en"}


def is_multilingual(model_or_config) -> bool:
    """A multilingual Whisper checkpoint (language and task tokens in its prompt)?

    ``generation_config.is_multilingual`` when the model has one, else OpenAI's rule: the
    multilingual vocabularies have 51865 or more entries, the English-only ones 51864.
    """
    gen = getattr(model_or_config, "generation_config", None)
    flag = getattr(gen, "is_multilingual", None)
    if flag is not None:
        return bool(flag)
    cfg = getattr(model_or_config, "config", model_or_config)
    return int(getattr(cfg, "vocab_size", 0)) >= 51865


def decoder_prefix(tokenizer, multilingual: bool, language: str | None = "english",
                   decode_task: str | None = "transcribe") -> list[int]:
    """The forced decoder prompt, ``<|startoftranscript|>`` first.

    Multilingual: ``SOT <|lang|> <|task|> <|notimestamps|>`` (the prompt
    :func:`generation_kwargs` makes ``generate`` use; English + transcribe by default, as the
    MAS-LoRA authors set on both the tokenizer and the generation config). English-only:
    ``SOT <|notimestamps|>``. Computed by the tokenizer's own ``prefix_tokens`` logic.
    """
    saved = (getattr(tokenizer, "language", None), getattr(tokenizer, "task", None),
             getattr(tokenizer, "predict_timestamps", False))
    try:
        tokenizer.language = language if multilingual else None
        tokenizer.task = decode_task if multilingual else None
        tokenizer.predict_timestamps = False
        return list(tokenizer.prefix_tokens)
    finally:
        tokenizer.language, tokenizer.task, tokenizer.predict_timestamps = saved


def generation_kwargs(model, language: str | None = "english",
                      decode_task: str | None = "transcribe") -> dict:
    """``generate`` keywords forcing :func:`decoder_prefix`'s prompt (none for English-only)."""
    if not is_multilingual(model):
        return {}
    out = {}
    if language is not None:
        out["language"] = _LANGUAGE_CODES.get(language.lower(), language)
    if decode_task is not None:
        out["task"] = decode_task
    return out


def window_seconds(feature_extractor) -> float:
    """Whisper's input window in seconds (30 for the released models)."""
    return float(feature_extractor.n_samples) / float(feature_extractor.sampling_rate)


def check_lengths(utts: Sequence, audio, feature_extractor, tokenizer, *,
                  max_label_tokens: int = MAX_LABEL_TOKENS, prefix_len: int = 4):
    """Split ``utts`` into (kept, dropped) by Whisper's limits.

    Dropped: audio longer than the window (the feature extractor would cut the audio while
    the full transcript stays the target) and transcripts whose labels (prefix + text + end)
    exceed ``max_label_tokens``. Quarkeen's recipe drops over-long segments from training
    the same way. The length is ``Utterance.duration`` when the manifest has it (no decoding),
    else the decoded audio's. Returns two lists; ``dropped`` holds ``(utterance, reason)``.
    """
    limit = window_seconds(feature_extractor) * audio.sample_rate
    kept, dropped = [], []
    for u in utts:
        n_tok = len(tokenizer(u.text, add_special_tokens=False).input_ids) + prefix_len + 1
        n = u.duration * audio.sample_rate if u.duration is not None else len(audio(u))
        if n > limit:
            dropped.append((u, f"audio {n / audio.sample_rate:.1f} s > window"))
        elif n_tok > max_label_tokens:
            dropped.append((u, f"{n_tok} label tokens > {max_label_tokens}"))
        else:
            kept.append(u)
    return kept, dropped


class AudioCache:
    """Decoded 16 kHz waveforms of a corpus, loaded once (the synthetic corpora are small)."""

    def __init__(self, corpus, sample_rate: int = 16000) -> None:
        self.corpus, self.sample_rate = corpus, sample_rate
        self._waves: dict[str, np.ndarray] = {}

    def __call__(self, utt) -> np.ndarray:
        if utt.id not in self._waves:
            from probekit.encoders.audio import prepare_waveforms

            wave, sr = utt.load_audio(self.corpus.root)
            self._waves[utt.id] = prepare_waveforms([wave], self.sample_rate, sr, None,
                                                    [utt.id])[0]
        return self._waves[utt.id]


class FeatureCache:
    """Log-mel features of a corpus' utterances, computed once per utterance and kept.

    Whisper's feature extractor pads every waveform to its window and normalises each
    utterance on its own, so an utterance's features do not depend on its batch: caching
    them per utterance gives exactly the features :func:`collate` would compute (tested),
    and a training step no longer recomputes them (0.7-0.9 s per 16 utterances on one core).
    Kept in memory as float32 (80 x 3000 values, ~1 MB per utterance).
    """

    def __init__(self, audio: AudioCache, feature_extractor) -> None:
        self.audio, self.fe = audio, feature_extractor
        self._feats: dict[str, torch.Tensor] = {}

    def __call__(self, utts: Sequence) -> torch.Tensor:
        missing = list({u.id: u for u in utts if u.id not in self._feats}.values())
        if missing:
            f = self.fe([self.audio(u) for u in missing], sampling_rate=self.audio.sample_rate,
                        return_tensors="pt", padding="max_length").input_features
            self._feats.update({u.id: x for u, x in zip(missing, f)})
        return torch.stack([self._feats[u.id] for u in utts])


def collate(utts: Sequence, audio: AudioCache, feature_extractor, tokenizer,
            decoder_start_token_id: int, *, prefix: Sequence[int] | None = None,
            max_label_tokens: int = MAX_LABEL_TOKENS, features: FeatureCache | None = None
            ) -> dict:
    """One batch.

    Parameters
    ----------
    features : FeatureCache, optional
        Take the log-mels from this cache (computed once per utterance) instead of
        computing them here.
    prefix : sequence of int, optional
        The forced decoder prompt from :func:`decoder_prefix` (``SOT`` first). ``None``: the
        tokenizer's own default prefix (``SOT <|notimestamps|>`` when no language is set,
        right for English-only checkpoints only).
    max_label_tokens : int
        Longer labels are refused (Whisper's decoder has 448 positions).

    Returns
    -------
    dict
        ``input_features`` (batch, mel bins, 3000) float32 (every utterance padded to 30 s, as
        Whisper requires); ``decoder_input_ids`` and ``labels`` (batch, tokens): the tokenised
        transcript (prefix after ``SOT``, text, ``<|endoftext|>``) and the same shifted right
        behind ``<|startoftranscript|>``; labels are :data:`IGNORE_INDEX` past each end.
    """
    if features is not None:
        feats = features(utts)
    else:
        feats = feature_extractor([audio(u) for u in utts], sampling_rate=audio.sample_rate,
                                  return_tensors="pt", padding="max_length").input_features
    seqs = []
    for u in utts:
        if not u.text.strip():
            raise ValueError(f"utterance {u.id} has no transcript to train on")
        if prefix is None:
            ids = tokenizer(u.text).input_ids
        else:
            ids = list(prefix) + tokenizer(u.text, add_special_tokens=False).input_ids + [
                tokenizer.eos_token_id]
        if ids and ids[0] == decoder_start_token_id:
            ids = ids[1:]
        if len(ids) + 1 > max_label_tokens:
            raise ValueError(f"utterance {u.id}: {len(ids) + 1} decoder tokens exceed Whisper's "
                             f"{max_label_tokens}; drop it (training.data.check_lengths)")
        seqs.append(ids)
    n = max(len(s) for s in seqs)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    labels = torch.full((len(seqs), n), IGNORE_INDEX, dtype=torch.long)
    dec = torch.full((len(seqs), n), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        labels[i, : len(s)] = torch.tensor(s)
        dec[i, 0] = decoder_start_token_id
        dec[i, 1: len(s)] = torch.tensor(s[:-1])
    return {"input_features": feats, "decoder_input_ids": dec, "labels": labels}


