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
the speakers and sentences it saw* (:class:`probekit.corpus.seen.SeenIds`, the leakage guard
of before/after comparisons), and transcribes the test split. A finished run folder is reused.
The before/after WER table with speaker-bootstrap intervals is
``wer_table`` of the bias package's ``wer`` module (the analysis, above training).
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

import pandas as pd

from probekit.atomic import to_csv, write_json
from probekit.corpus.seen import SEEN_FILE, SeenIds
from probekit.jsonfile import read_json_object
from training.runkey import (base_fingerprint, run_settings, settings_diff, settings_key,
                             transcripts_settings)
from training.methods import available_methods, get_method
from training.splits import FinetuneError, FinetuneSplit, finetune_splits

__all__ = ["FinetuneSplit", "FinetuneResult", "FinetuneError", "finetune_splits", "finetune",
           "term_shares", "METHODS"]

log = logging.getLogger(__name__)

#: Adapter method names (:mod:`training.methods`, the one table): plain LoRA, or MAS-LoRA
#: with one encoder expert per trained group. Kept for callers; read from the registry.
METHODS = tuple(available_methods())
DONE = "finetune.json"
#: The settings of the run a folder holds, written before training starts, so that a run
#: killed before its first checkpoint is resumed in its own folder, not diverted from it.
STARTED = "run_settings.json"


