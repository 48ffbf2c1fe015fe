"""What an analysis was computed from, for every report (issue 18 item 6): package versions,
the analysis settings, the stores behind each encoder, and each task's sentence split.

:func:`probekit.bias.analysis.analyze` records it in ``Analysis.provenance``;
:func:`probekit.bias.output.write_analysis` writes it as ``provenance.json`` in the analysis
folder, and :func:`probekit.report.build_report` reads it, so a report built step by step
(``probekit analyze`` then ``probekit report``) carries the same provenance as a study's.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

__all__ = ["versions", "sentence_splits", "read_provenance", "with_provenance", "split_lines",
           "synthetic_banner", "PROVENANCE_NAME", "META_SCHEMA", "check_meta", "read_json",
           "read_meta"]

PROVENANCE_NAME = "provenance.json"

_NONE = type(None)
#: The schema of report metadata (a study's ``run.json``, ``report --meta``, an analysis's
#: ``provenance.json``): each field a report reads, with the types it may hold. Other fields
#: are kept and not read.
META_SCHEMA = {"config": dict, "config_file": (str, _NONE), "fingerprints": dict,
               "stores": dict, "versions": dict, "synthetic": (bool, str), "random_init": list,
               "n_utterances": int, "n_result_rows": int, "before_after": (str, _NONE),
               "timings": dict, "analysis": dict, "sentence_splits": dict}
#: Fields of ``config`` a report reads.
_CONFIG_SCHEMA = {"alpha": (int, float), "title": (str, _NONE), "question": (str, _NONE)}
_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "true/false",
          int: "an integer", float: "a number", _NONE: "null"}


def _typename(x) -> str:
    return _NAMES.get(type(x), type(x).__name__)


def _expect(path, field: str, value, types) -> None:
    types = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        from probekit.errors import MetadataError

        raise MetadataError(f"{path}: field {field!r} must be "
                            f"{' or '.join(_NAMES.get(t, t.__name__) for t in types)}, found "
                            f"{_typename(value)} ({json.dumps(value, default=str)[:40]})")


def check_meta(meta, path) -> dict:
    """``meta`` checked against :data:`META_SCHEMA`; a :class:`~probekit.errors.MetadataError`
    naming ``path`` and the field otherwise."""
    _expect(path, "(top level)", meta, dict)
    for key, types in META_SCHEMA.items():
        if key in meta:
            _expect(path, key, meta[key], types)
    for i, name in enumerate(meta.get("random_init") or []):
        _expect(path, f"random_init[{i}]", name, str)
    for key, types in _CONFIG_SCHEMA.items():
        if key in (meta.get("config") or {}):
            _expect(path, f"config.{key}", meta["config"][key], types)
    return meta


def read_json(path) -> object:
    """The JSON value in ``path``; a file that is not JSON (or not UTF-8) is a
    :class:`~probekit.errors.MetadataError` naming it, the line and the column."""
    from probekit.errors import MetadataError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise MetadataError(f"{path}: not a UTF-8 text file (expected JSON)") from None
    except json.JSONDecodeError as exc:
        raise MetadataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column "
                            f"{exc.colno})") from None
    except OSError as exc:
        raise MetadataError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_meta(path) -> dict:
    """Report metadata from ``path`` (``run.json``, ``--meta``), checked (:func:`check_meta`)."""
    return check_meta(read_json(path), path)


def versions() -> dict:
    """probekit, Python, platform and the main numerical packages' versions."""
    from importlib.metadata import PackageNotFoundError, version

    from probekit import __version__
    v = {"probekit": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("torch", "transformers", "numpy", "pandas", "scipy"):
        try:
            v[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return v


def sentence_splits(results) -> dict:
    """``{"<encoder> / <task>": [statuses]}`` from the results' ``sentence_split`` column
    (``disjoint``, ``shared``, ``unknown``; ``unrecorded`` for rows written before it)."""
    if "sentence_split" not in results.columns:
        return {}
    s = results["sentence_split"].astype(str).replace("", "unrecorded")
    return {f"{e} / {t}": sorted(set(v)) for (e, t), v in
            s.groupby([results["encoder"], results["task"]], sort=True)}


def split_lines(meta: dict) -> list[str]:
    """One line per encoder / task saying whether its test sentences were unseen in training."""
    words = {"disjoint": "sentence-disjoint (no test sentence was seen in training)",
             "shared": "not sentence-disjoint (the speaker-ID split shares sentences by design)",
             "unknown": "sentence ids unknown: sentences may repeat across the split",
             "unrecorded": "not recorded (results written before probekit recorded it)"}
    return [f"Sentence split of {k}: " + "; ".join(words.get(v, v) for v in vs)
            for k, vs in (meta.get("sentence_splits") or {}).items()]


def read_provenance(analysis: str | Path) -> dict:
    """``provenance.json`` of an analysis folder (``{}`` when absent; a malformed or wrong-typed
    one is refused, naming the file and the field: :func:`check_meta`)."""
    p = Path(analysis) / PROVENANCE_NAME
    return check_meta(read_json(p), p) if p.is_file() else {}


def with_provenance(meta: dict | None, analysis: str | Path) -> dict:
    """``meta`` (a study's run.json, or ``{}``) completed from the analysis folder's
    ``provenance.json``: what the caller gives wins, what it lacks is filled in."""
    meta = dict(meta or {})
    prov = read_provenance(analysis)
    for key, value in prov.items():
        if key == "analysis":
            cfg = dict(meta.get("config") or {})
            cfg.setdefault("analysis", value)
            meta["config"] = cfg
        elif isinstance(value, dict) and isinstance(meta.get(key), dict):
            meta[key] = {**value, **meta[key]}
        elif not meta.get(key):
            meta[key] = value
    return meta


def synthetic_banner(synthetic) -> str:
    """The synthetic-data banner naming the corpus actually used: ``synthetic`` describes it
    (a study writes which preset; ``probekit report --synthetic-source``), or is ``True`` when
    nothing says which synthetic corpus it was (the banner then claims no engine)."""
    what = ("synthetic speech (its source is not recorded: probekit report --synthetic-source "
            "names it)" if synthetic is True else str(synthetic))
    return (f"SYNTHETIC DATA: the corpus is {what}. These results demonstrate the method; they "
            "are not findings about people or real accents.")
