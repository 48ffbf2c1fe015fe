"""Probing tasks as types: what a task reads, how it splits, what it trains and scores.

One small class per task kind, registered in :data:`TASKS` (a
:class:`~probekit.registry.Registry`): ``phone``, ``speaker``, ``group:<attribute>`` and
``asr``. :func:`get_task` is the only parser of a task string; the grid
(:func:`~probekit.probes.grid.run_grid`), the store
(:meth:`~probekit.store.EmbeddingStore.load_task`), the study config, the typing and the
report ask the task object instead of branching on names.

Each task carries:

* ``pooling``: the store pooling it reads (``phone``, ``utterance`` or ``frames``);
* :meth:`Task.labels`: the label column of the metadata (``y``);
* :meth:`Task.split`: its train/test split (speaker-disjoint for content tasks, same speakers
  with disjoint utterances for speaker ID);
* ``content`` and ``default_train_sets``: content tasks (``phone``, ``asr``) test on unseen
  speakers and train one probe per training set (each group, all, all-but-one...), so the
  typing (own-group vs broad probes) applies to them; the others train on ``all`` only;
* ``metrics``: the results metrics it writes (the first is the one the report reads);
* ``words`` / :meth:`Task.probe_words`: how prose names it;
* ``needs_corpus``: whether the grid needs the corpus (``asr``: transcripts are not stored).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from probekit.registry import Registry, RegistryError

__all__ = ["Task", "PhoneTask", "SpeakerTask", "GroupTask", "AsrTask", "TASKS", "get_task",
           "register_task", "task_names", "group_attribute_of"]

#: Task kinds by name; a parametrised kind (``group``) is written ``<kind>:<argument>``.
TASKS: Registry[type] = Registry("task")


class Task:
    """One probing task. Subclasses set the class attributes and may override the methods.

    Build one with :func:`get_task`; two tasks with the same ``name`` are equal.
    """

    kind: ClassVar[str] = ""
    #: store pooling the task reads
    pooling: ClassVar[str] = "utterance"
    #: tests on unseen speakers with several training sets (typing applies)
    content: ClassVar[bool] = False
    #: the grid needs the corpus (transcripts)
    needs_corpus: ClassVar[bool] = False
    #: the probe reads frame sequences (a CTC head; ``max_epochs`` applies)
    sequences: ClassVar[bool] = False
    #: results metrics written, the first being the one the report reads
    metrics: ClassVar[tuple[str, ...]] = ("error",)
    #: training-set kinds when none are given (only content tasks take others)
    default_train_sets: ClassVar[tuple[str, ...]] = ("all",)
    default_probes: ClassVar[tuple[str, ...]] = ("lda",)
    #: phone errors are scored over the labels every training set saw (``run_grid``)
    shared_labels_only: ClassVar[bool] = False
    #: the speaker-dispersion test (phone-segment embeddings, ``bias/dispersion.py``) applies
    dispersion: ClassVar[bool] = False
    #: position in the report's reading order
    order: ClassVar[int] = 3
    takes_argument: ClassVar[bool] = False
    #: the group attribute a group-ID task identifies (None for the others)
    attribute: ClassVar[str | None] = None

    def __init__(self, argument: str | None = None):
        if self.takes_argument and not argument:
            raise RegistryError(f"task {self.kind!r} needs an argument: "
                                f"'{self.kind}:<{self.argument_name}>'")
        if not self.takes_argument and argument is not None:
            raise RegistryError(f"task {self.kind!r} takes no argument, got "
                                f"{self.kind}:{argument!r}")
        self.argument = argument

    argument_name: ClassVar[str] = "argument"

    @property
    def name(self) -> str:
        """The task string (``"phone"``, ``"group:accent"``): what the results table holds."""
        return self.kind if self.argument is None else f"{self.kind}:{self.argument}"

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"get_task({self.name!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Task) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    # -- words ------------------------------------------------------------------------------
    words: ClassVar[str] = ""
    probe_noun: ClassVar[str] = "probe"

    def probe_words(self, probe: str) -> str:
        """How prose names a probe of this task: ``"phone-probe (lda)"``."""
        return f"{self.probe_noun} ({probe})"

    # -- data -------------------------------------------------------------------------------
    def labels(self, meta: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def train_sets(self, kinds=None) -> tuple[str, ...]:
        """The training-set kinds the grid trains: ``kinds`` (default
        :attr:`default_train_sets`) for content tasks, ``("all",)`` otherwise."""
        return tuple(kinds or self.default_train_sets) if self.content else ("all",)

    def split(self, meta: pd.DataFrame, group_col: str, seed: int, test_speakers: float):
        """Speaker-disjoint (and sentence-disjoint where sentences repeat) split."""
        from probekit.probes.splits import content_split
        return content_split(meta, group_col, seed, test_speakers=test_speakers)

    def balance_key(self, group_col: str) -> str:
        """Column the single ``all`` training set of a non-content task is balanced over."""
        return group_col

    def report_metric(self, available) -> str | None:
        """The metric the report reads among ``available`` (the first of :attr:`metrics`
        present), None when none is."""
        have = set(map(str, available))
        return next((m for m in self.metrics if m in have), None)


def register_task(cls: type) -> type:
    """Register a :class:`Task` subclass under its ``kind`` (the :class:`Registry` rule)."""
    if not (isinstance(cls, type) and issubclass(cls, Task)) or not cls.kind:
        raise RegistryError(f"a task is a Task subclass with a kind, got {cls!r}")
    return TASKS.add(cls.kind, cls)


@register_task
class PhoneTask(Task):
    """Phone recognition from phone-segment embeddings (``y`` = phone label)."""

    kind = "phone"
    pooling = "phone"
    content = True
    default_train_sets = ("single", "all", "all-matched", "all-but")
    shared_labels_only = True
    dispersion = True
    order = 0
    words = "phone recognition"
    probe_noun = "phone-probe"

    def labels(self, meta):
        return meta["phone"].to_numpy()


@register_task
class AsrTask(Task):
    """A CTC head on the store's frames (``y`` = transcript, from the corpus).

    One CTC head per layer and seed on all groups by default (the layerwise-unfairness paper's
    ASR error per layer); single-group ASR probes are available with
    ``train_sets=("single", ...)`` at several times the cost."""

    kind = "asr"
    pooling = "frames"
    content = True
    needs_corpus = True
    sequences = True
    metrics = ("cer", "wer")
    default_train_sets = ("all",)
    default_probes = ("ctc",)
    order = 1
    words = "transcription (CTC)"
    probe_noun = "CTC probe"

    def labels(self, meta):
        return meta["text"].to_numpy()


@register_task
class SpeakerTask(Task):
    """Speaker identification from utterance embeddings: same speakers on both sides,
    disjoint utterances (a speaker-ID probe can only name speakers it was trained on)."""

    kind = "speaker"
    order = 2
    words = "speaker identification"
    probe_noun = "speaker-ID probe"

    def labels(self, meta):
        return meta["speaker"].to_numpy()

    def split(self, meta, group_col, seed, test_speakers):
        from probekit.probes.splits import speaker_id_split
        return speaker_id_split(meta, seed)

    def balance_key(self, group_col):
        return "speaker"


@register_task
class GroupTask(Task):
    """Group identification (``group:<attribute>``, e.g. ``group:accent`` or an intersection
    ``group:accent*gender``) from utterance embeddings."""

    kind = "group"
    takes_argument = True
    argument_name = "attribute"

    @property
    def attribute(self) -> str:  # type: ignore[override]
        return self.argument

    @property
    def column(self) -> str:
        """The store metadata column holding the labels (``"group:accent"``)."""
        return f"group:{self.attribute}"

    @property
    def words(self) -> str:  # type: ignore[override]
        return f"{self.attribute} identification"

    def probe_words(self, probe):
        return f"{self.attribute}-ID probe ({probe})"

    def labels(self, meta):
        return meta[self.column].to_numpy()


def group_attribute_of(name) -> str | None:
    """The attribute of a group-ID task name, which is also the store metadata column holding
    that attribute's labels (``"group:accent"`` -> ``"accent"``); None for anything else."""
    name = str(name)
    return name[len("group:"):] or None if name.startswith("group:") else None


def task_names() -> list[str]:
    """The task strings a user may write (``group:<attribute>`` for parametrised kinds)."""
    return [f"{k}:<{c.argument_name}>" if c.takes_argument else k for k, c in TASKS.items()]


def get_task(name) -> Task:
    """The task object of a task string (``"phone"``, ``"group:accent"``) or a task itself.

    The only parser of task names. An unknown name raises
    :class:`~probekit.registry.RegistryError` listing the tasks.
    """
    if isinstance(name, Task):
        return name
    if not isinstance(name, str) or not name.strip():
        raise RegistryError(f"a task is a non-empty string, got {name!r}; tasks: "
                            f"{', '.join(task_names())}")
    kind, sep, argument = name.strip().partition(":")
    if kind not in TASKS:
        raise RegistryError(f"unknown task {name!r}; tasks: {', '.join(task_names())}")
    return TASKS[kind](argument if sep else None)