@dataclass
class FinetuneResult:
    """An adapted model and its evaluation.

    ``model`` carries its adapters (freshly trained) or is the merged model (a reused run);
    ``merged_dir`` opens with ``probekit.encoders.load_encoder``; ``transcripts`` /
    ``wer`` are the test split's (None when not evaluated, and on every process but the
    main one under DDP: saving and test decoding happen once, on the main process).
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
             evaluate: bool = True, max_new_tokens: int | None = None, name: str | None = None,
             progress: bool = True) -> FinetuneResult:
    """Fine-tune adapters of ``model`` on ``corpus`` and evaluate them on held-out speakers.

    Parameters
    ----------
    corpus : probekit.corpus.Corpus
    split : FinetuneSplit, optional
        Default ``finetune_splits(corpus, attribute=..., train_groups=...)`` with
        ``config.test_speakers``, ``config.val_speakers`` and ``config.seed``.
    method : {"lora", "mas-lora"}
        MAS-LoRA gets one encoder expert per trained group.
    objective : str
        A registered objective (``erm``, ``sd``, ``group_dro``, ``irm``, ``fused``) with
        ``objective_args`` as its hyperparameters.
    config : training.config.TrainConfig
        ``out_dir`` is the run folder: ``final/`` (adapters), ``merged/`` (merged model),
        ``transcripts.csv`` and ``finetune.json``; both model folders hold ``seen_ids.json``.
    adapter : dict, optional
        :class:`~training.adapters.AdapterConfig` fields (``r``, ``lora_alpha``, ``targets``, ...).
    evaluate : bool
        Transcribe ``split.test`` (greedy, ``max_new_tokens``: default the model's limit
        minus the prompt) and report WER by group. A given ``max_new_tokens`` also caps
        validation decoding unless ``config.eval_max_new_tokens`` is set.

    The run is keyed by everything that determines its weights (:mod:`training.runkey`):
    a folder holding a finished run of the same key is reused (no training; the adapters of
    ``final/`` are loaded, experts included), and its test transcripts only when they were
    decoded from the same ids with the same settings. A folder holding another run (or an
    interrupted one of another key) is left alone and the run goes to ``<out_dir>-<key>``
    (``FinetuneResult.out_dir``; a warning names what differs).

    Another process training into ``config.out_dir`` is refused (``LockHeldError`` naming it;
    a killed one's lock is taken over); the main process of a multi-process run holds the lock.
    """
    from probekit.locks import folder_lock
    from probekit.distributed import rank_and_world
    kw = dict(split=split, method=method, objective=objective, config=config, model=model,
              objective_args=objective_args, adapter=adapter, attribute=attribute,
              train_groups=train_groups, evaluate=evaluate, max_new_tokens=max_new_tokens,
              name=name, progress=progress)
    if rank_and_world()[0] != 0:  # a peer of a multi-process run: rank 0 holds the lock
        return _finetune(corpus, **kw)
    with folder_lock(config.out_dir, what="training run", wait=False):
        return _finetune(corpus, **kw)


def _finetune(corpus, *, split, method, objective, config, model, objective_args, adapter,
              attribute, train_groups, evaluate, max_new_tokens, name, progress) -> FinetuneResult:
    from training.adapters import AdapterConfig, inject_adapters, load_adapters, save_adapters
    from training.encoder import save_adapted_model
    from training.evaluate import transcribe, wer_report
    from training.objectives import build_objective
    from training.trainer import Trainer

    if method not in available_methods():
        raise FinetuneError(f"method {method!r}: use one of {available_methods()}")
    attribute = attribute or config.attribute
    if split is None:
        split = finetune_splits(corpus, attribute=attribute, train_groups=train_groups,
                                test_speakers=config.test_speakers,
                                val_speakers=config.val_speakers, seed=config.seed)
    name = name or f"{method}-{objective}"
    seen = split.seen()
    experts = get_method(method).experts(split.train_groups)
    acfg = AdapterConfig(**{**(adapter or {}), "experts": experts})
    obj = build_objective(objective, **(objective_args or {}))
    cfg = replace(config, attribute=attribute)
    if cfg.eval_max_new_tokens is None and max_new_tokens is not None:
        cfg = replace(cfg, eval_max_new_tokens=max_new_tokens)   # validation decodes alike
    base = base_fingerprint(str(model))
    settings = run_settings(sides=split.sides(), config=cfg, method=method, objective=objective,
                            objective_args=objective_args or {}, objective_repr=repr(obj), adapter=acfg.to_dict(), base=base,
                            attribute=attribute, train_groups=split.train_groups)
    key = settings_key(settings)
    from accelerate import PartialState

    main = PartialState().is_main_process   # DDP (accelerate launch): rank 0 saves/decodes
    out = _run_folder(Path(config.out_dir), settings, key)
    cfg = replace(cfg, out_dir=str(out), progress=progress and config.progress)
    adapters_dir, merged_dir = out / "final", out / "merged"
    done = out / DONE
    t0 = time.perf_counter()
    reused = False
    if done.is_file() and _read_record(done).get("settings") == settings \
            and (merged_dir / "config.json").is_file() and (adapters_dir / SEEN_FILE).is_file():
        # the adapters, not the merged model: accent-known MAS-LoRA evaluation needs experts
        mdl, proc = load_base(model)
        mdl = load_adapters(mdl, adapters_dir).eval()
        reused = True
    else:
        if main:
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / STARTED, {"settings": settings})
        mdl, proc = load_base(model)
        inject_adapters(mdl, acfg, seed=config.seed)
        trainer = Trainer(mdl, proc, obj, split.train, cfg, val=split.val,
                          identity={"base": base, "run": settings})
        mdl = trainer.fit().eval()
        if main:   # under DDP the other processes hold the same adapters: one writer
            save_adapters(mdl, adapters_dir)
            seen.save(adapters_dir)
            save_adapted_model(mdl, proc, merged_dir, seen=seen,
                               info={"objective": repr(obj), "method": method, "run_key": key,
                                     "train_groups": list(split.train_groups),
                                     "split": split.note})
        trainer.acc.wait_for_everyone()
    transcripts = rep = None
    record = _read_record(done) if reused else {}
    if evaluate and main:   # the test set is decoded once, by the main process
        path = out / "transcripts.csv"
        ev = transcripts_settings(model=key, corpus=split.test, max_new_tokens=max_new_tokens,
                                  language=config.language, decode_task=config.decode_task)
        if reused and path.is_file() and record.get("transcripts") == ev:
            transcripts = pd.read_csv(path, keep_default_na=False)
        else:
            transcripts = transcribe(mdl, proc, split.test, attribute=attribute,
                                     max_new_tokens=max_new_tokens, progress=progress,
                                     language=config.language, decode_task=config.decode_task)
            to_csv(transcripts, path, index=False)
            record["transcripts"] = ev
        rep = wer_report(transcripts, attribute, groups=split.train_groups)
    seconds = time.perf_counter() - t0
    if not main:
        return FinetuneResult(name, mdl, proc, out, adapters_dir, merged_dir, seen, None, None,
                              seconds, reused, settings)
    if not reused:
        record.update({"settings": settings, "key": key, "seconds": round(seconds, 1),
                       "split": split.note, "term_shares": term_shares(out / "log.jsonl")})
    write_json(done, record)  # last: the run is done once it is there
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


#: The schema of ``finetune.json`` (the record of a finished run) where it is read.
RECORD_SCHEMA = {"settings": dict, "transcripts": dict, "key": str}


def _read_record(path: Path) -> dict:
    return read_json_object(path, "finished training run record", RECORD_SCHEMA)


def _held_settings(out: Path) -> dict | None:
    """The settings of the run ``out`` holds; None when it holds none; ``{}`` when it holds
    something whose settings cannot be read (an older layout)."""
    if (out / DONE).is_file():
        return _read_record(out / DONE).get("settings") or {}
    if (out / "checkpoint.pt").is_file():
        from training.checkpoint import load_checkpoint  # never unpickles a stranger's file

        state = load_checkpoint(out / "checkpoint.pt")
        ident = state.get("identity")
        return (ident.get("run") if isinstance(ident, dict) else None) or {}
    if (out / STARTED).is_file():  # killed before its first checkpoint
        return read_json_object(out / STARTED, "training run settings", {"settings": dict},
                                required=("settings",))["settings"]
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
