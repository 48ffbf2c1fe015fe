"""Where an utterance's samples come from: :class:`AudioSource` (a file, a slice of one, or an
in-memory array) and decoding it to mono float32."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probekit.errors import CorpusError

__all__ = ["AudioSource"]


@dataclass(frozen=True, eq=False)
class AudioSource:
    """Where an utterance's samples come from.

    Exactly one of ``path`` and ``array`` is set. A path may point into a longer recording
    with ``offset`` and ``duration`` (seconds). Arrays are float32 mono.

    Parameters
    ----------
    path : str or None
        Audio file (any format ``soundfile`` reads). Relative paths are resolved against the
        corpus root when loading.
    array : numpy.ndarray or None
        Samples, shape ``(n_samples,)``.
    sample_rate : int or None
        Hz. Required for arrays; read from the file header for paths when ``None``.
    offset, duration : float
        Slice of the file to use, in seconds (``duration=None``: to the end).
    """

    path: str | None = None
    array: np.ndarray | None = None
    sample_rate: int | None = None
    offset: float = 0.0
    duration: float | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.array is None):
            raise CorpusError("an AudioSource needs exactly one of `path` and `array`")
        if self.array is not None:
            if self.sample_rate is None:
                raise CorpusError("an in-memory AudioSource needs its sample_rate")
            arr = np.asarray(self.array)
            arr.setflags(write=False)
            object.__setattr__(self, "array", arr)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AudioSource):
            return NotImplemented
        same_array = (self.array is None and other.array is None) or (
            self.array is not None
            and other.array is not None
            and self.array.shape == other.array.shape
            and bool(np.array_equal(self.array, other.array))
        )
        return (
            self.path == other.path
            and same_array
            and self.sample_rate == other.sample_rate
            and self.offset == other.offset
            and self.duration == other.duration
        )

    __hash__ = None  # type: ignore[assignment]

    def resolve(self, root: str | os.PathLike | None) -> Path:
        """Absolute path of the file (``CorpusError`` for in-memory audio)."""
        if self.path is None:
            raise CorpusError("in-memory audio has no path")
        p = Path(self.path)
        if not p.is_absolute() and root is not None:
            p = Path(root) / p
        return p

    def load(self, root: str | os.PathLike | None = None) -> tuple[np.ndarray, int]:
        """Decode to float32 mono.

        Returns
        -------
        samples : numpy.ndarray, shape (n_samples,), float32
        sample_rate : int, Hz
        """
        if self.array is not None:
            samples, sr = np.asarray(self.array), int(self.sample_rate)  # type: ignore[arg-type]
            start = int(round(self.offset * sr))
            stop = None if self.duration is None else start + int(round(self.duration * sr))
            samples = samples[start:stop]
        else:
            import soundfile as sf

            path = self.resolve(root)
            if not path.exists():
                raise CorpusError(f"audio file not found: {path}")
            try:
                info = sf.info(str(path))
                sr = info.samplerate
                start = int(round(self.offset * sr))
                frames = -1 if self.duration is None else int(round(self.duration * sr))
                samples, sr = sf.read(str(path), start=start, frames=frames, dtype="float32",
                                      always_2d=True)
            except CorpusError:
                raise
            except Exception as exc:  # soundfile raises several types for corrupt files
                raise CorpusError(f"cannot decode audio file {path}: {exc}") from exc
            samples = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
        return np.ascontiguousarray(samples, dtype=np.float32), int(sr)
