"""Encoder families registered by name, and :func:`load_encoder` that picks the right one.

A family is a class derived from :class:`~probekit.encoders.base.Encoder` decorated with
``@register_encoder("name", model_types=(...))``. ``model_types`` are the ``model_type``
values of ``transformers`` configs the family handles, so any hub id or local folder is
routed by its own ``config.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from probekit.errors import EncoderError

__all__ = ["register_encoder", "available_encoders", "load_encoder", "family_for_model_type"]

_FAMILIES: dict[str, type] = {}
_MODEL_TYPES: dict[str, str] = {}


def register_encoder(name: str, model_types: tuple[str, ...] = ()):
    """Class decorator registering an encoder family under ``name``."""

    def deco(cls):
        if name in _FAMILIES and _FAMILIES[name] is not cls:
            raise EncoderError(f"encoder family {name!r} is already registered")
        cls.family = name
        _FAMILIES[name] = cls
        for mt in model_types:
            _MODEL_TYPES[mt] = name
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
    return {name: list(getattr(cls, "known_names", lambda: [])()) for name, cls in
            sorted(_FAMILIES.items())}


def family_for_model_type(model_type: str) -> str:
    _ensure_builtin_families()
    try:
        return _MODEL_TYPES[model_type]
    except KeyError:
        raise EncoderError(
            f"no encoder family handles model_type {model_type!r}; supported: "
            f"{sorted(_MODEL_TYPES)}"
        ) from None


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


def _handles(cls, name: str) -> bool:
    if hasattr(cls, "handles"):
        return bool(cls.handles(name))
    return name in getattr(cls, "known_names", lambda: [])()


def load_encoder(name: str, *, family: str | None = None, device="auto", dtype=None, **kwargs):
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
    **kwargs
        Passed to the family's ``from_name``.
    """
    _ensure_builtin_families()
    if family is None:
        for fam, cls in _FAMILIES.items():
            if _handles(cls, name):
                family = fam
                break
    if family is None:
        family = family_for_model_type(_read_model_type(name))
    if family not in _FAMILIES:
        raise EncoderError(f"unknown encoder family {family!r}; available: {sorted(_FAMILIES)}")
    return _FAMILIES[family].from_name(name, device=device, dtype=dtype, **kwargs)
