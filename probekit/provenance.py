"""What an analysis was computed from, for every report (issue 18 item 6): package versions,
the analysis settings, the stores behind each encoder, and each task's sentence split.

:func:`probekit.bias.analysis.analyze` records it in ``Analysis.provenance``;
:meth:`probekit.bias.analysis.Analysis.save` writes it as ``provenance.json`` in the analysis
folder, and :func:`probekit.report.build_report` reads it, so a report built step by step
(``probekit analyze`` then ``probekit report``) carries the same provenance as a study's.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

__all__ = ["versions", "sentence_splits", "read_provenance", "with_provenance", "split_lines",
           "synthetic_banner", "PROVENANCE_NAME", "META_SCHEMA", "CONFIG_SCHEMA", "read_meta"]

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
CONFIG_SCHEMA = {"alpha": (int, float), "title": (str, _NONE), "question": (str, _NONE)}


def read_meta(path, what: str = "run metadata") -> dict:
    """Report metadata from ``path`` (``run.json``, ``--meta``, ``provenance.json``) checked
    against :data:`META_SCHEMA`; anything else is a :class:`~probekit.jsonfile.BadFileError`
    naming the file and the field (the one JSON reader: :mod:`probekit.jsonfile`)."""
    from probekit.jsonfile import BadFileError, check_fields, read_json_object

    meta = read_json_object(path, what, META_SCHEMA)
    src = f"{path} ({what})"
    cfg = check_fields(meta.get("config", {}), f"{src}, config", CONFIG_SCHEMA)
    if "alpha" in cfg and not 0 < cfg["alpha"] < 1:
        raise BadFileError(f"{src}, config: field 'alpha' must be in (0, 1), found {cfg['alpha']}")
    bad = [x for x in meta.get("random_init", []) if not isinstance(x, str)]
    if bad:
        raise BadFileError(f"{src}: field 'random_init' must list encoder names, found {bad[0]!r}")
    return meta


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
    return {f"{e} / {t}": sorted(set(v.unique())) for (e, t), v in
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
    one is refused, naming the file and the field: :func:`read_meta`)."""
    p = Path(analysis) / PROVENANCE_NAME
    return read_meta(p, "analysis provenance") if p.is_file() else {}


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
