"""Pooling an utterance's frame-level hidden states into utterance and phone vectors.

Pure functions over NumPy arrays; times are seconds, frames are encoder output frames.

The frame rule
--------------
Frame ``k`` of an encoder with frame shift ``s`` covers the half-open span ``[k*s, (k+1)*s)``.

* **utterance**: the mean of the ``n`` valid frames.
* **phone** ``[start, end)``: the mean of every frame that overlaps it, i.e. frames
  ``floor(start/s) .. ceil(end/s) - 1``. A phone with no overlapping frame (zero length, e.g.
  an espeak phone with ``start == end``) takes its *nearest frame by centre*: the frame whose
  centre ``(k + 0.5) * s`` is closest to ``(start + end) / 2`` (a tie goes to the later frame).
* **past the end**: encoders drop the last partial window, so the frames can stop up to one
  frame before the audio does. Overlapping frames at index ``>= n`` are clipped away; a phone
  left with none takes the last frame. A phone that ends more than one frame shift after the
  last frame (``end > (n + 1) * s``) is a misaligned transcript: :class:`StoreError` names the
  utterance and the phone.

Boundaries are compared with a tolerance of ``1e-6`` frames so that ``0.06 / 0.02`` counts as
frame 3, not frame 2.9999999999999996.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from probekit.errors import StoreError

__all__ = ["utterance_mean", "phone_frame_ranges", "phone_means", "EPS_FRAMES"]

#: Slack on frame boundaries, in frames (guards float division like 0.06 / 0.02).
EPS_FRAMES = 1e-6


def utterance_mean(states: np.ndarray, n_frames: int) -> np.ndarray:
    """Mean over the valid frames.

    Parameters
    ----------
    states : array, shape (..., frames, hidden)
        e.g. (layers, frames, hidden); frames past ``n_frames`` (padding) are ignored.
    n_frames : int
        Valid frames, ``>= 1``.

    Returns
    -------
    array, shape (..., hidden), float32
    """
    if n_frames < 1:
        raise StoreError(f"cannot pool an utterance with {n_frames} frames")
    return states[..., :n_frames, :].astype(np.float64).mean(axis=-2).astype(np.float32)


def phone_frame_ranges(starts: Sequence[float], ends: Sequence[float], frame_shift: float,
                       n_frames: int, *, utt_id: str = "?",
                       symbols: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frame range ``[first, stop)`` pooled for each phone (see the module docstring).

    Parameters
    ----------
    starts, ends : sequence of float, length n_phones
        Seconds from the start of the utterance.
    frame_shift : float
        Seconds between frames.
    n_frames : int
        Valid frames of the utterance.
    utt_id, symbols
        Only used to name the offending utterance and phone in errors.

    Returns
    -------
    first, stop : int64 arrays, shape (n_phones,)
        ``first < stop`` always; frames ``first .. stop - 1`` are averaged.
    """
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    limit = (n_frames + 1) * frame_shift
    bad = np.flatnonzero(ends > limit + EPS_FRAMES * frame_shift)
    if bad.size:
        i = int(bad[0])
        sym = symbols[i] if symbols is not None else f"#{i}"
        raise StoreError(
            f"utterance {utt_id}: phone {sym!r} ends at {ends[i]:.3f} s, more than one frame "
            f"after the last encoder frame ({n_frames} frames of {frame_shift} s = "
            f"{n_frames * frame_shift:.3f} s); is the alignment for this audio?")
    first = np.floor(starts / frame_shift + EPS_FRAMES).astype(np.int64)
    stop = np.ceil(ends / frame_shift - EPS_FRAMES).astype(np.int64)
    first = np.clip(first, 0, n_frames)
    stop = np.clip(stop, 0, n_frames)
    empty = stop <= first
    if empty.any():
        # Nearest frame by centre: floor(centre / s) is the frame containing the centre, whose
        # own centre is within s/2 of it; at an exact boundary this picks the later frame.
        centre = (starts[empty] + ends[empty]) / 2
        k = np.clip(np.floor(centre / frame_shift + EPS_FRAMES).astype(np.int64), 0, n_frames - 1)
        first[empty], stop[empty] = k, k + 1
    return first, stop


def phone_means(states: np.ndarray, first: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Mean of frames ``first[j] .. stop[j] - 1`` for every phone ``j``.

    Parameters
    ----------
    states : array, shape (..., frames, hidden)
    first, stop : int arrays, shape (n_phones,)
        From :func:`phone_frame_ranges`.

    Returns
    -------
    array, shape (n_phones, ..., hidden), float32
        Phones first, so the rows of every layer line up with one metadata table.
    """
    # One float64 cumulative sum serves every phone: sum(a..b-1) = cs[b] - cs[a].
    x = np.moveaxis(states.astype(np.float64), -2, 0)  # (frames, ..., hidden)
    cs = np.concatenate([np.zeros_like(x[:1]), np.cumsum(x, axis=0)], axis=0)
    counts = (stop - first).astype(np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
    return ((cs[stop] - cs[first]) / counts).astype(np.float32)
