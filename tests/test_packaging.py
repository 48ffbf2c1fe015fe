"""The Python floor is stated once in ``pyproject.toml`` and repeated by the README and the
getting-started page, and the code meets it (``tomllib`` is in the standard library from
3.11 on; a lower floor would need the ``tomli`` fallback)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _floor() -> tuple[int, int]:
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    m = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec.strip())
    assert m, f"requires-python {spec!r} is not a plain floor"
    return int(m[1]), int(m[2])


def test_docs_state_the_floor_of_pyproject():
    major, minor = _floor()
    for doc in ("README.md", "docs/getting-started.md"):
        stated = set(re.findall(r"Python (\d+\.\d+)\+", (ROOT / doc).read_text()))
        assert stated == {f"{major}.{minor}"}, (doc, stated)


def test_code_meets_the_floor():
    """Below 3.11, ``tomllib`` must come with a ``tomli`` fallback."""
    if _floor() >= (3, 11):
        return
    bare = [str(p.relative_to(ROOT)) for folder in ("probekit", "training")
            for p in (ROOT / folder).rglob("*.py")
            if re.search(r"^\s*import tomllib\b", p.read_text(), re.M)
            and "tomli" not in p.read_text().replace("tomllib", "")]
    assert bare == []
