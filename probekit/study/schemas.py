"""The schemas of a study TOML: one per table, in :mod:`probekit.schema` kinds.

:func:`probekit.study.config.config_from_dict` checks every table against its schema here:
unknown keys are refused with the known ones, wrong types name the key and the type expected.
"""

from __future__ import annotations

from probekit.errors import ProbekitError

__all__ = ["StudyConfigError", "TOP_SCHEMA", "ENCODER_SCHEMA", "TASK_SCHEMA", "ANALYSIS_SCHEMA",
           "TRAINING_SCHEMA", "METHOD_SCHEMA", "CORPUS_SCHEMA", "fields_of", "synthetic_schema"]


class StudyConfigError(ProbekitError, ValueError):
    """A study config is malformed; the message names the file and the field."""


#: One schema per table of a study TOML (:mod:`probekit.schema` kinds); unknown keys are
#: refused with these lists, wrong types name the key and the expected type.
TOP_SCHEMA = {"name": "str", "title": "str", "question": "str", "corpus": "table",
              "encoders": "list", "tasks": "table", "analysis": "table", "poolings": "list[str]",
              "device": "str", "seed": "int", "training": "table"}
ENCODER_SCHEMA = {"name": "str", "label": "str", "sources": "list[str]", "layers": "list+",
                  "random_init": "bool", "options": "table", "store": "str"}
TASK_SCHEMA = {"probes": "list[str]+", "seeds": "list[int]+", "train_sets": "list[str]+",
               "max_epochs": "int", "test_speakers": "number"}
ANALYSIS_SCHEMA = {"n_boot": "int", "n_perm": "int", "alpha": "number"}
TRAINING_SCHEMA = {"methods": "list+", "objective": "str", "base": "str",
                   "train_groups": "list[str]+", "steps": "int", "batch_size": "int",
                   "lr": "number", "eval_every": "int", "seed": "int", "test_speakers": "number",
                   "val_speakers": "int", "val_utterances": "int", "eval_per_speaker": "int",
                   "max_new_tokens": "int", "allow_seen": "bool"}
METHOD_SCHEMA = {"label": "str", "method": "str", "objective": "str", "objective_args": "table"}
#: ``[corpus]`` keys of every corpus; a synthetic one adds :class:`SyntheticConfig`'s fields
#: (:func:`synthetic_schema`), one on disk the reader's options (checked by ``read_corpus``).
CORPUS_SCHEMA = {"synthetic": "str", "path": "str", "kind": "str", "group_attribute": "str",
                 "phone_folding": "str|list[str]", "intersections": "list[str]"}


def fields_of(d, schema, where, prefix="", what=None) -> dict:
    """:func:`probekit.schema.read_fields` raising :class:`StudyConfigError`; ``prefix``
    (``"analysis."``) names the table in messages."""
    from probekit.schema import read_fields

    return read_fields(d, schema, where, StudyConfigError, prefix=prefix,
                       what=what or (f"[{prefix.rstrip('.')}] table" if prefix else "config"))


def synthetic_schema() -> dict[str, str]:
    """``[corpus]`` overrides of a synthetic preset: :class:`SyntheticConfig`'s fields, each
    typed like its default."""
    from dataclasses import fields

    from probekit.corpus.synthetic import SyntheticConfig

    def kind(v):
        if isinstance(v, tuple):
            return "list[int]" if all(isinstance(x, int) for x in v) else "list[str]"
        return "int" if isinstance(v, int) else "str"

    return {f.name: kind(f.default) for f in fields(SyntheticConfig) if f.name != "name"}
