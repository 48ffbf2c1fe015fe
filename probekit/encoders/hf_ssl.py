"""Self-supervised speech encoders from ``transformers``: wav2vec2, HuBERT, WavLM, data2vec-audio.

Any hub id or local folder loads through the real ``from_pretrained`` path, including
checkpoints fine-tuned for ASR (``Wav2Vec2ForCTC``, ``HubertForCTC``, ...): ``AutoModel``
keeps their encoder and drops the CTC head, so a pretrained model and its ASR fine-tuned
version are compared on the same layers (seed 002).

Layers: ``conv`` is the hidden state entering the first transformer block (the CNN features
after the feature projection and the convolutional positional embedding), then every block.

Batching never changes an utterance's embeddings: wav2vec2-base-style models normalise the
first convolution with a GroupNorm over the *whole* time axis, so zero padding would leak
into every frame. The convolutional front end therefore runs on each utterance alone; the
transformer then runs on the padded batch with an attention mask, and its convolutional
positional embedding sees zeros past the end exactly as it does unbatched. data2vec-audio
stacks several positional convolutions with layer norms, so padding leaks into valid frames
whatever is done; its utterances are encoded one at a time (``_PADDING_LEAKS``).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from probekit.encoders.base import Encoder, stack_layers
from probekit.encoders.registry import EncoderOption, register_encoder
from probekit.errors import EncoderError

log = logging.getLogger(__name__)

__all__ = ["SSLEncoder"]

#: model_types whose transformer cannot take a padded batch without changing valid frames.
_PADDING_LEAKS = frozenset({"data2vec-audio"})

#: ``from_pretrained`` keywords the transformers-loaded families accept (and nothing else).
PRETRAINED_OPTIONS = {
    "revision": EncoderOption((str,), "hub revision: a branch, tag or commit (default: main)"),
    "cache_dir": EncoderOption((str,), "Hugging Face cache folder to read and download into"),
    "local_files_only": EncoderOption((bool,), "never contact the hub (default: false)"),
}


def load_auto_parts(name: str, **kwargs):
    """``(model, feature_extractor or None)`` from a hub id or folder via the Auto classes;
    a model that cannot be loaded is an ``EncoderError`` naming it. ``kwargs`` are
    :data:`PRETRAINED_OPTIONS` only (anything else is refused, never passed on)."""
    from transformers import AutoFeatureExtractor, AutoModel

    unknown = sorted(set(kwargs) - set(PRETRAINED_OPTIONS))
    if unknown:
        raise EncoderError(f"cannot load encoder {name!r}: unknown from_pretrained option(s) "
                           f"{unknown}; allowed: {sorted(PRETRAINED_OPTIONS)}")
    try:
        model = AutoModel.from_pretrained(name, **kwargs)
    except OSError as exc:
        raise EncoderError(f"cannot load encoder {name!r}: {str(exc).splitlines()[0]}") from None
    try:
        fe = AutoFeatureExtractor.from_pretrained(name, **kwargs)
    except (OSError, ValueError):
        fe = None
    return model, fe


class _PrecomputedFrontEnd(torch.nn.Module):
    """Stands in for the model's CNN during one forward and returns features computed per
    utterance (see the module docstring)."""

    def __init__(self, features: torch.Tensor) -> None:
        super().__init__()
        self.features = features

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:  # noqa: ARG002
        return self.features


@register_encoder("hf-ssl", model_types=("wav2vec2", "hubert", "wavlm", "data2vec-audio",
                                          "wav2vec2-conformer", "unispeech-sat", "unispeech"))
class SSLEncoder(Encoder):
    """A self-supervised encoder of the wav2vec2 family.

    Parameters
    ----------
    name : str
        Hub id or local folder it came from (for reports and fingerprints).
    model : transformers.PreTrainedModel
        The base model (``Wav2Vec2Model``, ``HubertModel``, ...).
    do_normalize : bool
        Zero-mean unit-variance normalisation of each waveform, as the checkpoint's feature
        extractor does (read from ``preprocessor_config.json`` by :meth:`from_name`).
    sampling_rate : int
        Hz, from the checkpoint's feature extractor (16000 for all published models).
    """

    options = dict(PRETRAINED_OPTIONS)

    #: One utterance per call on a CPU (a batch is up to 17% slower on 2 cores: padding, the
    #: mask and copies), 16 length-sorted utterances on a GPU (see ``Encoder.batch_sizes``).
    batch_sizes = {"cpu": 1, "cuda": 16}

    def __init__(self, name: str, model, *, do_normalize: bool = True,
                 sampling_rate: int = 16000, device="auto", dtype=None) -> None:
        if not hasattr(model, "feature_extractor") or not hasattr(model, "encoder"):
            raise EncoderError(f"{name}: {type(model).__name__} is not a wav2vec2-style base model")
        super().__init__(name, model, device=device, dtype=dtype)
        self.do_normalize = bool(do_normalize)
        self._sampling_rate = int(sampling_rate)

    @classmethod
    def from_name(cls, name: str, *, device="auto", dtype=None, **kwargs) -> "SSLEncoder":
        """Load with ``AutoModel.from_pretrained`` (hub id or local folder); ``kwargs`` are
        :attr:`options` (``revision``, ``cache_dir``, ``local_files_only``)."""
        model, fe = load_auto_parts(name, **kwargs)
        if fe is not None:
            do_normalize = bool(getattr(fe, "do_normalize", True))
            sr = int(getattr(fe, "sampling_rate", 16000))
        else:
            log.warning("%s has no preprocessor_config.json; assuming 16 kHz input and "
                        "per-utterance normalisation", name)
            do_normalize, sr = True, 16000
        return cls(name, model, do_normalize=do_normalize, sampling_rate=sr, device=device,
                   dtype=dtype)

    @classmethod
    def known_names(cls) -> list[str]:
        return ["facebook/wav2vec2-base", "facebook/wav2vec2-base-960h", "facebook/hubert-base-ls960",
                "microsoft/wavlm-base-plus", "facebook/data2vec-audio-base"]

    # -- geometry ---------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self._sampling_rate

    @property
    def frame_shift(self) -> float:
        return math.prod(self.model.config.conv_stride) / self.sample_rate

    def num_frames(self, num_samples: int) -> int:
        return int(self.model._get_feat_extract_output_lengths(torch.tensor(num_samples)))

    # -- forward ----------------------------------------------------------------------------
    def _normalize(self, wave: np.ndarray) -> np.ndarray:
        if not self.do_normalize:
            return wave
        # Same formula as transformers' Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm.
        return (wave - wave.mean()) / np.sqrt(wave.var() + 1e-7)

    def _forward(self, waves, names):
        if len(waves) > 1 and self.model.config.model_type in _PADDING_LEAKS:
            singles = [self._forward([w], [n]) for w, n in zip(waves, names)]
            lengths = torch.cat([length for _, length in singles])
            states = torch.zeros(self.num_layers + 1, len(waves), int(lengths.max()),
                                 self.hidden_size, device=self.device, dtype=self.dtype)
            for i, (h, length) in enumerate(singles):
                states[:, i, : int(length[0])] = h[:, 0]
            return states, lengths
        min_samples = self._min_samples()
        for w, n in zip(waves, names):
            if len(w) < min_samples:
                raise EncoderError(f"{n}: {len(w)} samples is shorter than one frame of "
                                   f"{type(self.model).__name__} ({min_samples} samples)")
        if len(waves) == 1:
            # One utterance: the plain forward, no padding, so no front-end swap and no mask.
            x = torch.from_numpy(self._normalize(waves[0])).to(self.device, self.dtype)[None]
            out = self.model(x, output_hidden_states=True)
            lengths = torch.tensor([out.hidden_states[0].shape[1]])
            return self._checked_stack(out.hidden_states, lengths), lengths
        feats = []
        for w in waves:
            x = torch.from_numpy(self._normalize(w)).to(self.device, self.dtype)[None]
            feats.append(self.model.feature_extractor(x)[0])  # (channels, frames)
        lengths = torch.tensor([f.shape[-1] for f in feats])
        padded = torch.zeros(len(feats), feats[0].shape[0], int(lengths.max()),
                             device=self.device, dtype=self.dtype)
        for i, f in enumerate(feats):
            padded[i, :, : f.shape[-1]] = f
        # The model derives the frame mask from a sample-level mask; any sample counts that
        # map to the same frame counts will do, so reuse the true sample lengths.
        n_samples = torch.tensor([len(w) for w in waves])
        sample_mask = (torch.arange(int(n_samples.max()))[None, :] < n_samples[:, None]).long()
        dummy = torch.zeros(len(waves), int(n_samples.max()), device=self.device, dtype=self.dtype)
        real_front_end = self.model.feature_extractor
        self.model.feature_extractor = _PrecomputedFrontEnd(padded)
        try:
            out = self.model(dummy, attention_mask=sample_mask.to(self.device),
                             output_hidden_states=True)
        finally:
            self.model.feature_extractor = real_front_end
        return self._checked_stack(out.hidden_states, lengths), lengths

    def _checked_stack(self, hidden_states, lengths):
        if len(hidden_states) != self.num_layers + 1:
            raise EncoderError(f"{self.name}: expected {self.num_layers + 1} hidden states, got "
                               f"{len(hidden_states)}")
        return stack_layers(hidden_states, lengths)

    def _min_samples(self) -> int:
        cfg = self.model.config
        n = 1
        for k, s in reversed(list(zip(cfg.conv_kernel, cfg.conv_stride))):
            n = (n - 1) * s + k
        return n
