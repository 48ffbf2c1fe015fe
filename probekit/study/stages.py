"""The fine-tuning stages of a study with a ``[training]`` section (:func:`train_stage`) and
its before/after comparison (:func:`compare_stage`), called by :func:`probekit.study.run_study`."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from probekit.atomic import to_csv, write_json
from probekit.cliutil import slug
from probekit.jsonfile import BadFileError, read_json_object
from probekit.study.config import StudyConfig

__all__ = ["train_config", "train_stage", "compare_stage"]

log = logging.getLogger(__name__)




def _cache_key(path: Path) -> dict | None:
    """The settings a cached file was computed with (``None``: damaged, so recomputed)."""
    try:
        return read_json_object(path, "cache key")
    except BadFileError as exc:
        log.warning("%s; computing it again", exc)
        return None


def train_config(config: StudyConfig, out_dir, *, progress: bool = True,
                 device: str | None = None):
    """The :class:`training.config.TrainConfig` of one method of the ``[training]`` section:
    its settings over the library defaults, the study's group attribute, and the device
    (``device``, else the study's): ``cpu`` forces the CPU, other values leave placement to
    accelerate, as ``probekit train --device`` does."""
    from training.config import TrainConfig

    tr = config.training
    return TrainConfig(out_dir=str(out_dir), steps=tr.steps, batch_size=tr.batch_size, lr=tr.lr,
                       eval_every=tr.eval_every, save_every=max(1, tr.steps // 3), seed=tr.seed,
                       attribute=config.group_attribute, progress=progress,
                       eval_max_new_tokens=tr.max_new_tokens, test_speakers=tr.test_speakers,
                       val_speakers=tr.val_speakers, cpu=(device or config.device) == "cpu")


def train_stage(config: StudyConfig, corpus, out: Path, timings: dict, *, progress: bool = True,
                say=print, device: str | None = None) -> dict:
    """Fine-tune the ``[training]`` base encoder with every method (reusing finished runs).

    Returns ``split`` (the fine-tuning split), ``encoders`` (an :class:`EncoderSpec` per
    adapted model, its merged folder as the name), ``transcripts`` (model -> test
    transcripts, the base model as ``zero-shot``) and ``seen`` (label -> ids it saw).
    ``device`` (default the study's) reaches the training: ``cpu`` forces the CPU, other
    values leave placement to accelerate, as ``probekit train --device`` does.
    """
    from dataclasses import replace

    import pandas as pd

    from probekit.corpus.seen import SeenIds
    from probekit.study.config import EncoderSpec
    from training.evaluate import transcribe
    from training.finetune import finetune, finetune_splits, load_base
    from training.runkey import base_fingerprint, transcripts_settings

    tr = config.training
    base = next(e for e in config.encoders if e.display == tr.base)
    t = time.perf_counter()
    split = finetune_splits(corpus, attribute=config.group_attribute, train_groups=tr.train_groups,
                            test_speakers=tr.test_speakers, val_speakers=tr.val_speakers,
                            val_utterances=tr.val_utterances, seed=tr.seed)
    say(f"fine-tuning split: {split.note}")
    test = split.test
    if tr.eval_per_speaker:
        per: dict = {}
        ids = [u.id for u in test
               if per.setdefault(u.speaker, []).append(u.id) or len(per[u.speaker]) <= tr.eval_per_speaker]
        test = test.filter(ids=ids)
    evaluation = replace(split, test=test)
    work = out / "work" / "train"
    zs = work / "zero-shot" / "transcripts.csv"
    zs_key = transcripts_settings(model=base_fingerprint(base.name), corpus=test,
                                  max_new_tokens=tr.max_new_tokens, language="english",
                                  decode_task="transcribe")
    zs_json = zs.with_suffix(".json")
    if zs.is_file() and zs_json.is_file() and _cache_key(zs_json) == zs_key:
        transcripts = {"zero-shot": pd.read_csv(zs, keep_default_na=False)}
    else:
        model, proc = load_base(base.name)
        df = transcribe(model, proc, test, attribute=config.group_attribute,
                        max_new_tokens=tr.max_new_tokens, progress=progress)
        zs.parent.mkdir(parents=True, exist_ok=True)
        to_csv(df, zs, index=False)
        write_json(zs_json, zs_key, indent=None)
        transcripts = {"zero-shot": df}
    timings["train:zero-shot"] = time.perf_counter() - t
    specs, seen = [], {}
    for m in tr.methods:
        t = time.perf_counter()
        cfg = train_config(config, work / slug(m.label, empty="encoder"), progress=progress,
                           device=device)
        res = finetune(corpus, split=evaluation, method=m.method, objective=m.objective,
                       objective_args=dict(m.objective_args), config=cfg, model=base.name,
                       max_new_tokens=tr.max_new_tokens, name=m.label, progress=progress)
        transcripts[m.label] = res.transcripts
        seen[m.label] = SeenIds.load(res.merged_dir)
        specs.append(EncoderSpec(name=str(res.merged_dir), label=m.label,
                                 options={"sources": ("local",)}, random_init=base.random_init,
                                 layers=base.layers))
        timings[f"train:{m.label}"] = time.perf_counter() - t
        say(f"fine-tuned {m.label}: macro-WER {100 * res.wer.macro:.1f} % on the test speakers "
            f"({timings[f'train:{m.label}']:.1f} s{', reused' if res.reused else ''})")
    return {"split": split, "encoders": specs, "transcripts": transcripts, "seen": seen,
            "base": base.display, "train_groups": list(split.train_groups)}


def compare_stage(config: StudyConfig, results_dir: Path, folder: Path, trained: dict) -> Path:
    """Paired before/after comparison of the base and adapted encoders (probes and WER),
    written by :meth:`probekit.bias.compare.Comparison.save` into ``folder`` (the same files
    as ``probekit compare --out``, plus ``wer_table.csv``)."""
    import shutil

    from probekit.bias.compare import check_unseen, compare_encoders
    from probekit.outdir import read_stamp
    from probekit.probes.results import ResultsTable
    from probekit.bias.wer import wer_table

    tr = config.training
    df = ResultsTable(results_dir).load()
    labels = [s.display for s in trained["encoders"]]
    test = trained["split"].test
    guard_sent = [check_unseen(k, test.speakers, v, allow_seen=tr.allow_seen,
                               test_sentences=[str(u.sentence_id) for u in test])
                  for k, v in trained["seen"].items()]
    cmp = compare_encoders(df, trained["base"], labels, seen=trained["seen"],
                           allow_seen=tr.allow_seen, alpha=config.alpha)
    cmp.guard += guard_sent
    cmp.wer_table = wer_table(trained["transcripts"], attribute=config.group_attribute,
                              trained=trained["train_groups"], reference="zero-shot",
                              n_boot=config.n_boot, alpha=config.alpha, seed=config.seed)
    cmp.info.update(split=trained["split"].note, train_groups=trained["train_groups"],
                    n_test_utterances_wer=int(len(next(iter(trained["transcripts"].values())))))
    if folder.is_dir() and read_stamp(folder) is None:
        # compare/ of a study written before it was claimed: the study's own entry (its stamp
        # lists "compare"), so it is replaced, never adopted
        shutil.rmtree(folder)
    return cmp.save(folder, inputs=(results_dir,), command="study run",
                    fingerprint={"study": config.fingerprint()})
