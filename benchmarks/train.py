"""MAS-LoRA cost: its training step vs plain LoRA's, and its merged model vs the base model.

Training: one optimizer step (forward, ERM loss, backward, AdamW) on the same batch of
log-mel features and labels, with LoRA (one adapter) vs MAS-LoRA (one expert per accent,
each sample routed to its own expert) in the encoder's q and v and plain LoRA in the decoder.
Inference: the encoder forward of the base model vs the MAS-LoRA model whose uniform mixture
was merged into the weights (a merged model is a plain transformers model, so ~1.0 is
expected; the unmerged mixture is timed too, for reference). Medians of several repeats,
interleaved, in this one run.

Input pipeline: the share of a training step spent preparing its batch (``data_share`` =
data / (data + LoRA step)): the uncached path (``collate`` computing log-mels from the
waveforms, as every step did before) vs the trainer's :class:`training.data.FeatureCache`
(log-mels computed once per utterance), on ``--batch`` real utterances of the synthetic
"small" corpus, timed in the same run.

Denormal floats are flushed to zero (``torch.set_flush_denormal``) unless
``--keep-denormals``: after a few AdamW steps on random inputs some activations underflow,
and x86 CPUs then take microcode assists whose cost depends on the values, not on the
method (GPUs flush them anyway). With the authors' std-1 LoRA init (the default since the
2026-12 review) they made both timings noisy by tens of percent on 2 shared cores.

Usage: python benchmarks/train.py [--model whisper-tiny.en] [--batch 4] [--experts 8]
Last line: ``BENCH maslora_step_ratio=<MAS-LoRA/LoRA> merged_infer_ratio=<merged/base>
data_share=<cached> data_share_uncached=<uncached>``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="whisper-tiny.en")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep-denormals", action="store_true",
                    help="do not flush denormal floats (value-dependent CPU slowdowns)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(not args.keep_denormals)

    from transformers import WhisperForConditionalGeneration

    from probekit.encoders.weights import resolve_whisper
    from training.adapters import (AdapterConfig, inject_adapters, merge_adapters, routed,
                                   set_mixture, mixture_weights)
    from training.objectives import ObjectiveInput, build_objective

    folder = resolve_whisper(args.model, sources=("local", "hf-cache", "package"))
    base = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    accents = [f"accent{k}" for k in range(args.experts)]
    g = torch.Generator().manual_seed(0)
    n_mel = base.config.num_mel_bins
    feats = torch.randn(args.batch, n_mel, 2 * base.config.max_source_positions, generator=g)
    labels = torch.randint(0, 1000, (args.batch, 20), generator=g)
    dec = torch.cat([torch.full((args.batch, 1), base.config.decoder_start_token_id),
                     labels[:, :-1]], 1)
    groups = [accents[i % args.experts] for i in range(args.batch)]
    erm = build_objective("erm")

    def trainee(experts):
        m = inject_adapters(copy.deepcopy(base), AdapterConfig(experts=tuple(experts)), seed=0)
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
        return m.train(), opt

    lora, mas = trainee(()), trainee(accents)

    def step(model, opt):
        with routed(model, groups):
            logits = model(input_features=feats, decoder_input_ids=dec).logits
        erm(ObjectiveInput(logits, labels, groups))["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    merged = copy.deepcopy(mas[0]).eval()
    set_mixture(merged, mixture_weights(accents))
    unmerged = copy.deepcopy(merged)
    merge_adapters(merged)

    def infer(model):
        with torch.no_grad():
            model.model.encoder(feats)

    from transformers import WhisperProcessor

    from probekit.corpus.synthetic import build_synthetic_corpus
    from training.data import AudioCache, FeatureCache, collate

    proc = WhisperProcessor.from_pretrained(folder)
    corpus = build_synthetic_corpus("small", progress=False)
    utts = list(corpus)[: args.batch]
    audio = AudioCache(corpus, proc.feature_extractor.sampling_rate)
    cache = FeatureCache(audio, proc.feature_extractor)
    for u in utts:
        audio(u)          # waveforms decoded once in both paths: only the log-mels differ
    data_args = (utts, audio, proc.feature_extractor, proc.tokenizer,
                 base.config.decoder_start_token_id)

    timings: dict[str, list[float]] = {k: [] for k in ("lora", "mas", "base", "merged",
                                                        "unmerged", "data", "data_cached")}
    jobs = {"lora": lambda: step(*lora), "mas": lambda: step(*mas), "base": lambda: infer(base),
            "merged": lambda: infer(merged), "unmerged": lambda: infer(unmerged),
            "data": lambda: collate(*data_args),
            "data_cached": lambda: collate(*data_args, features=cache)}
    for fn in jobs.values():  # warm-up
        fn()
    for _ in range(args.repeats):
        for k, fn in jobs.items():
            t = time.perf_counter()
            fn()
            timings[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in timings.items()}
    for k, v in med.items():
        print(f"{k:>9}: {v * 1000:8.1f} ms (median of {args.repeats})")
    print(f"model {args.model}, batch {args.batch}, {args.experts} experts, "
          f"{args.threads} threads; unmerged/base = {med['unmerged'] / med['base']:.3f}")
    share = med["data_cached"] / (med["data_cached"] + med["lora"])
    share_un = med["data"] / (med["data"] + med["lora"])
    print(f"BENCH maslora_step_ratio={med['mas'] / med['lora']:.3f} "
          f"merged_infer_ratio={med['merged'] / med['base']:.3f} "
          f"data_share={share:.3f} data_share_uncached={share_un:.3f}")


if __name__ == "__main__":
    main()
