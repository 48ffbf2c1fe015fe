"""The import directions of the package (issue 22, item 6), read from the source with ``ast``
(nothing is imported, so a lazy import inside a function counts as much as a top-level one):

* ``training/`` sits below the analysis: it never imports ``probekit.bias``, ``report``,
  ``study``, ``demo``, ``probes``, ``store`` or a command-line module;
* the library layers ``corpus/``, ``encoders/``, ``store/``, ``probes/`` and ``bias/`` never
  import ``probekit.report``, ``study``, ``demo``, a command-line module, or ``training``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Command-line modules: ``probekit/cli.py`` and ``probekit/cli_*.py`` (``cliutil`` is the
#: shared argument-type helpers, a library module).
_CLI = ("probekit.cli", "probekit.cli_")

RULES = {
    "training": ("probekit.bias", "probekit.report", "probekit.study", "probekit.demo",
                 "probekit.probes", "probekit.store", *_CLI),
    **{f"probekit/{layer}": ("probekit.report", "probekit.study", "probekit.demo", "training",
                             *_CLI)
       for layer in ("corpus", "encoders", "store", "probes", "bias")},
}


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, list[str]]]:
    """``(line, dotted names)`` of every import statement in ``path``, relative ones resolved;
    ``from X import a, b`` gives ``[X, X.a, X.b]`` (``a`` may be a submodule)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_of(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, [a.name]) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[:len(package) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            out.append((node.lineno, [base] + [f"{base}.{a.name}" for a in node.names
                                               if a.name != "*"]))
    return sorted(out)


def _forbidden(name: str, prefixes) -> bool:
    for p in prefixes:
        if p.endswith("_"):   # a module-name prefix (probekit.cli_compare, ...)
            if name.startswith(p):
                return True
        elif name == p or name.startswith(p + "."):
            return True
    return False


def violations(folder: str, prefixes) -> list[str]:
    out = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, names in imported_modules(path):
            bad = [n for n in names if _forbidden(n, prefixes)]
            if bad:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {bad[0]}")
    return out


@pytest.mark.parametrize("folder", sorted(RULES))
def test_import_direction(folder):
    assert violations(folder, RULES[folder]) == []


def test_the_checker_sees_every_import_form(tmp_path, monkeypatch):
    """The checker itself: absolute, ``from`` and relative imports (also inside a function)
    of a forbidden module are found; ``cliutil`` and neutral modules are not."""
    pkg = tmp_path / "probekit" / "bias"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "import probekit.report.build\n"
        "from probekit import study\n"
        "from probekit.cliutil import seed\n"
        "from probekit.corpus.seen import SeenIds\n"
        "def f():\n    from ..demo import DEMO_CONFIG\n    from .. import cli_compare\n"
        "    import training.finetune\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = violations("probekit/bias", RULES["probekit/bias"])
    assert [v.split(" imports ")[1] for v in found] == [
        "probekit.report.build", "probekit.study", "probekit.demo", "probekit.cli_compare",
        "training.finetune"]


#: Helpers written once (issue 22, item 8): function name -> the one file defining it.
DEFINED_ONCE = {"resolve_device": "probekit/device.py", "cache_root": "probekit/cache.py",
                "comma_list": "probekit/cliutil.py", "slug": "probekit/cliutil.py",
                "early_stopping_loop": "probekit/probes/_base.py"}
#: Names that must not come back as second copies.
RETIRED = ("default_cache_dir",)


def _definitions() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for folder in ("probekit", "training"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    return out


def test_each_helper_is_defined_once():
    defs = _definitions()
    assert {n: defs.get(n) for n in DEFINED_ONCE} == {n: [f] for n, f in DEFINED_ONCE.items()}
    assert {n: defs[n] for n in RETIRED if n in defs} == {}


def test_whisper_sizes_are_listed_once():
    """The released sizes live in ``KNOWN_WHISPER_MODELS`` (encoders/weights_registry.py)."""
    where = sorted({str(p.relative_to(ROOT)) for folder in ("probekit", "training")
                    for p in (ROOT / folder).rglob("*.py")
                    for node in ast.walk(ast.parse(p.read_text()))
                    if isinstance(node, ast.Constant) and node.value in ("large-v3-turbo",
                                                                         "whisper-large-v3-turbo")})
    assert where == ["probekit/encoders/weights_registry.py"]


def _benchmark_imports() -> list[tuple[str, int, str, str]]:
    """``(file, line, module, name)`` of every ``from probekit|training ... import name`` in
    ``benchmarks/`` (functions included)."""
    out = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module \
                    and node.module.split(".")[0] in ("probekit", "training"):
                out += [(path.name, node.lineno, node.module, a.name) for a in node.names]
    return out


def test_benchmarks_use_public_names_only():
    """No private module or name, and every imported name exists (a benchmark that imports a
    name the library no longer has is broken, not slow)."""
    import importlib

    rows = _benchmark_imports()
    assert rows, "benchmarks import nothing from probekit?"
    private = [r for r in rows if r[3].startswith("_")
               or any(p.startswith("_") for p in r[2].split("."))]
    assert private == []
    missing = [r for r in rows if not hasattr(importlib.import_module(r[2]), r[3])
               and importlib.util.find_spec(f"{r[2]}.{r[3]}") is None]
    assert missing == []
