"""Turn corpus utterances into Whisper training inputs (log-mel features + label ids)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from training.objectives import IGNORE_INDEX

__all__ = ["AudioCache", "collate"]


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


def collate(utts: Sequence, audio: AudioCache, feature_extractor, tokenizer,
            decoder_start_token_id: int) -> dict:
    """One batch.

    Returns
    -------
    dict
        ``input_features`` (batch, mel bins, 3000) float32 (every utterance padded to 30 s, as
        Whisper requires); ``decoder_input_ids`` and ``labels`` (batch, tokens): the tokenised
        transcript (``<|notimestamps|>`` text ``<|endoftext|>``) and the same shifted right
        behind ``<|startoftranscript|>``; labels are :data:`IGNORE_INDEX` past each end.
    """
    feats = feature_extractor([audio(u) for u in utts], sampling_rate=audio.sample_rate,
                              return_tensors="pt", padding="max_length").input_features
    seqs = []
    for u in utts:
        if not u.text.strip():
            raise ValueError(f"utterance {u.id} has no transcript to train on")
        ids = tokenizer(u.text).input_ids
        if ids and ids[0] == decoder_start_token_id:
            ids = ids[1:]
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
