"""Transcribe with an (adapted) Whisper model and score WER by group.

Text normalisation (applied to references and hypotheses alike, before ``jiwer``):
Whisper's English normaliser, :func:`probekit.text.normalize_text` (contractions, numbers,
British/American spellings, bracketed tags such as EdAcc's ``<laugh>``, punctuation), the
same function the CTC probe scores with.

Decoding forces the same prefix the labels were trained with
(:func:`training.data.decoder_prefix`): on a multilingual checkpoint ``language`` and
``decode_task`` (English, transcribe by default), so language identification never runs on
accented speech.

Metrics (seed 000's definitions): a group's WER is its corpus-level WER (errors summed over
its utterances / reference words summed); overall is the same over all utterances (micro);
macro-WER the unweighted mean of the group WERs; gap = max - min group WER; worst = the group
with the highest WER. Values are fractions in [0, 1] (above 1 only through insertions), as in
every table of probekit; percent is for display. Errors are counted by
:func:`probekit.text.edit_counts`, the one ``jiwer`` counter. This is the training side's
descriptive summary (validation and the run's own printout): ``training`` sits below the
analysis and does not import it; the analysis's WER table (``wer_table`` in the bias
package's ``wer`` module: the same item-pooled group WERs through the one group-statistics
core, with intervals and paired changes) is what studies report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from training.adapters import lora_layers, mixture_weights, set_mixture
from training.data import (AudioCache, decoder_prefix, generation_kwargs, is_multilingual,
                           window_seconds)

from probekit.errors import ProbekitError
from probekit.text import normalize_text, word_errors

__all__ = ["normalize_text", "transcribe", "WERReport", "wer_report", "EvaluationError"]

log = logging.getLogger(__name__)


class EvaluationError(ProbekitError, ValueError):
    """An evaluation that cannot be done as asked (the message says why)."""


@torch.no_grad()
def transcribe(model, processor, corpus, *, batch_size: int = 8, max_new_tokens: int | None = None,
               attribute: str = "accent", known_accent_d: float | None = None,
               audio: AudioCache | None = None, progress: bool = False,
               language: str | None = "english",
               decode_task: str | None = "transcribe") -> pd.DataFrame:
    """Greedy transcripts (``model.generate``, one beam, no sampling).

    Parameters
    ----------
    model : WhisperForConditionalGeneration, optionally carrying (MAS-)LoRA adapters
    processor : WhisperProcessor (tokenizer + feature extractor)
    corpus : probekit.corpus.Corpus
    max_new_tokens : int, optional
        Decoding length cap; default the model's limit (``max_target_positions``, 448) minus
        the forced prompt, so no hypothesis is cut short of what Whisper can produce.
        Hypotheses that reached the cap are flagged (``hit_max_tokens``) and warned about.
    known_accent_d : float, optional
        MAS-LoRA only: mix the experts with the 1/d rule on each utterance's own accent
        (accent known). ``None``: the mixture set on the model (uniform unless changed).
        Refused (:class:`EvaluationError`) on a model without experts (plain LoRA, or a
        merged model), which would otherwise decode the uniform mixture under that label.
    language, decode_task : str, optional
        Forced language and Whisper decoding task on multilingual checkpoints (ignored by
        English-only ones), as in training.

    Returns
    -------
    pandas.DataFrame
        One row per utterance: ``id``, ``speaker``, one column per group attribute, ``ref``,
        ``hyp`` (raw) and ``ref_norm``, ``hyp_norm``, and ``truncated`` (audio longer than
        Whisper's window was cut to it: its WER counts the missing words as deletions; a
        warning says how many; long-form decoding is not implemented) and ``hit_max_tokens``
        (decoding stopped at ``max_new_tokens`` without an end token: the rest of the
        hypothesis is missing).
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    audio = audio or AudioCache(corpus, processor.feature_extractor.sampling_rate)
    experts = getattr(getattr(model, "adapter_config", None), "experts", ())
    if known_accent_d is not None and not experts:
        raise EvaluationError(f"known_accent_d={known_accent_d:g} asks for MAS-LoRA's "
                              "accent-known mixture, but the model carries no experts (plain "
                              "LoRA, or a merged model): load the adapters (final/) instead")
    if known_accent_d is not None and experts:
        chunks = [[u for u in corpus if u.group(attribute) == g] for g in corpus.groups(attribute)]
    else:
        chunks = [list(corpus)]
    saved_mix = {n: m.mix.clone() for n, m in lora_layers(model).items()}
    rows = []
    gen_kw = generation_kwargs(model, language, decode_task)
    prompt = decoder_prefix(processor.tokenizer, is_multilingual(model), language, decode_task)
    limit = int(getattr(model.config, "max_target_positions", 448)) - len(prompt)
    if max_new_tokens is None:
        max_new_tokens = limit
    elif max_new_tokens > limit:
        raise EvaluationError(f"max_new_tokens={max_new_tokens} exceeds the model's limit of "
                              f"{limit} new tokens after the {len(prompt)}-token prompt")
    text_end = processor.tokenizer.eos_token_id   # Whisper's text tokens are the ids below
    n_cut = 0
    window = window_seconds(processor.feature_extractor)
    dev = next(model.parameters()).device
    dtype = model.get_encoder().conv1.weight.dtype  # the base's dtype (adapters are fp32)
    n_long = 0
    bar = tqdm(total=len(corpus), desc="transcribe", disable=not progress, leave=False)
    try:
        for chunk in chunks:
            if known_accent_d is not None and experts and chunk:
                set_mixture(model, mixture_weights(experts, chunk[0].group(attribute),
                                                   known_accent_d))
            for i in range(0, len(chunk), batch_size):
                utts = chunk[i: i + batch_size]
                feats = processor.feature_extractor(
                    [audio(u) for u in utts], sampling_rate=audio.sample_rate,
                    return_tensors="pt", padding="max_length").input_features
                ids = model.generate(feats.to(dev, dtype), max_new_tokens=max_new_tokens,
                                     num_beams=1, do_sample=False, **gen_kw)
                hyps = processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
                # cut short: as many text tokens as the cap allows (padding, the prompt and the
                # end token are specials, ids >= eos; Whisper strips a trailing end token)
                cut = [int((row < text_end).sum()) >= max_new_tokens for row in ids]
                n_cut += sum(cut)
                for u, h, c in zip(utts, hyps, cut):
                    long = len(audio(u)) > window * audio.sample_rate
                    n_long += long
                    rows.append({"id": u.id, "speaker": u.speaker, **dict(u.groups),
                                 "ref": u.text, "hyp": h.strip(),
                                 "ref_norm": normalize_text(u.text),
                                 "hyp_norm": normalize_text(h), "truncated": long,
                                 "hit_max_tokens": c})
                bar.update(len(utts))
    finally:
        bar.close()
        for n, m in lora_layers(model).items():
            m.mix = saved_mix[n]
        model.train(was_training)
    if n_cut:
        log.warning("%d of %d hypotheses stopped at max_new_tokens=%d without an end token "
                    "(column 'hit_max_tokens'): their missing words count as deletions",
                    n_cut, len(rows), max_new_tokens)
    if n_long:
        log.warning("%d of %d utterances are longer than Whisper's %.0f s window and were cut "
                    "to it (column 'truncated'); their missing words count as deletions",
                    n_long, len(rows), window)
    return pd.DataFrame(rows)


