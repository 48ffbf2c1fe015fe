"""Encoders: one interface over Whisper and self-supervised speech models.

>>> from probekit.encoders import load_encoder
>>> enc = load_encoder("whisper-tiny.en")          # doctest: +SKIP
>>> out = enc.encode([wave], sample_rate=16000)    # doctest: +SKIP
>>> out.hidden_states.shape                        # (layers + 1, batch, frames, hidden)  # doctest: +SKIP
"""

from probekit.encoders.base import Encoder, EncoderOutput, resolve_device
from probekit.encoders.registry import available_encoders, load_encoder, register_encoder

__all__ = ["Encoder", "EncoderOutput", "available_encoders", "load_encoder", "register_encoder",
           "resolve_device"]
