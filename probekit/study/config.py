"""Study configuration: one TOML file says which corpus, which encoders, which probe grids
and how much resampling; :func:`load_config` turns it into a :class:`StudyConfig`.

Example (``studies/layerwise_bias/config.toml`` is a complete one)::

    name = "layerwise_bias"
    [corpus]
    synthetic = "default"          # or: path = "manifests/timit/", reader = "lhotse"
    group_attribute = "accent"
    [[encoders]]
    name = "whisper-tiny.en"
    [tasks.phone]
    seeds = [0, 1, 2]
    [analysis]
    n_boot = 1000
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from probekit.study.schemas import (ANALYSIS_SCHEMA, CORPUS_SCHEMA, ENCODER_SCHEMA,
                                    METHOD_SCHEMA, TASK_SCHEMA, TOP_SCHEMA, TRAINING_SCHEMA,
                                    StudyConfigError)
from probekit.study.schemas import fields_of as _fields
from training.config import TrainConfig
from probekit.study.schemas import synthetic_schema as _synthetic_schema

__all__ = ["StudyConfig", "EncoderSpec", "TaskSpec", "TrainingSpec", "MethodSpec",
           "StudyConfigError", "load_config", "config_from_dict"]
#: Corpus options that name files or folders (resolved relative to the TOML, like ``path``).
CORPUS_PATH_OPTIONS = ("path", "audio_dir", "speakers")


def poolings_for(tasks) -> tuple[str, ...]:
    """The store poolings the tasks need: ``phone`` for phone probes (and the dispersion
    test), ``utterance`` for speaker and group-ID probes, ``frames`` for the CTC probe
    (each task's :attr:`~probekit.probes.tasks.Task.pooling`)."""
    from probekit.probes.tasks import get_task
    got = {get_task(t.task).pooling for t in tasks}
    return tuple(p for p in ("utterance", "phone", "frames") if p in got)


def _near_toml(value: str, source: str | None, *, must_exist: bool = False) -> str:
    """``value`` resolved against the TOML's folder when relative (and, with ``must_exist``,
    only when it exists there: an encoder ``name`` may also be a registered name or hub id)."""
    if not source or os.path.isabs(str(value)):
        return str(value)
    p = (Path(source).parent / str(value)).resolve()
    return str(p) if (p.exists() or not must_exist) else str(value)


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder of a study.

    ``name`` is a registered name, a hub id or a local folder (see ``probekit encoders``);
    ``options`` are the encoder family's own options, passed to ``load_encoder`` and checked
    there (TOML ``[encoders.options]``; ``probekit encoders list`` shows each family's), e.g.
    Whisper's ``sources`` (where weights may come from; the demo never allows ``"hub"``) and
    ``long_form``, or ``revision`` for wav2vec2/HuBERT/WavLM; ``sources = [...]`` directly
    under ``[[encoders]]`` is kept as shorthand for ``options.sources``. ``random_init``
    marks a randomly initialised model so the report says so. ``store`` reuses an existing
    embedding store of this encoder instead of extracting one (its fingerprint is checked
    against this encoder and the study's corpus, layers and poolings).
    """

    name: str
    label: str | None = None
    layers: tuple | None = None
    random_init: bool = False
    store: str | None = None
    options: dict = field(default_factory=dict, hash=False)

    @property
    def display(self) -> str:
        return self.label or self.name

    @property
    def sources(self) -> tuple[str, ...] | None:
        """Whisper's weight ``sources`` option, None when not set (the family's default)."""
        s = self.options.get("sources")
        return None if s is None else tuple(s)


@dataclass(frozen=True)
class TaskSpec:
    """One probe grid: task name, probes, seeds and training-set kinds (content tasks).

    ``max_epochs`` only applies to the CTC probe of ``asr`` (fewer epochs = faster, noisier).
    """

    task: str
    probes: tuple[str, ...] | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    train_sets: tuple[str, ...] | None = None
    max_epochs: int | None = None
    test_speakers: float | None = None


@dataclass(frozen=True)
class MethodSpec:
    """One fine-tuning run of a ``[training]`` section: adapter method, objective, label."""

    label: str
    method: str = "lora"
    objective: str = "erm"
    objective_args: tuple = ()  # sorted (key, value) pairs


@dataclass(frozen=True)
class TrainingSpec:
    """A ``[training]`` section: fine-tune the ``base`` encoder with each method, then probe
    base and adapted encoders on held-out speakers and compare them (before/after).

    The fine-tuning split (:func:`training.finetune.finetune_splits`) is speaker- and
    sentence-disjoint; ``test_speakers`` of every group's speakers are held out, and the
    probes (and the WER table) see only them. ``eval_per_speaker`` caps the utterances
    transcribed per test speaker; ``allow_seen`` lets the comparison run even when an adapted
    encoder saw a test speaker (it never does with the study's own split). The training
    defaults are :class:`training.config.TrainConfig`'s (one source for the library, ``probekit
    train`` and a study); the study's ``device`` reaches the training (``cpu`` forces the CPU).
    """

    methods: tuple[MethodSpec, ...]
    base: str | None = None
    train_groups: tuple[str, ...] | None = None
    steps: int = TrainConfig.steps
    batch_size: int = TrainConfig.batch_size
    lr: float = TrainConfig.lr
    eval_every: int = TrainConfig.eval_every
    seed: int = TrainConfig.seed
    test_speakers: float = TrainConfig.test_speakers
    val_speakers: int = TrainConfig.val_speakers
    val_utterances: int | None = None
    eval_per_speaker: int | None = None
    max_new_tokens: int = 96
    allow_seen: bool = False


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study run depends on (hashed into :meth:`fingerprint`)."""

    name: str
    corpus: dict
    encoders: tuple[EncoderSpec, ...]
    tasks: tuple[TaskSpec, ...]
    group_attribute: str = "accent"
    poolings: tuple[str, ...] = ("utterance", "phone", "frames")
    n_boot: int = 1000
    n_perm: int = 1000
    alpha: float = 0.05
    seed: int = 0
    device: str = "auto"
    title: str | None = None
    question: str | None = None
    training: TrainingSpec | None = None
    source: str | None = None  # the file it came from (not hashed)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("source")
        return json.loads(json.dumps(d))  # tuples -> lists

    def fingerprint(self) -> str:
        """Short hash of everything that changes the results (not the device or file path)."""
        d = self.to_dict()
        d.pop("device")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def synthetic(self) -> bool:
        return "synthetic" in self.corpus


def _encoder_options(e: dict, where: str) -> dict:
    """``[encoders.options]`` plus the ``sources`` shorthand; lists become tuples. Whether the
    family takes them is checked by ``load_encoder`` (before the study builds anything)."""
    opts = e.get("options", {})
    if not isinstance(opts, dict) or not all(isinstance(k, str) for k in opts):
        raise StudyConfigError(f"{where}.options: expected a table of option = value, got {opts!r}")
    opts = dict(opts)
    if "sources" in e:
        if "sources" in opts:
            raise StudyConfigError(f"{where}: 'sources' given twice (directly and in options)")
        opts["sources"] = e["sources"]
    if "device" in opts:
        raise StudyConfigError(f"{where}.options: 'device' is set for the whole study (top-level "
                               "'device' or --device), not per encoder")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in sorted(opts.items())}


def _corpus(d, where: str, source: str | None) -> tuple[dict, str]:
    """The ``[corpus]`` table checked (a synthetic preset's overrides against its config) and
    its group attribute."""
    if d is None:
        d = {"synthetic": "default"}
    if not isinstance(d, dict):
        _fields(d, {}, where, "corpus.")
    if ("synthetic" in d) == ("path" in d):
        raise StudyConfigError(f"{where}: [corpus] needs exactly one of 'synthetic' (a preset) "
                               "or 'path' (a corpus folder or manifest)")
    if "synthetic" in d:
        schema = {**CORPUS_SCHEMA, **_synthetic_schema()}
        schema.pop("path"), schema.pop("kind")
        corpus = _fields(d, schema, where, "corpus.")
    else:  # the other keys are the reader's options (its own schema, checked by read_corpus)
        corpus = {**d, **_fields({k: v for k, v in d.items() if k in CORPUS_SCHEMA},
                                 CORPUS_SCHEMA, where, "corpus.")}
        if "kind" in corpus:  # known now: check its options before any work starts
            from probekit.corpus.readers import reader_options
            from probekit.errors import CorpusError
            try:
                schema = reader_options(corpus["kind"])
            except CorpusError as exc:
                raise StudyConfigError(f"{where}: corpus.kind: {exc}") from None
            _fields({k: v for k, v in d.items() if k not in CORPUS_SCHEMA}, schema, where,
                    "corpus.", what=f"[corpus] table (options of the {corpus['kind']} reader)")
    if "synthetic" in corpus:
        from probekit.corpus.synthetic import resolve_config
        from probekit.errors import CorpusError
        over = {k: v for k, v in corpus.items() if k in _synthetic_schema()}
        try:
            resolve_config(corpus["synthetic"], **over)
        except CorpusError as exc:
            raise StudyConfigError(f"{where}: [corpus]: {exc}") from None
    group = corpus.pop("group_attribute", "accent")
    for key in CORPUS_PATH_OPTIONS:  # every study path is relative to the TOML
        if isinstance(corpus.get(key), str):
            corpus[key] = _near_toml(corpus[key], source)
    return corpus, group


def _layers_ok(layers, where):
    if layers is not None and not all(isinstance(x, (int, str)) and not isinstance(x, bool)
                                      for x in layers):
        raise StudyConfigError(f"{where}.layers must list layer numbers or names; found "
                               f"{list(layers)!r}")
    return layers


def config_from_dict(d: dict, source: str | None = None, **overrides) -> StudyConfig:
    """Validate a parsed TOML mapping; ``overrides`` replace top-level fields.

    Each table is checked against its schema (:data:`TOP_SCHEMA`, :data:`ENCODER_SCHEMA`,
    :data:`TASK_SCHEMA`, :data:`ANALYSIS_SCHEMA`, :data:`TRAINING_SCHEMA`,
    :data:`METHOD_SCHEMA`, :data:`CORPUS_SCHEMA`): unknown keys are refused with the known
    ones, wrong types name the key and the type expected.
    """
    where = source or "<config>"
    d = {**d, **{k: v for k, v in overrides.items() if v is not None}}
    d = _fields(d, TOP_SCHEMA, where, what="top level")
    corpus, group = _corpus(d.get("corpus"), where, source)
    encs = d.get("encoders")
    if not encs:
        raise StudyConfigError(f"{where}: no [[encoders]] listed")
    encoders = []
    for i, e in enumerate(encs):
        if isinstance(e, str):
            e = {"name": e}
        at = f"encoders[{i}]"
        options = _encoder_options(e, f"{where}: {at}") if isinstance(e, dict) else None
        e = _fields(e, ENCODER_SCHEMA, where, f"{at}.", what=f"{at} table")
        if "name" not in e:
            raise StudyConfigError(f"{where}: {at}: needs 'name'")
        encoders.append(EncoderSpec(
            name=_near_toml(e["name"], source, must_exist=True), label=e.get("label"),
            store=None if e.get("store") is None else _near_toml(e["store"], source),
            layers=_layers_ok(e.get("layers"), f"{where}: {at}"),
            random_init=e.get("random_init", False), options=options))
    labels = [e.display for e in encoders]
    if len(set(labels)) != len(labels):
        raise StudyConfigError(f"{where}: encoder names/labels must be distinct, got {labels}")
    from probekit.errors import ProbekitError
    from probekit.probes.tasks import get_task, task_names
    tasks = []
    for name, t in (d.get("tasks") or {"phone": {}}).items():
        try:
            task = get_task(name)
        except ProbekitError as exc:
            raise StudyConfigError(f"{where}: unknown task [tasks.{name!r}] ({exc}); known: "
                                   f"{task_names()}") from None
        t = _fields(t, TASK_SCHEMA, where, f"tasks.{name}.")
        from probekit.probes.splits import TRAIN_SET_KINDS
        bad = [k for k in t.get("train_sets") or () if k not in TRAIN_SET_KINDS]
        if bad:
            raise StudyConfigError(f"{where}: [tasks.{name!r}]: unknown train_sets {bad}; kinds: "
                                   f"{list(TRAIN_SET_KINDS)}")
        if t.get("max_epochs") is not None and (not task.sequences or t["max_epochs"] < 1):
            raise StudyConfigError(f"{where}: [tasks.{name!r}]: max_epochs sets the CTC probe's "
                                   "epochs: a positive integer, under [tasks.asr] only")
        tasks.append(TaskSpec(task=name, probes=t.get("probes"), seeds=t.get("seeds", (0, 1, 2)),
                              train_sets=t.get("train_sets"), max_epochs=t.get("max_epochs"),
                              test_speakers=t.get("test_speakers")))
    an = _fields(d.get("analysis") or {}, ANALYSIS_SCHEMA, where, "analysis.")
    cfg = StudyConfig(
        name=d.get("name") or (Path(source).parent.name if source else "study"),
        title=d.get("title"), question=d.get("question"), corpus=corpus,
        encoders=tuple(encoders), tasks=tuple(tasks), group_attribute=group,
        poolings=d["poolings"] if "poolings" in d else poolings_for(tasks),
        n_boot=an.get("n_boot", 1000), n_perm=an.get("n_perm", 1000),
        alpha=an.get("alpha", 0.05), seed=d.get("seed", 0),
        device=d.get("device", "auto"), training=_training(d.get("training"), where, labels),
        source=source)
    _check_values(cfg, where)
    return cfg


def _check_values(cfg: StudyConfig, where: str) -> None:
    """Refuse values that cannot be right: levels and shares outside (0, 1), counts below 1."""
    def number(v, key):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise StudyConfigError(f"{where}: {key} = {v!r} is not a number")
        return v

    def open_unit(v, key, what):
        if v is not None and not 0 < number(v, key) < 1:
            raise StudyConfigError(f"{where}: {key} = {v!r}: a {what} lies strictly between 0 "
                                   "and 1")

    def at_least_one(v, key):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise StudyConfigError(f"{where}: {key} = {v!r}: an integer >= 1 is needed")

    open_unit(cfg.alpha, "analysis.alpha", "level")
    at_least_one(cfg.n_boot, "analysis.n_boot")
    at_least_one(cfg.n_perm, "analysis.n_perm")
    for t in cfg.tasks:
        open_unit(t.test_speakers, f"tasks.{t.task}.test_speakers", "share of speakers")
    if cfg.training is not None:
        open_unit(cfg.training.test_speakers, "training.test_speakers", "share of speakers")
        at_least_one(cfg.training.steps, "training.steps")


def _training(t: dict | None, where: str, labels: list[str]) -> TrainingSpec | None:
    """Validate a ``[training]`` section (see :class:`TrainingSpec`)."""
    if t is None:
        return None
    t = _fields(t, TRAINING_SCHEMA, where, "training.")
    from training.methods import DEFAULT_METHOD, available_methods

    objective = t.get("objective", "erm")
    methods = []
    for i, m in enumerate(t.get("methods") or [DEFAULT_METHOD]):
        if isinstance(m, str):
            m = {"method": m}
        m = _fields(m, METHOD_SCHEMA, where, f"training.methods[{i}].",
                    what=f"training.methods[{i}] table")
        method = m.get("method", DEFAULT_METHOD)
        if method not in available_methods():
            raise StudyConfigError(f"{where}: training.methods[{i}]: method {method!r}; use "
                                   f"one of {', '.join(map(repr, available_methods()))}")
        obj = m.get("objective", objective)
        methods.append(MethodSpec(label=m.get("label") or f"{method}-{obj}", method=method,
                                  objective=obj,
                                  objective_args=tuple(sorted((m.get("objective_args") or {}).items()))))
    names = [m.label for m in methods]
    if len(set(names)) != len(names) or set(names) & set(labels):
        raise StudyConfigError(f"{where}: [training] method labels must be distinct from each "
                               f"other and from the encoders, got {names}")
    base = t.get("base")
    if base is not None and base not in labels:
        raise StudyConfigError(f"{where}: training.base {base!r} is not an encoder of the study "
                               f"({labels})")
    kw = {k: v for k, v in t.items() if k not in ("methods", "objective", "base")}
    try:
        return TrainingSpec(methods=tuple(methods), base=base or labels[0], **kw)
    except TypeError as exc:
        raise StudyConfigError(f"{where}: [training]: {exc}") from None


def load_config(path: str | os.PathLike, **overrides) -> StudyConfig:
    """Read and validate a study TOML file."""
    p = Path(path)
    if not p.is_file():
        raise StudyConfigError(f"study config not found: {p}")
    try:
        from probekit.schema import read_utf8
        d = tomllib.loads(read_utf8(p, StudyConfigError))
    except tomllib.TOMLDecodeError as exc:
        raise StudyConfigError(f"{p}: not valid TOML: {exc}") from None
    return config_from_dict(d, source=str(p), **overrides)
