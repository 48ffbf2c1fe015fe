"""Encoder families registered by name, and :func:`load_encoder` that picks the right one.

A family is a class derived from :class:`~probekit.encoders.base.Encoder` decorated with
``@register_encoder("name", model_types=(...))``. ``model_types`` are the ``model_type``
values of ``transformers`` configs the family handles, so any hub id or local folder is
routed by its own ``config.json``.

Each family declares the options its ``from_name`` takes as a class attribute
``options = {"name": EncoderOption(...)}``; :func:`load_encoder` checks every option against
the chosen family before loading, so an option a family does not take is a one-line
:class:`~probekit.errors.EncoderError` naming the family and the option, and nothing unknown
reaches ``from_pretrained``. ``device`` and ``dtype`` are taken by every family.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from probekit.errors import EncoderError
from probekit.registry import Registry

__all__ = ["register_encoder", "available_encoders", "load_encoder", "family_for_model_type",
           "EncoderOption", "family_options", "resolve_family", "check_options",
           "COMMON_OPTIONS"]

#: Keywords of :func:`load_encoder` every family takes (not part of a family's ``options``).
COMMON_OPTIONS = ("device", "dtype")


@dataclass(frozen=True)
class EncoderOption:
    """One option an encoder family takes: accepted types, allowed values and a help line.

    ``many=True``: a list of such values (a single value is taken as a list of one); the
    checked value is then a tuple. ``choices`` limits the value (or each item) to a set.
    """

    types: tuple[type, ...]
    help: str
    choices: tuple | None = None
    many: bool = False

    def describe(self) -> str:
        kind = (" | ".join(repr(c) for c in self.choices) if self.choices
                else " | ".join(t.__name__ for t in self.types))
        return f"list of {kind}" if self.many else kind

    def check(self, family: str, key: str, value):
        """``value`` normalised (``os.PathLike`` -> str, list -> tuple), or an EncoderError."""
        items = value
        if self.many:
            items = [value] if isinstance(value, (str, os.PathLike)) else value
            if not isinstance(items, (list, tuple)):
                items = None
        checked = []
        for v in (items if self.many and items is not None else [items]):
            if isinstance(v, os.PathLike) and str in self.types:
                v = os.fspath(v)
            ok = (v is not None and isinstance(v, self.types)
                  and not (isinstance(v, bool) and bool not in self.types)
                  and (self.choices is None or v in self.choices))
            if not ok:
                raise EncoderError(f"encoder family {family!r}: option {key!r} must be "
                                   f"{self.describe()}, got {value!r}")
            checked.append(v)
        return tuple(checked) if self.many else checked[0]

#: Family name -> Encoder subclass; model_type -> the family class that handles it.
_FAMILIES: Registry[type] = Registry("encoder family")
_MODEL_TYPES: Registry[type] = Registry("model_type")


def register_encoder(name: str, model_types: tuple[str, ...] = ()):
    """Class decorator registering an :class:`~probekit.encoders.base.Encoder` subclass as the
    family ``name``, handling the transformers ``model_types``. A taken name or model type
    (held by another class) raises :class:`~probekit.registry.RegistryError` naming both."""

    def deco(cls):
        from probekit.encoders.base import Encoder

        if not (isinstance(cls, type) and issubclass(cls, Encoder)):
            raise EncoderError(f"encoder family {name!r}: {cls!r} is not a subclass of Encoder")
        for mt in model_types:   # check every name before registering any
            if mt in _MODEL_TYPES and _MODEL_TYPES[mt] is not cls:
                _MODEL_TYPES.add(mt, cls)   # raises, naming both
        _FAMILIES.add(name, cls)
        cls.family = name
        for mt in model_types:
            _MODEL_TYPES.add(mt, cls)
        return cls

    return deco


def _ensure_builtin_families() -> None:
    # Imported lazily so that `import probekit` stays light; importing registers them.
    from probekit.encoders import hf_ssl, w2v_bert, whisper  # noqa: F401


def available_encoders() -> dict[str, list[str]]:
    """Registered families and the model names each knows without a hub id.

    Returns
    -------
    dict
        ``{family: [known names]}``, e.g. ``{"whisper": ["whisper-tiny.en", ...], ...}``.
    """
    _ensure_builtin_families()
    return {name: list(cls.known_names()) for name, cls in _FAMILIES.items()}


def family_options(family: str) -> dict[str, EncoderOption]:
    """The options ``family`` takes besides ``device`` and ``dtype`` (``{name: EncoderOption}``)."""
    return dict(_family(family).options)


def family_for_model_type(model_type: str) -> str:
    _ensure_builtin_families()
    if model_type not in _MODEL_TYPES:
        raise EncoderError(f"no encoder family handles model_type {model_type!r}; supported: "
                           f"{_MODEL_TYPES.names()}")
    return _MODEL_TYPES[model_type].family


def _read_model_type(name: str) -> str | None:
    """model_type from a local folder's config.json, else from the hub / HF cache."""
    path = Path(name)
    if path.is_dir():
        cfg = path / "config.json"
        if not cfg.exists():
            raise EncoderError(f"{path} has no config.json: not a transformers model folder")
        try:
            return json.loads(cfg.read_text())["model_type"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise EncoderError(f"{cfg}: cannot read model_type ({exc})") from None
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(name).model_type
    except Exception as exc:  # offline, unknown id, ...
        raise EncoderError(
            f"cannot find encoder {name!r}: not a known name, not a local folder, and its config "
            f"could not be fetched ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None


def _family(family: str) -> type:
    """The Encoder class registered as ``family`` (an unknown one: EncoderError)."""
    _ensure_builtin_families()
    if family not in _FAMILIES:
        raise EncoderError(f"unknown encoder family {family!r}; available: {_FAMILIES.names()}")
    return _FAMILIES[family]


def resolve_family(name: str, family: str | None = None) -> str:
    """The family that loads ``name``: ``family`` when given (checked), else the first whose
    known names match, else the one handling the ``model_type`` of its ``config.json``."""
    _ensure_builtin_families()
    if family is None:
        family = next((fam for fam, cls in _FAMILIES.items() if cls.handles(name)), None)
    if family is None:
        family = family_for_model_type(_read_model_type(name))
    _family(family)
    return family


def check_options(family: str, options: dict, *, name: str | None = None) -> dict:
    """``options`` checked against what ``family`` takes, values normalised.

    An option the family does not take, or a value of the wrong type, is a one-line
    :class:`EncoderError` naming the family (and the model ``name`` when given).
    ``device`` and ``dtype`` pass through unchanged (every family takes them)."""
    spec = family_options(family)
    out = {}
    for key, value in options.items():
        if key in COMMON_OPTIONS:  # load_encoder's own arguments, checked by the Encoder
            out[key] = value
            continue
        if key not in spec:
            takes = ", ".join(sorted(spec)) or "no options"
            of = f" (loading {name!r})" if name else ""
            raise EncoderError(f"encoder family {family!r}{of} does not take option {key!r} "
                               f"(it takes: {takes}; every family also takes device, dtype)")
        out[key] = spec[key].check(family, key, value)
    return out


def load_encoder(name: str, *, family: str | None = None, device="auto", dtype=None, **options):
    """Build an encoder from a known name, a hub id or a local folder.

    Parameters
    ----------
    name : str
        ``"whisper-tiny.en"``, ``"whisper-base"``, ``"facebook/wav2vec2-base"``,
        ``"/path/to/saved/model"``, ...
    family : str, optional
        Force a family (see :func:`available_encoders`); otherwise known names are matched
        first, then the model's ``config.json`` decides.
    device : ``"auto"``, ``"cpu"``, ``"cuda"`` or torch.device
    dtype : torch dtype or its name, optional
        ``float16``/``bfloat16`` only on CUDA.
    **options
        The family's own options (:func:`family_options`; ``probekit encoders list`` prints
        them), e.g. ``sources=`` and ``long_form=`` for Whisper, ``revision=`` for the
        ``hf-ssl`` and ``w2v-bert`` families. An option the family does not take is an
        :class:`~probekit.errors.EncoderError` naming the family and the option.
    """
    family = resolve_family(name, family)
    checked = check_options(family, options, name=name)
    return _family(family).from_name(name, device=device, dtype=dtype, **checked)
