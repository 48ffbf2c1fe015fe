"""The one interface every speech encoder in probekit follows.

An :class:`Encoder` turns a batch of waveforms into the hidden states of *every* layer:
layer 0 (``"conv"``) is the output of the convolutional front end as it enters the first
transformer block, then one entry per block (``"block1"`` ... ``"blockN"``). All geometry
(``num_layers``, ``hidden_size``, ``frame_shift``, ``sample_rate``) is read from the wrapped
model, never typed in twice.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from probekit.device import resolve_device
from probekit.encoders.audio import prepare_waveforms
from probekit.errors import EncoderError

__all__ = ["Encoder", "EncoderOutput", "resolve_device", "layer_names_for"]


def layer_names_for(num_blocks: int) -> list[str]:
    """``["conv", "block1", ..., "block<num_blocks>"]``."""
    return ["conv"] + [f"block{i}" for i in range(1, num_blocks + 1)]


@dataclass(frozen=True)
class EncoderOutput:
    """Hidden states of every layer for one batch.

    Attributes
    ----------
    hidden_states : torch.Tensor, shape (num_layers + 1, batch, frames, hidden_size)
        float32 on the CPU. Frames past an utterance's valid length are zero.
    lengths : torch.LongTensor, shape (batch,)
        Valid frames per utterance.
    layer_names : list of str
        ``["conv", "block1", ...]``, one per entry of the first axis.
    frame_shift : float
        Seconds between consecutive frames.
    """

    hidden_states: torch.Tensor
    lengths: torch.Tensor
    layer_names: list[str]
    frame_shift: float

    def layer(self, layer: int | str) -> torch.Tensor:
        """Hidden states of one layer, shape (batch, frames, hidden_size)."""
        return self.hidden_states[self.layer_index(layer)]

    def layer_index(self, layer: int | str) -> int:
        if isinstance(layer, str):
            try:
                return self.layer_names.index(layer)
            except ValueError:
                raise EncoderError(f"unknown layer {layer!r}; layers: {self.layer_names}") from None
        if not -len(self.layer_names) <= layer < len(self.layer_names):
            raise EncoderError(f"layer index {layer} out of range for {len(self.layer_names)} layers")
        return int(layer)

    def utterance(self, i: int) -> torch.Tensor:
        """All layers of utterance ``i`` without padding, shape (num_layers + 1, frames_i, hidden)."""
        return self.hidden_states[:, i, : int(self.lengths[i])]


class Encoder(ABC):
    """Base class: wraps a model and returns every layer's hidden states with valid lengths.

    Subclasses set ``self.model`` (an ``nn.Module`` in ``eval()`` mode) and implement
    :meth:`_forward`; everything users see (input checks, resampling, geometry) lives here.
    """

    #: Registry name of the family (set by :func:`probekit.encoders.registry.register_encoder`).
    family: str = ""

    #: Options :meth:`from_name` takes besides ``device`` and ``dtype``:
    #: ``{name: probekit.encoders.registry.EncoderOption}``, checked by ``load_encoder``.
    options: dict = {}

    #: Utterances per encoder call when the caller leaves it to the encoder
    #: (``extract(batch_size=None)``, ``probekit extract`` without ``--batch-size``), by device
    #: type; a type not listed gets 1. By default one utterance per call on a CPU (a batch
    #: pays for padding and the mask, and need not be faster there) and 8 on a GPU (a batch
    #: fills the device). Families override it from ``benchmarks/extract_ssl.py`` and
    #: ``benchmarks/extract.py`` (SSL models: 16 on a GPU); see docs/encoders.md.
    batch_sizes: dict = {"cpu": 1, "cuda": 8}

    # -- the family protocol (read by probekit.encoders.registry) ----------------------------
    @classmethod
    def known_names(cls) -> list[str]:
        """Model names this family knows without a hub id (``probekit encoders list``);
        default: none."""
        return []

    @classmethod
    def handles(cls, name: str) -> bool:
        """Whether ``name`` is this family's before any ``config.json`` is read; default: it
        is one of :meth:`known_names`."""
        return name in cls.known_names()

    @classmethod
    def from_name(cls, name: str, *, device="auto", dtype=None, **options) -> "Encoder":
        """Load ``name`` (a known name, hub id or local folder) with the family's checked
        :attr:`options`. A family that does not override it cannot load by name."""
        raise EncoderError(f"encoder family {cls.family or cls.__name__!r} does not load "
                           f"models by name (asked for {name!r})")

    def __init__(self, name: str, model: torch.nn.Module, device: str | torch.device = "auto",
                 dtype: torch.dtype | str | None = None) -> None:
        self.name = name
        self.device = resolve_device(device)
        dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if dtype in (torch.float16, torch.bfloat16) and self.device.type != "cuda":
            raise EncoderError(f"half precision ({dtype}) is only supported on a CUDA device")
        self.dtype = dtype or torch.float32
        model.eval()
        # Layerdrop is disabled by eval() in transformers, but set it to 0 too so that no
        # code path that checks the config alone can skip a layer (s3prl issues #117, #350).
        cfg = getattr(model, "config", None)
        if cfg is not None and getattr(cfg, "layerdrop", 0.0):
            cfg.layerdrop = 0.0
        self.model = model.to(device=self.device, dtype=self.dtype)

    # -- geometry, derived from the model ---------------------------------------------------
    @property
    def num_layers(self) -> int:
        """Number of transformer blocks (layers returned: ``num_layers + 1``); read from a
        transformers config's ``num_hidden_layers`` unless a family overrides it."""
        return int(self.model.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        """Width of every returned layer (a transformers config's ``hidden_size``)."""
        return int(self.model.config.hidden_size)

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Input sample rate in Hz."""

    @property
    @abstractmethod
    def frame_shift(self) -> float:
        """Seconds between output frames."""

    @property
    def layer_names(self) -> list[str]:
        return layer_names_for(self.num_layers)

    @abstractmethod
    def num_frames(self, num_samples: int) -> int:
        """Valid output frames for an input of ``num_samples`` samples at :attr:`sample_rate`."""

    @property
    def default_batch_size(self) -> int:
        """Utterances per encoder call for this family on this encoder's device
        (:attr:`batch_sizes`); batching never changes an utterance's states, only the speed."""
        return int(self.batch_sizes.get(self.device.type, 1))

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the encoder's class and parameters: the same weights give the same
        fingerprint wherever they were loaded from."""
        h = hashlib.sha256(type(self).__name__.encode())
        with torch.no_grad():
            for key, tensor in sorted(self.model.state_dict().items()):
                h.update(key.encode())
                h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    # -- encoding ---------------------------------------------------------------------------
    def encode(self, waveforms, sample_rate: int | Sequence[int] | None = None, lengths=None,
               ids: Sequence[str] | None = None) -> EncoderOutput:
        """Hidden states of every layer for a batch of waveforms.

        Parameters
        ----------
        waveforms : list of 1-D/2-D arrays or tensors, or a padded (batch, samples) array
            Mono or multichannel audio, float or int16/int32 PCM (see
            :mod:`probekit.encoders.audio`). A top-level 2-D array is always a padded batch.
        sample_rate : int or list of int, optional
            Hz; resampled to :attr:`sample_rate` when different. ``None``: already at it.
        lengths : list of int, optional
            Valid samples per row when ``waveforms`` is a padded batch.
        ids : list of str, optional
            Utterance ids; errors name the utterance.

        Returns
        -------
        EncoderOutput
            ``hidden_states`` (num_layers + 1, batch, max_frames, hidden_size), float32, CPU.
            Batching never changes an utterance's states beyond float tolerance.
        """
        waves = prepare_waveforms(waveforms, self.sample_rate, sample_rate, lengths, ids)
        names = list(ids) if ids is not None else [f"waveform {i}" for i in range(len(waves))]
        with torch.inference_mode():
            states, frame_lengths = self._forward(waves, names)
        states = states.to("cpu", torch.float32)
        return EncoderOutput(states, frame_lengths.cpu(), self.layer_names, self.frame_shift)

    @abstractmethod
    def _forward(self, waves: list, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode float32 mono numpy waveforms at :attr:`sample_rate`.

        Returns hidden states (num_layers + 1, batch, frames, hidden) with zeros past each
        valid length, and the valid lengths (batch,).
        """

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, layers={self.num_layers}, "
                f"hidden_size={self.hidden_size}, frame_shift={self.frame_shift}, "
                f"device={self.device})")


def stack_layers(hidden_states: Sequence[torch.Tensor], lengths: torch.Tensor) -> torch.Tensor:
    """Stack per-layer (batch, frames, hidden) tensors trimmed to the longest valid length,
    zeroing frames past each utterance's length."""
    t_max = int(lengths.max())
    out = torch.stack([h[:, :t_max] for h in hidden_states])
    if bool((lengths == t_max).all()):
        return out  # nothing to zero (e.g. one utterance): skip a copy of every layer
    mask = torch.arange(t_max, device=out.device)[None, :] < lengths.to(out.device)[:, None]
    return out * mask[None, :, :, None].to(out.dtype)
