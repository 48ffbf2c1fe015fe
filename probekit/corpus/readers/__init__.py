"""Readers that turn corpora on disk into a :class:`~probekit.corpus.Corpus`.

One registry names every reader; :func:`read_corpus` picks one by name or recognises the
layout of a folder. Adding a reader: write a module with a function
``read_<kind>(path, **options) -> Corpus`` decorated with ``@register_reader("<kind>", detect)``
and import it at the bottom of this file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from probekit.corpus.model import Corpus
from probekit.errors import CorpusError
from probekit.registry import Registry

__all__ = ["read_corpus", "register_reader", "available_readers", "detect_kind",
           "reader_options"]


@dataclass(frozen=True, repr=False)
class _Reader:
    name: str
    read: Callable[..., Corpus]
    detect: Callable[[Path], bool]
    summary: str

    def __repr__(self) -> str:
        return f"{self.read.__module__}.{self.read.__qualname__}"


_READERS: Registry[_Reader] = Registry("corpus reader")


def register_reader(name: str, detect: Callable[[Path], bool]):
    """Decorator registering ``read(path, **options) -> Corpus`` under ``name``.

    ``detect(path)`` says, cheaply, whether ``path`` looks like this reader's layout. The
    duplicate rule is :class:`~probekit.registry.Registry`'s: the same ``read`` and ``detect``
    again is allowed (a module imported twice); anything else under a taken name raises
    :class:`~probekit.registry.RegistryError` naming both.
    """

    def deco(fn: Callable[..., Corpus]) -> Callable[..., Corpus]:
        held = _READERS.get(name) if name in _READERS else None
        if held is not None and held.read is fn and held.detect is detect:
            return fn   # the same reader again
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _READERS.add(name, _Reader(name, fn, detect, summary))
        return fn

    return deco


def available_readers() -> dict[str, str]:
    """Reader names with a one-line description each."""
    return {name: r.summary for name, r in _READERS.items()}


def _reader(kind: str) -> _Reader:
    if kind not in _READERS:
        raise CorpusError(f"unknown corpus kind {kind!r}; available: {_READERS.names()}")
    return _READERS[kind]


def detect_kind(path: str | os.PathLike) -> str:
    """Name of the reader whose layout ``path`` matches (``CorpusError`` if none or several)."""
    p = Path(path)
    if not p.exists():
        raise CorpusError(f"corpus path not found: {p}")
    hits = [name for name, r in _READERS.items() if r.detect(p)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise CorpusError(
            f"cannot tell which corpus layout {p} is; pass kind= one of {_READERS.names()}"
        )
    raise CorpusError(f"{p} matches several layouts {sorted(hits)}; pass kind= to choose")


def read_corpus(path: str | os.PathLike, kind: str | None = None, **options) -> Corpus:
    """Read a corpus from disk.

    Parameters
    ----------
    path : path
        A manifest file or a corpus folder.
    kind : str or None
        Reader name (see :func:`available_readers`); ``None`` recognises the layout.
    **options
        Passed to the reader (e.g. ``mic="mic1"`` for VCTK).

    Returns
    -------
    Corpus
    """
    kind = detect_kind(path) if kind is None else kind
    _reader(kind)
    from probekit.schema import read_fields

    options = read_fields(options, reader_options(kind), str(path), CorpusError,
                          what=f"options of the {kind} reader")
    corpus = _reader(kind).read(path, **options)
    if len(corpus) == 0:
        raise CorpusError(f"{path}: no utterances (read as {kind})")
    return corpus


#: A reader option's schema kind (:mod:`probekit.schema`) from its annotation: first match.
_KIND_OF_ANNOTATION = (("Mapping", "table"), ("Sequence", "list[str]"), ("PathLike", "path"),
                       ("bool", "bool"),
                       ("int", "int"), ("float", "number"), ("str", "str"))


def reader_options(kind: str) -> dict[str, str]:
    """The options reader ``kind`` takes (every parameter after ``path``) with their
    :mod:`probekit.schema` kinds, read from its signature: the reader's own typed schema, so
    options are checked in one place."""
    import inspect

    out = {}
    for p in list(inspect.signature(_reader(kind).read).parameters.values())[1:]:
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            ann = str(p.annotation)
            out[p.name] = next(k for token, k in _KIND_OF_ANNOTATION if token in ann)
    return out


# Imported for their registration side effect; order does not matter.
from probekit.corpus.readers import hf, l2arctic, lhotse, manifest, mfa, timit, vctk  # noqa: E402,F401