def _wer(refs: Sequence[str], hyps: Sequence[str]) -> tuple[float, int, int]:
    return word_errors(refs, hyps)


@dataclass(frozen=True)
class WERReport:
    """WER by group, read many ways.

    Attributes
    ----------
    by_group : pandas.DataFrame
        Index: group; columns ``wer`` (a fraction), ``errors``, ``ref_words``, ``n_utts``.
    overall, macro, gap : float
        Micro WER over all utterances, unweighted mean of group WERs, max - min group WER
        (fractions).
    worst : str
        Group with the highest WER.
    """

    by_group: pd.DataFrame
    overall: float
    macro: float
    gap: float
    worst: str

    def summary(self) -> dict:
        return {"overall": self.overall, "macro": self.macro, "gap": self.gap,
                "worst": self.worst, **{f"wer_{g}": w for g, w in self.by_group["wer"].items()}}


def wer_report(transcripts: pd.DataFrame, attribute: str = "accent",
               groups: Sequence[str] | None = None) -> WERReport:
    """Per-group, overall, macro WER, gap and worst group from :func:`transcribe`'s output.

    ``groups`` restricts the macro/gap/worst to those groups (e.g. the trained accents);
    ``by_group`` always lists every group.
    """
    rows = {}
    for g, df in transcripts.groupby(attribute, sort=True):
        wer, err, n = _wer(df["ref_norm"].tolist(), df["hyp_norm"].tolist())
        rows[g] = {"wer": wer, "errors": err, "ref_words": n, "n_utts": len(df)}
    by_group = pd.DataFrame.from_dict(rows, orient="index")
    by_group.index.name = attribute
    overall = _wer(transcripts["ref_norm"].tolist(), transcripts["hyp_norm"].tolist())[0]
    sel = by_group.loc[list(groups)] if groups is not None else by_group
    return WERReport(by_group, overall, float(sel["wer"].mean()),
                     float(sel["wer"].max() - sel["wer"].min()), str(sel["wer"].idxmax()))
