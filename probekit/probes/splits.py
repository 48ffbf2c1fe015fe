"""Leakage-free train/test splits and equal-size training sets for probing.

Rules (issue 5, and the project's statistics standard):

* **Content tasks** (phone, ASR, group-ID) test on speakers never seen in training. When the
  corpus repeats sentences across speakers, they also test on sentences never seen in
  training: the sentence pool is split too, and only (train speaker, train sentence) rows
  train, only (test speaker, test sentence) rows test.
* **Speaker identification** trains and tests on the same speakers with disjoint utterances;
  sentence-disjoint when every speaker keeps at least one utterance on each side of a
  sentence split, utterance-disjoint otherwise (logged).
* Every split is checked by :func:`check_leakage`; a split that puts a speaker (content
  tasks) or a sentence (when sentence-disjoint) on both sides is a :class:`SplitError`.
* Training sets for group comparisons (:func:`equal_training_sets`) all have the same number
  of examples; single-group sets also have the same number of speakers. Pooled sets ("all",
  "all-but:<g>") draw their examples evenly from the member groups' sampled speakers, so they
  are broader in speakers but never larger in examples. Sizes are returned for the table.
* Within a speaker, a set takes a *prefix*: every speaker's rows have one fixed random order
  (:func:`speaker_ranks`, seeded by the speaker id, the same for every seed and set), and a set
  that takes ``q`` examples of a speaker takes the first ``q`` of that speaker's training rows
  in that order; a group's share is spread evenly over its sampled speakers (a speaker with
  too few rows gives all of them, the others make up the rest). So the sets of every seed are
  sums of per-speaker prefix statistics, which the probe grid computes in one pass per layer
  (:mod:`probekit.probes.grid_stats`). This draw is :data:`DRAW_VERSION`.

All randomness comes from ``numpy.random.default_rng(seed)``; a seed resamples the splits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from probekit.errors import ProbekitError

log = logging.getLogger(__name__)

__all__ = ["Split", "SplitError", "content_split", "speaker_id_split", "check_leakage",
           "equal_training_sets", "TrainingSet", "TrainSet", "TRAIN_SET_KINDS", "sentence_status",
           "missing_sentence_ids", "speaker_ranks", "DRAW_VERSION"]

#: Version of the training-set draw, written to the results' ``draw`` column: cells drawn
#: otherwise (tables of older probekit, ``""``) are retired by the grid, never mixed.
DRAW_VERSION = "2"

#: Training-set kinds (:class:`TrainSet`): one group, every group pooled, every group pooled
#: from as many speakers as one group has, every group but one.
TRAIN_SET_KINDS = ("single", "all", "all-matched", "all-but")


class SplitError(ProbekitError, ValueError):
    """A split is impossible or would leak speakers/sentences across train and test."""


@dataclass(frozen=True)
class Split:
    """Row indices of a train/test split.

    Attributes
    ----------
    train, test : numpy.ndarray of int
        Row indices into the task's metadata.
    speakers_disjoint, sentences_disjoint : bool
        What the split guarantees (checked by :func:`check_leakage`).
    """

    train: np.ndarray
    test: np.ndarray
    speakers_disjoint: bool
    sentences_disjoint: bool


def _speaker_groups(meta: pd.DataFrame, group_col: str) -> pd.Series:
    if group_col not in meta.columns:
        raise SplitError(f"metadata has no column {group_col!r}; columns: {list(meta.columns)}")
    by_speaker = meta.groupby("speaker")[group_col]
    many = by_speaker.nunique(dropna=False)
    if (many > 1).any():
        spk = many.index[many > 1][0]
        labels = set(meta.loc[meta["speaker"] == spk, group_col].tolist())
        raise SplitError(f"speaker {spk} has several {group_col} labels: {sorted(labels, key=str)}")
    return by_speaker.first()


def _has_repeated_sentences(meta: pd.DataFrame) -> bool:
    if "sentence_id" not in meta.columns:
        return False
    sid = meta["sentence_id"].astype(str)
    if sid.isin(["", "nan", "None"]).all():
        return False
    return bool((meta.assign(_s=sid).groupby("_s")["speaker"].nunique() > 1).any())


def missing_sentence_ids(meta: pd.DataFrame) -> int:
    """Number of rows without a sentence id (the whole table when the column is absent)."""
    if "sentence_id" not in meta.columns:
        return len(meta)
    return int(meta["sentence_id"].astype(str).isin(["", "nan", "None"]).sum())


def sentence_status(meta: pd.DataFrame, split: Split) -> str:
    """What a split guarantees about sentences, for the results column ``sentence_split``:
    ``"disjoint"`` (no sentence on both sides), ``"shared"`` (some sentence on both sides, as
    the speaker-ID task's utterance split allows) or ``"unknown"`` (rows without a sentence
    id: sentences may repeat across the split unnoticed)."""
    if missing_sentence_ids(meta):
        return "unknown"
    return "shared" if len(_shared_values(meta, "sentence_id", split)) else "disjoint"


def _shared_values(meta: pd.DataFrame, col: str, split: Split) -> list[str]:
    """The values of ``col`` (as strings, sorted) found on both sides of ``split``."""
    codes, values = pd.factorize(meta[col].astype(str))
    both = np.intersect1d(codes[split.train], codes[split.test])
    return sorted(np.asarray(values)[both].tolist())


def content_split(meta: pd.DataFrame, group_col: str, seed: int, *, test_speakers: float = 0.5,
                  test_sentences: float = 0.5) -> Split:
    """Speaker-disjoint (and, where sentences repeat, sentence-disjoint) split.

    Within each group, ``max(1, round(test_speakers * n))`` speakers (leaving at least one for
    training) are held out, so every group is on both sides.

    Parameters
    ----------
    meta : DataFrame
        One row per example with ``speaker``, ``group_col`` and optionally ``sentence_id``.
    group_col : str
        e.g. ``"group:accent"``.

    Raises
    ------
    SplitError
        A group with fewer than 2 speakers (named), or a leak.
    """
    rng = np.random.default_rng(seed)
    spk_group = _speaker_groups(meta, group_col)
    test_spk: set = set()
    for g, spks in spk_group.groupby(spk_group):
        names = sorted(spks.index)
        if len(names) < 2:
            raise SplitError(f"group {g!r} has {len(names)} speaker ({names[0]}); a "
                             "speaker-disjoint split needs at least 2 speakers per group")
        k = min(len(names) - 1, max(1, int(round(test_speakers * len(names)))))
        test_spk.update(rng.permutation(names)[:k].tolist())
    is_test_spk = meta["speaker"].isin(test_spk).to_numpy()
    sentence_disjoint = _has_repeated_sentences(meta)
    if sentence_disjoint:
        sentences = np.array(sorted(meta["sentence_id"].astype(str).unique()))
        k = min(len(sentences) - 1, max(1, int(round(test_sentences * len(sentences)))))
        test_sent = set(rng.permutation(sentences)[:k].tolist())
        is_test_sent = meta["sentence_id"].astype(str).isin(test_sent).to_numpy()
        train = np.flatnonzero(~is_test_spk & ~is_test_sent)
        test = np.flatnonzero(is_test_spk & is_test_sent)
    else:
        train, test = np.flatnonzero(~is_test_spk), np.flatnonzero(is_test_spk)
    split = Split(train, test, speakers_disjoint=True, sentences_disjoint=sentence_disjoint)
    check_leakage(meta, split)
    missing = (set(spk_group.index) - set(meta["speaker"].iloc[test].unique())
               - set(meta["speaker"].iloc[train].unique()))
    if missing:
        log.warning("%d speaker(s) have no rows on either side after the sentence split: %s",
                    len(missing), sorted(missing)[:5])
    return split


def speaker_id_split(meta: pd.DataFrame, seed: int, *, test_fraction: float = 0.25) -> Split:
    """Same speakers on both sides, disjoint utterances (sentence-disjoint when possible).

    ``meta`` has one row per utterance (``utt_id``, ``speaker``, optional ``sentence_id``).
    Every speaker needs at least 2 utterances (named otherwise).
    """
    rng = np.random.default_rng(seed)
    counts = meta.groupby("speaker")["utt_id"].nunique()
    few = counts[counts < 2]
    if len(few):
        raise SplitError(f"speaker {few.index[0]} has {int(few.iloc[0])} utterance; speaker "
                         "identification needs at least 2 per speaker")
    if _has_repeated_sentences(meta):
        sent = meta["sentence_id"].astype(str)
        sentences = np.array(sorted(sent.unique()))
        for _ in range(20):  # a few draws: every speaker must keep both sides
            k = max(1, int(round(test_fraction * len(sentences))))
            is_test = sent.isin(set(rng.permutation(sentences)[:k].tolist())).to_numpy()
            sides = meta.assign(_t=is_test).groupby("speaker")["_t"].agg(["min", "max"])
            if (sides["min"] == False).all() and (sides["max"] == True).all():  # noqa: E712
                split = Split(np.flatnonzero(~is_test), np.flatnonzero(is_test), False, True)
                check_leakage(meta, split)
                return split
        log.info("no sentence split leaves every speaker on both sides; splitting utterances")
    is_test = np.zeros(len(meta), dtype=bool)
    for _, idx in meta.groupby("speaker").indices.items():
        utts = np.array(sorted(set(meta["utt_id"].iloc[idx])))
        k = min(len(utts) - 1, max(1, int(round(test_fraction * len(utts)))))
        chosen = set(rng.permutation(utts)[:k].tolist())
        is_test[idx] = meta["utt_id"].iloc[idx].isin(chosen).to_numpy()
    split = Split(np.flatnonzero(~is_test), np.flatnonzero(is_test), False, False)
    check_leakage(meta, split)
    return split


def check_leakage(meta: pd.DataFrame, split: Split) -> None:
    """Refuse a split that shares what it promises to keep apart.

    Always: no example on both sides, no utterance on both sides. If
    ``split.speakers_disjoint``: no speaker on both sides. If ``split.sentences_disjoint``:
    no sentence on both sides. Raises :class:`SplitError` naming the first shared item.
    """
    if np.intersect1d(split.train, split.test).size:
        raise SplitError("a row is in both the training and the test set")
    if len(split.train) == 0 or len(split.test) == 0:
        raise SplitError(f"empty side: {len(split.train)} training and {len(split.test)} test rows")
    checks = [("utt_id", "utterance")]
    if split.speakers_disjoint:
        checks.append(("speaker", "speaker"))
    if split.sentences_disjoint:
        checks.append(("sentence_id", "sentence"))
    for col, what in checks:
        if col not in meta.columns:
            continue
        shared = _shared_values(meta, col, split)
        if shared:
            raise SplitError(f"leaky split: {what} {shared[0]!r} is in both the training "
                             f"and the test set ({len(shared)} shared)")


@dataclass(frozen=True)
class TrainSet:
    """The name of a training set, as a value: ``TrainSet("single", "es")`` is ``"es"``,
    ``TrainSet("all")`` is ``"all"``, ``TrainSet("all-but", "es")`` is ``"all-but:es"``.

    :meth:`parse` is the only parser of a ``train_set`` string and ``str()`` the only
    builder. A group labelled like a pooled kind (``all``) reads as that kind.
    """

    kind: str
    group: str | None = None

    def __post_init__(self):
        if self.kind not in TRAIN_SET_KINDS:
            raise SplitError(f"unknown training-set kind {self.kind!r}; kinds: {TRAIN_SET_KINDS}")
        if (self.kind in ("single", "all-but")) != (self.group is not None and self.group != ""):
            raise SplitError(f"training-set kind {self.kind!r} "
                             + ("needs a group" if self.kind in ("single", "all-but")
                                else "takes no group") + f", got {self.group!r}")

    @classmethod
    def parse(cls, name) -> "TrainSet":
        """``"es"`` -> single group ``es``; ``"all"``, ``"all-matched"``; ``"all-but:es"``."""
        name = str(name)
        if name in ("all", "all-matched"):
            return cls(name)
        if name.startswith("all-but:"):
            return cls("all-but", name[len("all-but:"):])
        return cls("single", name)

    def __str__(self) -> str:
        if self.kind == "single":
            return str(self.group)
        return self.kind if self.group is None else f"{self.kind}:{self.group}"

    @property
    def pooled(self) -> bool:
        """Trained on several groups (``all``, ``all-matched``, ``all-but:<g>``)."""
        return self.kind != "single"


@dataclass(frozen=True)
class TrainingSet:
    """Rows of one training set and its size (recorded in the results table)."""

    name: str
    rows: np.ndarray
    n_speakers: int
    #: examples taken per speaker (a prefix of its training rows in :func:`speaker_ranks`
    #: order); None for sets drawn otherwise
    quotas: dict | None = None


def speaker_ranks(meta: pd.DataFrame) -> np.ndarray:
    """Each row's position in its speaker's fixed random order (0 = first).

    The order is a permutation of the speaker's rows (in row order) drawn from
    ``default_rng(crc32(speaker id))``: the same for every seed, training set and layer."""
    import zlib

    rank = np.empty(len(meta), dtype=np.int64)
    for spk, idx in meta.groupby("speaker", sort=False).indices.items():
        rng = np.random.default_rng(zlib.crc32(str(spk).encode("utf-8")))
        rank[idx[rng.permutation(len(idx))]] = np.arange(len(idx))
    return rank


def _quotas(k: int, caps: np.ndarray, rng) -> np.ndarray:
    """``k`` examples spread evenly over speakers with ``caps`` rows each (remainders to
    randomly chosen speakers; a speaker at its cap gives no more and the others make up)."""
    q = np.zeros(len(caps), dtype=np.int64)
    left = int(k)
    while left > 0:
        room = np.flatnonzero(q < caps)
        if not len(room):
            raise SplitError(f"cannot take {k} examples from {int(caps.sum())}")
        add = np.full(len(room), left // len(room))
        add[rng.permutation(len(room))[: left - add.sum()]] += 1
        add = np.minimum(add, caps[room] - q[room])
        q[room] += add
        left -= int(add.sum())
    return q


def _take(rows: np.ndarray, k: int, rng, rank: np.ndarray, speakers: np.ndarray, quotas: dict):
    """``k`` of ``rows``: per speaker (sorted ids) an even quota, its first rows by ``rank``."""
    spk = speakers[rows]
    names, inv = np.unique(spk, return_inverse=True)
    q = _quotas(k, np.bincount(inv, minlength=len(names)), rng)
    out = []
    for j, name in enumerate(names):
        if q[j]:
            mine = rows[inv == j]
            out.append(mine[np.argsort(rank[mine], kind="stable")[: q[j]]])
            quotas[name] = quotas.get(name, 0) + int(q[j])
    return np.concatenate(out)


def equal_training_sets(meta: pd.DataFrame, train: np.ndarray, group_col: str, seed: int,
                        kinds: tuple[str, ...] = ("single", "all", "all-but")) -> list[TrainingSet]:
    """Training sets of equal size drawn from the training rows of a split.

    Parameters
    ----------
    kinds : tuple of {"single", "all", "all-matched", "all-but"}
        ``single``: one set per group; ``all``: every group pooled; ``all-matched``: every
        group pooled but from only as many speakers as a single-group set has (spread over the
        groups as evenly as possible), so that own-group vs broad comparisons hold speaker
        diversity fixed as well as the number of examples; ``all-but``: one set per group
        leaving that group out (named ``"all-but:<group>"``).

    Returns
    -------
    list of TrainingSet
        Every set has ``n = min`` available examples; single-group sets and ``all-matched``
        all have the same number of speakers (the smallest group's training speakers).
    """
    unknown = [k for k in kinds if k not in TRAIN_SET_KINDS]
    if unknown:
        raise SplitError(f"unknown training-set kind(s) {unknown}; kinds: {TRAIN_SET_KINDS}")
    rng = np.random.default_rng(seed + 7919)  # decorrelated from the split's draw
    tm = meta.iloc[train]
    groups = sorted(tm[group_col].astype(str).unique())
    by_group_spk = {g: sorted(tm.loc[tm[group_col].astype(str) == g, "speaker"].unique()) for g in groups}
    n_spk = min(len(v) for v in by_group_spk.values())
    chosen_spk = {g: set(rng.permutation(v)[:n_spk].tolist()) for g, v in by_group_spk.items()}
    rows_of = {g: train[(tm[group_col].astype(str) == g).to_numpy() & tm["speaker"].isin(chosen_spk[g]).to_numpy()]
               for g in groups}
    members: dict[str, list[str]] = {}
    if "single" in kinds:
        members.update({g: [g] for g in groups})
    if "all" in kinds and len(groups) > 1:
        members["all"] = groups
    if "all-but" in kinds and len(groups) > 2:
        members.update({str(TrainSet("all-but", g)): [h for h in groups if h != g] for g in groups})
    matched = None
    if "all-matched" in kinds and len(groups) > 1:
        # n_spk speakers over every group, round-robin from a random group order
        order = [g for g in rng.permutation(groups)]
        pick, queues = [], {g: list(rng.permutation(sorted(chosen_spk[g]))) for g in groups}
        while len(pick) < n_spk:
            for g in order:
                if queues[g] and len(pick) < n_spk:
                    pick.append((g, queues[g].pop()))
        spk = {s for _, s in pick}
        matched = train[tm["speaker"].isin(spk).to_numpy()]
        members["all-matched"] = ["__matched__"]
        rows_of = dict(rows_of, __matched__=matched)
    if not members:
        raise SplitError(f"no training set of kinds {kinds} can be formed from groups {groups}")
    n = min(sum(len(rows_of[g]) for g in m) for m in members.values())
    if n < 2:
        raise SplitError(f"training sets would hold {n} example(s); the split left too little data")
    sets = []
    rank, speakers = speaker_ranks(meta), meta["speaker"].astype(str).to_numpy()
    for name, m in members.items():
        # Even share per member group; the remainder goes to randomly chosen groups.
        share = np.full(len(m), n // len(m))
        share[rng.permutation(len(m))[: n - share.sum()]] += 1
        quotas: dict = {}
        if any(share[i] > len(rows_of[g]) for i, g in enumerate(m)):
            # A small group cannot give its even share: take all of it, spread the rest.
            pool = np.concatenate([rows_of[g] for g in m])
            picked = _take(pool, n, rng, rank, speakers, quotas)
        else:
            picked = np.concatenate([_take(rows_of[g], share[i], rng, rank, speakers, quotas)
                                     for i, g in enumerate(m)])
        picked = np.sort(picked)
        sets.append(TrainingSet(name, picked, len(quotas), quotas))
    return sets
