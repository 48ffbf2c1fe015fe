"""One call from a corpus to an adapted Whisper model and its evaluation.

    split = finetune_splits(corpus, train_groups=["es", "it"])
    res = finetune(corpus, split=split, method="mas-lora", objective="erm",
                   config=TrainConfig(out_dir="runs/mas", steps=200))
    res.merged_dir          # load_encoder(res.merged_dir) probes it like any Whisper model
    res.wer.by_group        # WER of the held-out test speakers

:func:`finetune_splits` makes speaker- *and* sentence-disjoint train / validation / test
splits for any corpus whose utterances carry ``sentence_id`` (speaker-disjoint only, with a
note saying so, when they do not). :func:`finetune` injects the adapters, trains with
:class:`~training.trainer.Trainer`, saves the adapters and the merged model *with the ids of
the speakers and sentences it saw* (:class:`probekit.bias.compare.SeenIds`, the leakage guard
of before/after comparisons), and transcribes the test split. A finished run folder is reused.
:func:`wer_table` is the before/after WER table with speaker-bootstrap intervals.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from probekit.bias.compare import SEEN_FILE, SeenIds, paired_change
from probekit.bias.resample import percentile_ci, speaker_bootstrap_indices
from probekit.errors import ProbekitError
from training.runkey import (base_fingerprint, run_settings, settings_diff, settings_key,
                             split_sides, transcripts_settings)

__all__ = ["FinetuneSplit", "FinetuneResult", "FinetuneError", "finetune_splits", "finetune",
           "speaker_word_errors", "wer_table", "term_shares", "METHODS"]

log = logging.getLogger(__name__)

#: Adapter methods: plain LoRA, or MAS-LoRA with one encoder expert per trained group.
METHODS = ("lora", "mas-lora")
DONE = "finetune.json"


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
                    test_speakers: float = 0.5, val_speakers: int = 1,
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
    (validation transcribes them at every evaluation).

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
    sizes = (f"{len(train.speakers)} train, {len(val.speakers) if val else 0} validation and "
             f"{len(test.speakers)} test speakers")
    if design == "none":
        note = (f"speaker-disjoint only ({sizes}): the corpus has no sentence_id, so test "
                "sentences may also occur in training")
    else:
        note = (f"speaker- and sentence-disjoint ({how}): {sizes}; no test sentence was read "
                "by a training or validation speaker")
    return FinetuneSplit(train, val, test, design != "none", train_groups, note)


@dataclass
class FinetuneResult:
    """An adapted model and its evaluation.

    ``model`` carries its adapters (freshly trained) or is the merged model (a reused run);
    ``merged_dir`` opens with ``probekit.encoders.load_encoder``; ``transcripts`` /
    ``wer`` are the test split's (None when not evaluated).
    """

    name: str
    model: object
    processor: object
    out_dir: Path
    adapters_dir: Path
    merged_dir: Path
    seen: SeenIds
    transcripts: pd.DataFrame | None = None
    wer: object | None = None
    seconds: float = 0.0
    reused: bool = False
    info: dict = field(default_factory=dict)


@functools.lru_cache(maxsize=2)
def _load_pretrained(model_name: str):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from probekit.encoders.weights import resolve_whisper

    folder = Path(model_name)
    if not folder.is_dir():
        folder = resolve_whisper(model_name, sources=("local", "hf-cache", "package"))
    return (WhisperForConditionalGeneration.from_pretrained(folder).eval(),
            WhisperProcessor.from_pretrained(folder))


def load_base(model_name: str):
    """A fresh copy of a Whisper model (read from disk once per process) and its processor."""
    model, proc = _load_pretrained(str(model_name))
    return copy.deepcopy(model), proc


def finetune(corpus, *, split: FinetuneSplit | None = None, method: str = "lora",
             objective: str = "erm", config, model: str = "whisper-tiny.en",
             objective_args: dict | None = None, adapter: dict | None = None,
             attribute: str | None = None, train_groups: Sequence[str] | None = None,
             evaluate: bool = True, max_new_tokens: int = 96, name: str | None = None,
             progress: bool = True) -> FinetuneResult:
    """Fine-tune adapters of ``model`` on ``corpus`` and evaluate them on held-out speakers.

    Parameters
    ----------
    corpus : probekit.corpus.Corpus
    split : FinetuneSplit, optional
        Default ``finetune_splits(corpus, attribute=..., train_groups=..., seed=config.seed)``.
    method : {"lora", "mas-lora"}
        MAS-LoRA gets one encoder expert per trained group.
    objective : str
        A registered objective (``erm``, ``sd``, ``group_dro``, ``irm``, ``fused``) with
        ``objective_args`` as its hyperparameters.
    config : training.trainer.TrainConfig
        ``out_dir`` is the run folder: ``final/`` (adapters), ``merged/`` (merged model),
        ``transcripts.csv`` and ``finetune.json``; both model folders hold ``seen_ids.json``.
    adapter : dict, optional
        :class:`~training.adapters.AdapterConfig` fields (``r``, ``alpha``, ``targets``, ...).
    evaluate : bool
        Transcribe ``split.test`` (greedy, ``max_new_tokens``) and report WER by group.

    The run is keyed by everything that determines its weights (:mod:`training.runkey`):
    a folder holding a finished run of the same key is reused (no training; the adapters of
    ``final/`` are loaded, experts included), and its test transcripts only when they were
    decoded from the same ids with the same settings. A folder holding another run (or an
    interrupted one of another key) is left alone and the run goes to ``<out_dir>-<key>``
    (``FinetuneResult.out_dir``; a warning names what differs).
    """
    from training.adapters import AdapterConfig, inject_adapters, load_adapters, save_adapters
    from training.encoder import save_adapted_model
    from training.evaluate import transcribe, wer_report
    from training.objectives import build_objective
    from training.trainer import Trainer

    if method not in METHODS:
        raise FinetuneError(f"method {method!r}: use one of {list(METHODS)}")
    attribute = attribute or config.attribute
    if split is None:
        split = finetune_splits(corpus, attribute=attribute, train_groups=train_groups,
                                seed=config.seed)
    name = name or f"{method}-{objective}"
    seen = split.seen()
    experts = tuple(split.train_groups) if method == "mas-lora" else ()
    acfg = AdapterConfig(**{**(adapter or {}), "experts": experts})
    obj = build_objective(objective, **(objective_args or {}))
    cfg = replace(config, attribute=attribute)
    base = base_fingerprint(str(model))
    settings = run_settings(sides=split.sides(), config=cfg, method=method, objective=objective,
                            objective_args=objective_args or {}, objective_repr=repr(obj), adapter=acfg.to_dict(), base=base,
                            attribute=attribute, train_groups=split.train_groups)
    key = settings_key(settings)
    out = _run_folder(Path(config.out_dir), settings, key)
    cfg = replace(cfg, out_dir=str(out), progress=progress and config.progress)
    adapters_dir, merged_dir = out / "final", out / "merged"
    done = out / DONE
    t0 = time.perf_counter()
    reused = False
    if done.is_file() and json.loads(done.read_text()).get("settings") == settings \
            and (merged_dir / "config.json").is_file() and (adapters_dir / SEEN_FILE).is_file():
        # the adapters, not the merged model: accent-known MAS-LoRA evaluation needs experts
        mdl, proc = load_base(model)
        mdl = load_adapters(mdl, adapters_dir).eval()
        reused = True
    else:
        mdl, proc = load_base(model)
        inject_adapters(mdl, acfg, seed=config.seed)
        trainer = Trainer(mdl, proc, obj, split.train, cfg, val=split.val,
                          identity={"base": base, "run": settings})
        mdl = trainer.fit().eval()
        save_adapters(mdl, adapters_dir)
        seen.save(adapters_dir)
        save_adapted_model(mdl, proc, merged_dir, seen=seen,
                           info={"objective": repr(obj), "method": method, "run_key": key,
                                 "train_groups": list(split.train_groups), "split": split.note})
    transcripts = rep = None
    record = json.loads(done.read_text()) if reused else {}
    if evaluate:
        path = out / "transcripts.csv"
        ev = transcripts_settings(model=key, corpus=split.test, max_new_tokens=max_new_tokens,
                                  language=config.language, task=config.task)
        if reused and path.is_file() and record.get("transcripts") == ev:
            transcripts = pd.read_csv(path, keep_default_na=False)
        else:
            transcripts = transcribe(mdl, proc, split.test, attribute=attribute,
                                     max_new_tokens=max_new_tokens, progress=progress,
                                     language=config.language, task=config.task)
            transcripts.to_csv(path, index=False)
            record["transcripts"] = ev
        rep = wer_report(transcripts, attribute, groups=split.train_groups)
    seconds = time.perf_counter() - t0
    if not reused:
        record.update({"settings": settings, "key": key, "seconds": round(seconds, 1),
                       "split": split.note, "term_shares": term_shares(out / "log.jsonl")})
    done.write_text(json.dumps(record, indent=1) + "\n")
    return FinetuneResult(name, mdl, proc, out, adapters_dir, merged_dir, seen, transcripts, rep,
                          seconds, reused, settings)


def term_shares(log_jsonl: Path) -> dict:
    """The weighted terms' shares of the loss and of its gradient norm (``share_*``,
    ``gshare_*``) at the first and last step of a run's ``log.jsonl`` (``{}``: none logged,
    e.g. a single-term objective)."""
    if not Path(log_jsonl).is_file():
        return {}
    rows = [json.loads(x) for x in Path(log_jsonl).read_text().splitlines() if x.strip()]
    rows = [r for r in rows if any(k.startswith("gshare_") for k in r)]
    pick = lambda r: {k: round(v, 4) for k, v in r.items() if k.startswith(("share_", "gshare_"))}  # noqa: E731
    return {f"step {r['step']}": pick(r) for r in (rows[:1] + rows[-1:] if rows else [])}


def _held_settings(out: Path) -> dict | None:
    """The settings of the run ``out`` holds; None when it holds none; ``{}`` when it holds
    something whose settings cannot be read (an older layout)."""
    if (out / DONE).is_file():
        return json.loads((out / DONE).read_text()).get("settings") or {}
    if (out / "checkpoint.pt").is_file():
        import torch

        state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
        return state.get("identity", {}).get("run") or {}
    if any((out / x).exists() for x in ("final", "merged", "best", "log.jsonl")):
        return {}
    return None


def _run_folder(out: Path, settings: dict, key: str) -> Path:
    """``out``, unless it holds a run of other settings: then ``<out>-<key>`` (a warning names
    what differs), so another run's checkpoint is never resumed nor its model reused."""
    held = _held_settings(out)
    if held is None or held == settings:
        return out
    why = settings_diff(held, settings) if held else ["the folder's settings are unknown"]
    alt = out.with_name(f"{out.name}-{key}")
    other = _held_settings(alt)
    if other is not None and other != settings:
        raise FinetuneError(f"{out} and {alt} hold runs of other settings; choose another out_dir")
    log.warning("%s holds a run of other settings (%s); this run goes to %s", out,
                "; ".join(why[:6]) + ("; ..." if len(why) > 6 else ""), alt)
    return alt


