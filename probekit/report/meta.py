"""The run metadata a report reads (``run.json`` of a study or demo, or ``--meta``): its
schema, checked where it is read (:func:`read_run_meta`)."""

from __future__ import annotations

from pathlib import Path

from probekit.jsonfile import BadFileError, check_fields, read_json_object

__all__ = ["RUN_META_SCHEMA", "CONFIG_SCHEMA", "read_run_meta"]

#: Fields of run.json that the report uses, and their JSON types (others are ignored).
RUN_META_SCHEMA = {"config": dict, "synthetic": (bool, str), "random_init": list,
                   "fingerprints": dict, "versions": dict, "timings": dict, "stores": dict,
                   "before_after": (str, type(None)), "n_utterances": int,
                   "n_result_rows": int, "config_file": (str, type(None))}
#: Fields of its ``config`` that the report uses.
CONFIG_SCHEMA = {"alpha": (float, int), "title": (str, type(None)),
                 "question": (str, type(None))}


def read_run_meta(path: str | Path) -> dict:
    """``path`` (run.json) as a dict checked against :data:`RUN_META_SCHEMA`; a file that does
    not fit is a :class:`~probekit.jsonfile.BadFileError` naming the field."""
    meta = read_json_object(path, "run metadata", RUN_META_SCHEMA)
    src = f"{path} (run metadata)"
    cfg = check_fields(meta.get("config", {}), f"{src}, config", CONFIG_SCHEMA)
    if "alpha" in cfg and not 0 < cfg["alpha"] < 1:
        raise BadFileError(f"{src}, config: field 'alpha' must be in (0, 1), found {cfg['alpha']}")
    bad = [x for x in meta.get("random_init", []) if not isinstance(x, str)]
    if bad:
        raise BadFileError(f"{src}: field 'random_init' must list encoder names, found {bad[0]!r}")
    return meta
