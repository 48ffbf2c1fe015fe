"""Hashing of weight files: memoised sha256, part concatenation, folder weight hashes.

Split out of ``probekit.encoders.weights``, which re-exports these names.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Sequence

from probekit.errors import WeightsError

_CHUNK = 1 << 20

# Re-hashing a 75-150 MB file on every resolve costs ~0.3 s; within one process a file
# whose size and mtime have not changed is not hashed again.
_HASH_MEMO: dict[tuple, str] = {}


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (memoised on path, inode, size, times)."""
    key = _memo_key(path)
    if key not in _HASH_MEMO:
        _sha256_of(Path(path))
    return _HASH_MEMO[key]


def _memo_key(path: str | Path) -> tuple:
    st = Path(path).stat()
    return (str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _sha256_of(*paths: Path):
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    if len(paths) == 1:
        _HASH_MEMO[_memo_key(paths[0])] = digest.hexdigest()
    return digest


def concatenate_parts(parts: Sequence[str | Path], dest: str | Path) -> str:
    """Concatenate ``parts`` into ``dest`` by streaming, atomically; return its sha256.

    Parameters
    ----------
    parts : sequence of path
        Pieces in order (e.g. ``model.bin.part1``, ``model.bin.part2``).
    dest : path
        Output file; written to a temporary name in the same folder, then renamed.

    Returns
    -------
    str
        Hex sha256 of the written file, computed while writing.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while chunk := fh.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def _weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise WeightsError(f"{folder}: no *.safetensors weight file to fingerprint")
    return files


def _hash_weights(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in _weight_files(folder):
        digest.update(path.name.encode() + b"\0")
        digest.update(_sha256_of(path).digest())
    return digest.hexdigest()
