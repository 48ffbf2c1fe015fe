"""Read CTranslate2 ``model.bin`` files with numpy only (no pickle, no ctranslate2 import).

Split out of ``probekit.encoders.ctranslate2_convert``, which re-exports these names.

``model.bin`` layout (binary version 6, all integers little endian)::

    u32 version
    str spec_name               # u16 byte length including the trailing NUL, then bytes
    u32 revision
    u32 n_variables
    n_variables x (str name, u8 rank, rank x u32 dim, u8 dtype, u32 n_bytes, n_bytes raw)
    u32 n_aliases
    n_aliases x (str alias, str target)

dtype codes: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from probekit.errors import WeightsError

SUPPORTED_BINARY_VERSIONS = (6,)

# bfloat16 has no numpy dtype: it is read as uint16 and widened by hand.
_DTYPES: dict[int, tuple[str, np.dtype]] = {
    0: ("float32", np.dtype("<f4")),
    1: ("int8", np.dtype("i1")),
    2: ("int16", np.dtype("<i2")),
    3: ("int32", np.dtype("<i4")),
    4: ("float16", np.dtype("<f2")),
    5: ("bfloat16", np.dtype("<u2")),
}


@dataclass
class CT2Checkpoint:
    """A parsed CTranslate2 ``model.bin``.

    Attributes
    ----------
    path : Path
        The file read, for error messages.
    spec : str
        Model spec name, e.g. ``"WhisperSpec"``.
    revision : int
        Spec revision.
    variables : dict of str to np.ndarray
        Every variable under its own name and under each alias. Arrays are read-only views
        of a memory map (no copy) in their stored dtype, except bfloat16 which is widened
        to float32.
    aliases : dict of str to str
        Alias name to target name.
    """

    path: Path
    spec: str
    revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        """Return variable ``name``; WeightsError naming the file if it is absent."""
        try:
            return self.variables[name]
        except KeyError:
            raise WeightsError(f"{self.path}: variable {name!r} is missing") from None


class _Cursor:
    """Bounds-checked reads from a byte buffer; every failure names file and variable."""

    def __init__(self, buf: np.ndarray, path: Path):
        self.buf = buf
        self.path = path
        self.pos = 0
        self.context = "header"

    def fail(self, msg: str) -> WeightsError:
        return WeightsError(f"{self.path}: {msg} (while reading {self.context}, byte {self.pos})")

    def take(self, n: int, what: str) -> np.ndarray:
        left = len(self.buf) - self.pos
        if n > left:
            raise self.fail(f"truncated file: {what} needs {n} bytes but only {left} remain")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what).tobytes(), "little")

    def string(self, what: str) -> str:
        n = self.uint(2, f"length of {what}")
        raw = self.take(n, what).tobytes()
        if n == 0 or raw[-1] != 0:
            raise self.fail(f"{what} is not NUL-terminated")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not valid UTF-8: {raw[:40]!r}") from None


def read_ctranslate2_model(path: str | Path) -> CT2Checkpoint:
    """Parse a CTranslate2 ``model.bin`` without copying the tensor data.

    Parameters
    ----------
    path : str or Path
        The ``model.bin`` file.

    Returns
    -------
    CT2Checkpoint

    Raises
    ------
    WeightsError
        Unsupported binary version, truncated file, unknown dtype, byte count that does not
        match the shape, duplicate names, dangling alias or bytes after the alias table. The
        message names the file and the variable being read.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: model.bin not found")
    if path.stat().st_size == 0:
        raise WeightsError(f"{path}: file is empty")
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    cur = _Cursor(buf, path)

    version = cur.uint(4, "binary version")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise cur.fail(
            f"unsupported CTranslate2 binary version {version} "
            f"(supported: {', '.join(map(str, SUPPORTED_BINARY_VERSIONS))})"
        )
    spec = cur.string("spec name")
    revision = cur.uint(4, "spec revision")
    n_vars = cur.uint(4, "variable count")

    ckpt = CT2Checkpoint(path=path, spec=spec, revision=revision)
    for index in range(n_vars):
        cur.context = f"variable #{index}"
        name = cur.string("variable name")
        cur.context = f"variable {name!r}"
        rank = cur.uint(1, "rank")
        shape = tuple(cur.uint(4, f"dimension {d}") for d in range(rank))
        code = cur.uint(1, "dtype")
        if code not in _DTYPES:
            raise cur.fail(f"variable {name!r} has unknown dtype code {code} (known: 0-5)")
        dtype_name, dtype = _DTYPES[code]
        n_bytes = cur.uint(4, "byte count")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if n_bytes != expected:
            raise cur.fail(
                f"variable {name!r} declares {n_bytes} bytes but shape {shape} of "
                f"{dtype_name} needs {expected}"
            )
        raw = cur.take(n_bytes, f"data of variable {name!r}")
        array = raw.view(dtype).reshape(shape)
        if code == 5:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        if name in ckpt.variables:
            raise cur.fail(f"variable {name!r} appears twice")
        ckpt.variables[name] = array

    cur.context = "alias table"
    n_aliases = cur.uint(4, "alias count")
    for index in range(n_aliases):
        cur.context = f"alias #{index}"
        alias = cur.string("alias name")
        target = cur.string(f"target of alias {alias!r}")
        if target not in ckpt.variables:
            raise cur.fail(f"alias {alias!r} points to unknown variable {target!r}")
        if alias in ckpt.variables:
            raise cur.fail(f"alias {alias!r} shadows a variable of the same name")
        ckpt.aliases[alias] = target
        ckpt.variables[alias] = ckpt.variables[target]

    trailing = len(buf) - cur.pos
    if trailing:
        raise WeightsError(
            f"{path}: {trailing} unexpected bytes after the alias table (file corrupt or "
            "not a CTranslate2 model.bin)"
        )
    return ckpt
