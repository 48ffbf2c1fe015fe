"""Turning user waveforms into what encoders expect: float32 mono at the model's rate.

The rules are documented here once and applied to every encoder:

* 1-D arrays are mono. A 2-D array is multichannel audio; its shorter axis is the channel
  axis (so both ``(samples, channels)`` from soundfile and ``(channels, samples)`` from
  torchaudio work) and must have at most 8 channels; channels are averaged.
* Integer PCM is scaled to [-1, 1): int16 by 1/2**15, int32 by 1/2**31. Other integer types
  and complex input are errors.
* Any sample rate is resampled to the model's with a polyphase filter
  (:func:`scipy.signal.resample_poly`), which is deterministic.
* Empty input and non-finite samples (NaN, inf) are errors that name the utterance.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import gcd

import numpy as np
import torch

from probekit.errors import EncoderError

__all__ = ["prepare_waveforms", "to_mono_float32", "resample"]

_MAX_CHANNELS = 8


def to_mono_float32(wave, name: str = "input") -> np.ndarray:
    """Convert one waveform (numpy array or torch tensor) to float32 mono, shape (n_samples,).

    Raises
    ------
    EncoderError
        For empty, non-finite, complex, >2-D or unsupported-integer input; the message
        names ``name``.
    """
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().cpu().numpy()
    arr = np.asarray(wave)
    if np.iscomplexobj(arr):
        raise EncoderError(f"{name}: complex samples are not audio")
    if arr.dtype == np.int16:
        arr = arr.astype(np.float32) / 2**15
    elif arr.dtype == np.int32:
        arr = arr.astype(np.float32) / 2**31
    elif np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        raise EncoderError(f"{name}: unsupported integer sample type {arr.dtype} (use int16, "
                           "int32 or float)")
    elif not np.issubdtype(arr.dtype, np.floating):
        raise EncoderError(f"{name}: unsupported sample type {arr.dtype}")
    if arr.ndim == 2:
        ch_axis = int(np.argmin(arr.shape))
        if arr.shape[ch_axis] > _MAX_CHANNELS or arr.shape[ch_axis] == arr.shape[1 - ch_axis]:
            raise EncoderError(
                f"{name}: cannot tell channels from samples in a 2-D array of shape {arr.shape}"
            )
        arr = arr.mean(axis=ch_axis)
    elif arr.ndim != 1:
        raise EncoderError(f"{name}: expected 1-D (mono) or 2-D (multichannel) audio, got shape "
                           f"{arr.shape}")
    if arr.size == 0:
        raise EncoderError(f"{name}: empty waveform")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise EncoderError(f"{name}: non-finite sample (NaN or inf) at index {bad}")
    return arr


def resample(wave: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample float32 mono audio from ``orig_rate`` to ``target_rate`` (Hz)."""
    if orig_rate == target_rate:
        return wave
    if orig_rate <= 0:
        raise EncoderError(f"sample rate must be positive, got {orig_rate}")
    from scipy.signal import resample_poly

    g = gcd(int(orig_rate), int(target_rate))
    out = resample_poly(wave, int(target_rate) // g, int(orig_rate) // g)
    return np.ascontiguousarray(out, dtype=np.float32)


def prepare_waveforms(waveforms, target_rate: int, sample_rate: int | Sequence[int] | None,
                      lengths=None, ids: Sequence[str] | None = None) -> list[np.ndarray]:
    """Normalise a batch to a list of float32 mono arrays at ``target_rate``.

    Parameters
    ----------
    waveforms : sequence of arrays/tensors, or a padded 2-D array/tensor (batch, samples)
    target_rate : int
        The model's sample rate in Hz.
    sample_rate : int, sequence of int, or None
        Rate(s) of the input in Hz; ``None`` means the input is already at ``target_rate``.
    lengths : sequence of int, optional
        Valid samples per row of a padded batch (required to unpad; ignored for lists).
    ids : sequence of str, optional
        Utterance ids, used to name the bad item in errors.
    """
    if isinstance(waveforms, (np.ndarray, torch.Tensor)) and waveforms.ndim == 2:
        n = waveforms.shape[0]
        if lengths is None:
            lengths = [waveforms.shape[1]] * n
        if len(lengths) != n:
            raise EncoderError(f"got {len(lengths)} lengths for a batch of {n} waveforms")
        waves = [waveforms[i, : int(lengths[i])] for i in range(n)]
    elif isinstance(waveforms, (np.ndarray, torch.Tensor)) and waveforms.ndim == 1:
        waves = [waveforms]
    else:
        waves = list(waveforms)
    if not waves:
        raise EncoderError("empty batch: no waveforms given")
    names = list(ids) if ids is not None else [f"waveform {i}" for i in range(len(waves))]
    if len(names) != len(waves):
        raise EncoderError(f"got {len(names)} ids for {len(waves)} waveforms")
    if sample_rate is None:
        rates = [target_rate] * len(waves)
    elif isinstance(sample_rate, (int, np.integer)):
        rates = [int(sample_rate)] * len(waves)
    else:
        rates = [int(r) for r in sample_rate]
        if len(rates) != len(waves):
            raise EncoderError(f"got {len(rates)} sample rates for {len(waves)} waveforms")
    return [resample(to_mono_float32(w, name), r, target_rate)
            for w, r, name in zip(waves, rates, names)]
