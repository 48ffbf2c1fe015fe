"""w2v-BERT 2.0, the speech encoder of Seamless-M4T v2 (``Wav2Vec2BertModel``).

It has no convolutional waveform front end: 80-bin log-mel filterbanks (25 ms windows, 10 ms
hop) are normalised per utterance, stacked in pairs (20 ms frames, 160 values) and projected.
Layer ``conv`` is that projected front end (kept under the common name so layer axes line up
across families), then every conformer block. Features are computed per utterance (their
normalisation spans the utterance); the conformer blocks mask padding in both attention and
the depthwise convolution, so the transformer batch is padding-safe.
"""

from __future__ import annotations

import math

import torch

from probekit.encoders.base import Encoder, stack_layers
from probekit.encoders.hf_ssl import PRETRAINED_OPTIONS
from probekit.encoders.registry import register_encoder
from probekit.errors import EncoderError

__all__ = ["W2VBertEncoder"]

_WINDOW, _HOP = 400, 160  # samples at 16 kHz, kaldi-style filterbank without edge padding


@register_encoder("w2v-bert", model_types=("wav2vec2-bert",))
class W2VBertEncoder(Encoder):
    """Every layer of a w2v-BERT 2.0 encoder (e.g. ``facebook/w2v-bert-2.0``)."""

    options = dict(PRETRAINED_OPTIONS)

    def __init__(self, name: str, model, feature_extractor, *, device="auto", dtype=None) -> None:
        super().__init__(name, model, device=device, dtype=dtype)
        self.feature_extractor = feature_extractor

    @classmethod
    def known_names(cls) -> list[str]:
        return ["facebook/w2v-bert-2.0"]

    @classmethod
    def from_name(cls, name: str, *, device="auto", dtype=None, **kwargs) -> "W2VBertEncoder":
        from transformers import SeamlessM4TFeatureExtractor

        from probekit.encoders.hf_ssl import load_auto_parts

        model, fe = load_auto_parts(name, **kwargs)
        return cls(name, model, fe or SeamlessM4TFeatureExtractor(), device=device, dtype=dtype)

    @property
    def sample_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @property
    def frame_shift(self) -> float:
        return _HOP * self.feature_extractor.stride / self.sample_rate

    def num_frames(self, num_samples: int) -> int:
        fbank = 1 + (num_samples - _WINDOW) // _HOP
        return math.ceil(fbank / self.feature_extractor.stride)

    def _forward(self, waves, names):
        # Two filterbank frames at least: the per-utterance variance needs more than one.
        min_samples = _WINDOW + _HOP
        feats = []
        for w, n in zip(waves, names):
            if len(w) < min_samples:
                raise EncoderError(f"{n}: {len(w)} samples is shorter than w2v-BERT's minimum "
                                   f"({min_samples} samples)")
            f = self.feature_extractor(w, sampling_rate=self.sample_rate, return_tensors="pt",
                                       return_attention_mask=False).input_features[0]
            feats.append(f)
        lengths = torch.tensor([f.shape[0] for f in feats])
        x = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1])
        for i, f in enumerate(feats):
            x[i, : f.shape[0]] = f
        mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).long()
        out = self.model(x.to(self.device, self.dtype), attention_mask=mask.to(self.device),
                         output_hidden_states=True)
        return stack_layers(out.hidden_states, lengths), lengths