# -- WER with speaker-bootstrap intervals --------------------------------------------------
def speaker_word_errors(transcripts: pd.DataFrame, attribute: str = "accent") -> pd.DataFrame:
    """Per-speaker word errors and reference words: ``speaker, <attribute>, errors, words``."""
    from training.evaluate import _wer

    rows = []
    for (spk, g), df in transcripts.groupby(["speaker", attribute], sort=True):
        _, err, n = _wer(df["ref_norm"].tolist(), df["hyp_norm"].tolist())
        rows.append({"speaker": str(spk), attribute: g, "errors": err, "words": n})
    return pd.DataFrame(rows)


def wer_table(transcripts: dict[str, pd.DataFrame], *, attribute: str = "accent",
              trained: Sequence[str] | None = None, reference: str | None = None,
              n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """WER (%) by group, macro-WER and max - min gap per model, with speaker-bootstrap CIs.

    ``transcripts`` maps a model name to its transcripts of the *same* test utterances
    (refused, naming the models, when their utterance ids differ).
    Macro and gap are over ``trained`` groups (default all). Intervals resample speakers
    within group (percentile, expanded for few speakers). With ``reference`` (e.g. the base
    model), ``Δ macro`` and ``Δ gap`` are the paired change against it with the paired
    speaker bootstrap and swap test of :func:`probekit.bias.compare.paired_change`.

    Returns a long table: ``model, statistic, estimate, ci_low, ci_high, p_value,
    n_speakers`` (WER in %).
    """
    ids = {m: set(t["id"].astype(str)) for m, t in transcripts.items()}
    ref_name, ref_ids = next(iter(ids.items()))
    for m, s in ids.items():
        if s != ref_ids:
            raise FinetuneError(
                f"{m} and {ref_name} were not evaluated on the same utterances ({len(s - ref_ids)}"
                f" only in {m}, {len(ref_ids - s)} only in {ref_name}); a before/after table "
                "pairs the same test utterances: re-transcribe one of them")
    counts = {m: speaker_word_errors(t, attribute) for m, t in transcripts.items()}
    first = next(iter(counts.values()))
    spk = first["speaker"].to_numpy()
    grp = first[attribute].astype(str).to_numpy()
    trained = list(trained) if trained else sorted(set(grp))
    rows = []
    rng = np.random.default_rng(seed)
    codes = np.unique(grp, return_inverse=True)[1]
    idx = speaker_bootstrap_indices(codes, n_boot, rng)
    names = sorted(set(grp))
    sel = np.isin(names, trained)
    for m, c in counts.items():
        c = c.set_index("speaker").reindex(spk)
        if c["words"].isna().any():
            raise FinetuneError(f"{m} was not evaluated on the same speakers as the others")
        K, N = c["errors"].to_numpy(float), c["words"].to_numpy(float)
        onehot = np.eye(len(names))[codes]
        e = 100 * (K @ onehot) / (N @ onehot)
        eb = 100 * (K[idx] @ onehot) / (N[idx] @ onehot)       # (B, G)
        stats = {f"group:{g}": (e[j], eb[:, j], int((grp == g).sum())) for j, g in enumerate(names)}
        stats["macro"] = (e[sel].mean(), eb[:, sel].mean(1), int(np.isin(grp, trained).sum()))
        stats["gap"] = (e[sel].max() - e[sel].min(), eb[:, sel].max(1) - eb[:, sel].min(1),
                        int(min((grp == g).sum() for g in trained)))
        stats["overall"] = (100 * K.sum() / N.sum(), 100 * K[idx].sum(1) / N[idx].sum(1), len(spk))
        for k, (est, reps, n) in stats.items():
            lo, hi = percentile_ci(reps, alpha, n_clusters=n)
            rows.append({"model": m, "statistic": k, "estimate": est, "ci_low": lo,
                         "ci_high": hi, "p_value": np.nan, "n_speakers": n})
        if reference is not None and m != reference:
            r = counts[reference].set_index("speaker").reindex(spk)
            keep = np.isin(grp, trained)
            pc = paired_change(r["errors"].to_numpy(float)[keep], r["words"].to_numpy(float)[keep],
                               K[keep], N[keep], grp[keep], statistics=("macro", "difference"),
                               n_boot=n_boot, n_perm=n_boot, alpha=alpha, seed=seed).table
            for s, label in (("macro", "Δ macro"), ("difference", "Δ gap")):
                x = pc[pc["statistic"] == s].iloc[0]
                rows.append({"model": m, "statistic": label, "estimate": 100 * x["change"],
                             "ci_low": 100 * x["ci_low"], "ci_high": 100 * x["ci_high"],
                             "p_value": x["p_value"], "n_speakers": int(x["n_speakers"])})
    return pd.DataFrame(rows)
