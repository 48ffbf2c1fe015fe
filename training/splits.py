"""Speaker- and sentence-disjoint train / validation / test splits for fine-tuning.

:func:`finetune_splits` makes them for any corpus whose utterances carry ``sentence_id``
(speaker-disjoint only, with a note saying so, when they do not); :class:`FinetuneSplit`
holds them and says which ids are on which side (:meth:`FinetuneSplit.key`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from probekit.corpus.seen import SeenIds
from probekit.errors import ProbekitError
from training.config import TrainConfig
from training.runkey import settings_key, split_sides

__all__ = ["FinetuneSplit", "FinetuneError", "finetune_splits"]

log = logging.getLogger(__name__)


class FinetuneError(ProbekitError, ValueError):
    """A fine-tuning split or run cannot be made as asked (the message says why)."""


@dataclass(frozen=True)
class FinetuneSplit:
    """Train / validation / test corpora for fine-tuning.

    ``train`` and ``val`` hold only the trained groups; ``test`` holds held-out speakers of
    *every* group. All three are speaker-disjoint; when ``sentence_disjoint`` they also share
    no sentence. ``note`` says what the split guarantees, for the report.
    """

    train: object
    val: object | None
    test: object
    sentence_disjoint: bool
    train_groups: tuple
    note: str = ""

    def seen(self) -> SeenIds:
        """What a model trained (and validated) on this split saw."""
        return SeenIds.from_corpora(self.train, self.val, note="fine-tuning train + validation")

    def sides(self) -> dict:
        """Digests of the ids on each side (``train``, ``val``, ``test``)."""
        return split_sides(self.train, self.val, self.test)

    def key(self) -> str:
        """12-hex key of which utterance is on which side (and the trained groups)."""
        return settings_key({"sides": self.sides(), "train_groups": list(self.train_groups)})


def _sentence_design(corpus) -> str:
    """``"repeated"`` (sentences shared by speakers: split them), ``"unique"`` (every sentence
    read once: speaker-disjoint is sentence-disjoint) or ``"none"`` (no sentence ids)."""
    by: dict = {}
    for u in corpus:
        if getattr(u, "sentence_id", None) in (None, ""):
            return "none"
        by.setdefault(str(u.sentence_id), set()).add(u.speaker)
    return "repeated" if any(len(v) > 1 for v in by.values()) else "unique"


def _components(corpus) -> list[tuple[set, set]]:
    """Connected components of the speaker-sentence reading graph: (speakers, sentences)."""
    parent: dict = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u in corpus:
        a, b = find(("spk", u.speaker)), find(("sent", str(u.sentence_id)))
        if a != b:
            parent[a] = b
    comps: dict = {}
    for x in list(parent):
        comps.setdefault(find(x), (set(), set()))[0 if x[0] == "spk" else 1].add(x[1])
    return sorted(comps.values(), key=lambda c: sorted(c[1]))


def finetune_splits(corpus, *, attribute: str = "accent", train_groups: Sequence[str] | None = None,
                    test_speakers: float = TrainConfig.test_speakers,
                    val_speakers: int = TrainConfig.val_speakers,
                    val_utterances: int | None = None, seed: int = 0) -> FinetuneSplit:
    """Speaker- and sentence-disjoint train / validation / test splits.

    Test speakers come from *every* group, train and validation speakers from the trained
    groups only. When sentences repeat across speakers (``sentence_id``), whole connected
    blocks of the speaker-sentence reading graph go to one side (in random order with
    ``seed``: test until ``test_speakers`` of the speakers are test speakers, then validation
    until every trained group has ``val_speakers``), so no sentence is both trained on and
    tested and no utterance is dropped. When the reading graph is one block (e.g. a sentence
    every speaker reads, as in L2-ARCTIC), speakers are split within group and the sentences
    into test / validation (20 %) / training pools too; each side keeps its own speakers
    reading its own sentences (the other utterances are in no set). Without ``sentence_id`` the split is speaker-disjoint
    only and ``note`` says so. ``val_utterances`` caps validation utterances per group
    (validation transcribes them at every evaluation). A requested validation set that
    comes out empty (e.g. a corpus of two sentence blocks) is warned about.

    Raises
    ------
    FinetuneError
        An unknown train group, or a group left without test (or train) speakers (named).
    """
    rng = np.random.default_rng(seed)
    spk_group = {str(k): v for k, v in corpus.speaker_groups(attribute).items()}
    groups = sorted(set(spk_group.values()))
    train_groups = tuple(train_groups) if train_groups else tuple(groups)
    bad = sorted(set(train_groups) - set(groups))
    if bad:
        raise FinetuneError(f"train group(s) {bad} not in the corpus' {attribute} groups {groups}")
    design = _sentence_design(corpus)
    comps = _components(corpus) if design == "repeated" else []
    test_spk, val_spk, pools = set(), set(), None
    if len(comps) >= 2:
        order = [comps[i] for i in rng.permutation(len(comps))]
        target = test_speakers * len(spk_group)
        i = 0
        while i < len(order) and len(test_spk) < target:
            test_spk |= order[i][0]
            i += 1
        need = {g: val_speakers for g in train_groups}
        while i < len(order) - 1 and any(v > 0 for v in need.values()):
            spk = order[i][0]
            val_spk |= {s for s in spk if spk_group[s] in train_groups}
            for s in spk:
                need[spk_group[s]] = need.get(spk_group[s], 0) - 1
            i += 1
        how = "whole sentence blocks of the reading graph"
    else:
        for g in groups:
            names = sorted(s for s, gg in spk_group.items() if gg == g)
            perm = [str(s) for s in rng.permutation(names)]
            k = min(len(names) - 1, max(1, int(round(test_speakers * len(names)))))
            test_spk.update(perm[:k])
            if g in train_groups and val_speakers:
                rest = perm[k:]
                val_spk.update(rest[:min(val_speakers, len(rest) - 1)])
        if design == "repeated":
            # one block (e.g. every speaker reads the same prompts, as in L2-ARCTIC): the
            # sentences are split into test / validation / training pools too, and each side
            # keeps only its own speakers reading its own sentences
            sents = [str(x) for x in rng.permutation(sorted({str(u.sentence_id) for u in corpus}))]
            if len(sents) < 3:
                raise FinetuneError(f"{len(sents)} distinct sentences: a sentence-disjoint split "
                                    "needs at least 3 (test, validation, training)")
            n_t = min(len(sents) - 2, max(1, int(round(test_speakers * len(sents)))))
            n_v = max(1, int(round(0.2 * len(sents)))) if val_spk else 0
            n_v = min(n_v, len(sents) - n_t - 1)
            pools = {"test": set(sents[:n_t]), "val": set(sents[n_t:n_t + n_v]),
                     "train": set(sents[n_t + n_v:])}
        how = "speakers within group"
    train_spk = {s for s, g in spk_group.items()
                 if g in train_groups and s not in test_spk and s not in val_spk}
    for g in groups:
        if not any(spk_group[s] == g for s in test_spk):
            raise FinetuneError(f"group {g!r} has no test speaker in the fine-tuning split "
                                f"({how}); raise test_speakers or use another seed")
        if g in train_groups and not any(spk_group[s] == g for s in train_spk):
            raise FinetuneError(f"trained group {g!r} has no training speaker left; lower "
                                "test_speakers / val_speakers or use another seed")

    def pick(spk, side, cap=None):
        ids, per = [], {}
        for u in corpus:
            if u.speaker in spk and (pools is None or str(u.sentence_id) in pools[side]):
                g = spk_group[u.speaker]
                if cap is None or per.get(g, 0) < cap:
                    ids.append(u.id)
                    per[g] = per.get(g, 0) + 1
        return corpus.filter(ids=ids) if ids else None

    train, val, test = (pick(train_spk, "train"), pick(val_spk, "val", val_utterances),
                        pick(test_spk, "test"))
    if test is None:
        raise FinetuneError("the test split is empty: every test sentence was also read by a "
                            "training speaker")
    if val_speakers and val is None:
        log.warning("the requested validation set is empty (%d speaker(s) per trained group "
                    "asked; %s): no model selection will happen, the last step is kept. Use "
                    "another seed, a smaller test_speakers or a corpus with more sentence "
                    "blocks", val_speakers, how)
    sizes = (f"{len(train.speakers)} train, {len(val.speakers) if val else 0} validation and "
             f"{len(test.speakers)} test speakers")
    if design == "none":
        note = (f"speaker-disjoint only ({sizes}): the corpus has no sentence_id, so test "
                "sentences may also occur in training")
    else:
        note = (f"speaker- and sentence-disjoint ({how}): {sizes}; no test sentence was read "
                "by a training or validation speaker")
    return FinetuneSplit(train, val, test, design != "none", train_groups, note)
