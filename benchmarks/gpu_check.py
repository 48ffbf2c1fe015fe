"""GPU check of training at the papers' size: speed, memory, gradients, fp16, hand-back.

On a CUDA machine (budget: under 8 minutes on one H100), with whisper-small (random weights
of its shape unless ``--model`` names a folder or a package provides them):

1. extraction: the encoder's every layer, fp32 vs bf16 autocast: max relative error;
2. training at batch ``--batch`` (16) in bf16, with and without gradient checkpointing, for
   ERM-LoRA, fused-LoRA and MAS-LoRA (8 experts, some absent from every batch) with the real
   :class:`training.trainer.Trainer`: steps/s, peak GiB, the share of a step spent waiting
   for its batch (``data_share``), and whether the loss after the timed steps is below the
   first step's;
3. fused at 150 and 440 label tokens (synthetic ids, one forward/backward): peak GiB;
4. gradients on CUDA: adapter gradients in bf16 autocast vs fp32 and checkpointed vs plain
   on one batch (cosine, pass >= 0.99); an absent MAS-LoRA expert's gradient exactly 0;
5. fp16: 20 steps with ``precision="fp16"``: finite losses, skipped steps, scheduler not
   advanced on skipped steps;
6. hand-back: MAS-LoRA's merged model saved with ``save_adapted_model``, reloaded, its
   encoder output vs the routed uniform mixture (fp32);
7. ``transcribe`` throughput (utterances/s) at evaluation batch 8 and 32.

Not covered (say so where it matters): resume vs uninterrupted on the GPU, NCCL/multi-GPU.

Without CUDA it prints ``BENCH gpu_check gpu_ok=0 status=no_cuda`` and exits 0
(``--cpu-smoke --model <small folder>`` runs the same code on the CPU). The last line is
``BENCH gpu_check gpu_ok=0|1 ...`` with every figure (``gpu_ok=1``: CUDA and every check
passed).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time


#: d_model, layers, heads of the released English checkpoints' shapes
SHAPES = {"whisper-base": (512, 6, 8), "whisper-small": (768, 12, 12),
          "whisper-medium": (1024, 24, 16)}
EXPERTS = 8


def _experts(corpus) -> list[str]:
    """The corpus' accents plus absent ones, 8 experts as at the papers' size."""
    groups = list(corpus.groups("accent"))
    return groups + [f"absent{k}" for k in range(max(0, EXPERTS - len(groups)))]


def _load(name: str, device):
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

    from pathlib import Path

    from probekit.encoders.weights import resolve_whisper

    try:
        folder = Path(name) if Path(name).is_dir() else resolve_whisper(
            name, sources=("local", "hf-cache", "package"))
        return (WhisperForConditionalGeneration.from_pretrained(folder, dtype=torch.float32),
                WhisperProcessor.from_pretrained(folder), "loaded")
    except Exception as exc:  # no package installed: whisper-base's shape, random weights
        print(f"gpu_check: {name} weights unavailable ({type(exc).__name__}: {exc}); using a "
              "random model of its shape", flush=True)
        tiny = resolve_whisper("whisper-tiny.en", sources=("local", "hf-cache", "package"))
        d, layers, heads = SHAPES.get(name, SHAPES["whisper-small"])
        cfg = WhisperConfig(d_model=d, encoder_layers=layers, decoder_layers=layers,
                            encoder_attention_heads=heads, decoder_attention_heads=heads,
                            encoder_ffn_dim=4 * d, decoder_ffn_dim=4 * d, vocab_size=51864,
                            decoder_start_token_id=50257, pad_token_id=50256,
                            bos_token_id=50256, eos_token_id=50256)
        torch.manual_seed(0)
        return WhisperForConditionalGeneration(cfg), WhisperProcessor.from_pretrained(tiny), \
            "random"


def extraction_errors(model, feats, device) -> list[float]:
    import torch

    enc = copy.deepcopy(model.model.encoder).to(device).eval()
    with torch.no_grad():
        ref = enc(feats, output_hidden_states=True).hidden_states
        with torch.autocast(device.type, dtype=torch.bfloat16):
            low = enc(feats, output_hidden_states=True).hidden_states
    return [float((a.float() - b).abs().max() / b.abs().max()) for a, b in zip(low, ref)]


def train_runs(model, proc, corpus, device, steps: int, batch: int, cpu: bool, out: str):
    import torch

    from training.adapters import AdapterConfig, apply_mas_lora, inject_adapters
    from training.objectives import build_objective
    from training.trainer import TrainConfig, Trainer

    res, mas_model = {}, None
    groups = _experts(corpus)
    for method in ("erm", "fused", "maslora"):
        for ckpt in (False, True):
            m = copy.deepcopy(model)
            if method == "maslora":
                apply_mas_lora(m, groups, seed=0)
            else:
                inject_adapters(m, AdapterConfig(), seed=0)
            obj = build_objective("fused" if method == "fused" else "erm")
            cfg = TrainConfig(out_dir=f"{out}/{method}-{int(ckpt)}", steps=steps + 1,
                              batch_size=batch, lr=5e-5, progress=False, save_every=10**9,
                              cpu=cpu, precision="bf16", gradient_checkpointing=ckpt)
            tr = Trainer(m, proc, obj, corpus, cfg)
            first = tr.train_step()["loss"]  # warm-up (kernels, feature cache)
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t, data = time.perf_counter(), 0.0
            for _ in range(steps):
                terms = tr.train_step()
                data += tr.data_seconds
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
            key = f"{method}{'_ckpt' if ckpt else ''}"
            res[key] = {"steps_s": steps / dt, "peak_gib": peak, "loss": terms["loss"],
                        "data_share": data / dt, "loss_down": int(terms["loss"] < first)}
            print(f"{key:>12}: {steps / dt:7.2f} steps/s  peak {peak:6.2f} GiB  data share "
                  f"{data / dt:.2f}  loss {first:.3f} -> {terms['loss']:.3f}", flush=True)
            if method == "maslora" and not ckpt:
                mas_model = tr.raw
            else:
                del tr, m
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return res, mas_model


def merged_vs_routed(mas_model, feats) -> float:
    import torch

    from training.adapters import merge_adapters, mixture_weights, set_mixture

    m = copy.deepcopy(mas_model).float().eval()
    set_mixture(m, mixture_weights(list(m.adapter_config.experts)))
    merged = merge_adapters(copy.deepcopy(m))
    with torch.no_grad():
        a = m.model.encoder(feats.float()).last_hidden_state
        b = merged.model.encoder(feats.float()).last_hidden_state
    return float((a - b).abs().max() / a.abs().max())


def fused_label_memory(model, device, batch: int, n_tokens: int) -> float:
    """Peak GiB of one bf16 fused-LoRA forward/backward at ``n_tokens`` label tokens."""
    import torch

    from training.adapters import AdapterConfig, inject_adapters
    from training.objectives import ObjectiveInput, build_objective

    m = inject_adapters(copy.deepcopy(model), AdapterConfig(), seed=0).to(device).train()
    n_mel, frames = m.config.num_mel_bins, 2 * m.config.max_source_positions
    feats = torch.randn(batch, n_mel, frames, device=device)
    labels = torch.randint(0, 50000, (batch, n_tokens), device=device)
    dec = torch.cat([torch.full((batch, 1), m.config.decoder_start_token_id, device=device),
                     labels[:, :-1]], 1)
    groups = [f"g{i % 4}" for i in range(batch)]
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with torch.autocast(device.type, dtype=torch.bfloat16):
        logits = m(input_features=feats, decoder_input_ids=dec, use_cache=False).logits
    build_objective("fused")(ObjectiveInput(logits, labels, groups))["loss"].backward()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
    del m, logits
    return peak


def _adapter_grads(model, feats, dec, labels, groups, device, *, bf16: bool, ckpt: bool):
    import torch

    from training.adapters import routed, trainable_parameters
    from training.objectives import ObjectiveInput, build_objective
    from training.trainer import enable_gradient_checkpointing

    m = copy.deepcopy(model).to(device).train()
    if ckpt:
        enable_gradient_checkpointing(m)
    for mod in m.modules():            # no dropout: the four runs see the same function
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    with routed(m, groups):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = m(input_features=feats, decoder_input_ids=dec, use_cache=False).logits
        build_objective("erm")(ObjectiveInput(logits, labels, groups))["loss"].backward()
    return {k: p.grad.detach().float().clone() for k, p in trainable_parameters(m).items()}


def gradient_checks(model, corpus, proc, device, batch: int) -> dict:
    """bf16-vs-fp32 and checkpointed-vs-plain adapter gradients (cosine) of MAS-LoRA on one
    batch, and the largest gradient of an expert absent from it (must be exactly 0)."""
    import torch

    from training.adapters import apply_mas_lora
    from training.data import AudioCache, collate

    experts = _experts(corpus)
    m = apply_mas_lora(copy.deepcopy(model), experts, seed=0)
    for mod in m.modules():             # B != 0, so every adapter parameter gets a gradient
        if hasattr(mod, "lora_B"):
            torch.nn.init.normal_(mod.lora_B, std=0.01)
    utts = list(corpus)[:batch]
    audio = AudioCache(corpus, proc.feature_extractor.sampling_rate)
    b = collate(utts, audio, proc.feature_extractor, proc.tokenizer,
                m.config.decoder_start_token_id)
    feats, dec, labels = (b[k].to(device) for k in ("input_features", "decoder_input_ids",
                                                    "labels"))
    groups = [u.group("accent") for u in utts]
    ref = _adapter_grads(m, feats, dec, labels, groups, device, bf16=False, ckpt=False)

    def cos(other):
        a = torch.cat([v.flatten() for v in ref.values()])
        o = torch.cat([other[k].flatten() for k in ref])
        return float(torch.nn.functional.cosine_similarity(a, o, dim=0))

    out = {"grad_cos_bf16": cos(_adapter_grads(m, feats, dec, labels, groups, device,
                                               bf16=True, ckpt=False)),
           "grad_cos_ckpt": cos(_adapter_grads(m, feats, dec, labels, groups, device,
                                               bf16=False, ckpt=True))}
    absent = [i for i, e in enumerate(experts) if e not in set(groups)]
    worst = 0.0
    for k, g in ref.items():
        if g.dim() == 3 and g.shape[0] == len(experts) and absent:   # stacked experts
            worst = max(worst, float(g[absent].abs().max()))
    out["absent_expert_grad_max"] = worst
    return out


def fp16_steps(model, proc, corpus, cpu: bool, out: str, steps: int = 20) -> dict:
    """``steps`` fp16 steps of fused-LoRA: finite losses, skipped steps, scheduler steps."""
    import math

    from training.adapters import AdapterConfig, inject_adapters
    from training.objectives import build_objective
    from training.trainer import TrainConfig, Trainer

    m = inject_adapters(copy.deepcopy(model), AdapterConfig(), seed=0)
    cfg = TrainConfig(out_dir=f"{out}/fp16", steps=steps, batch_size=8, lr=5e-5,
                      progress=False, save_every=10**9, cpu=cpu,
                      precision="fp16" if not cpu else "bf16")
    tr = Trainer(m, proc, build_objective("fused"), corpus, cfg)
    losses, skipped = [], 0
    for _ in range(steps):
        losses.append(tr.train_step()["loss"])
        skipped += int(getattr(tr.opt, "step_was_skipped", False))
    sched_steps = tr.sched.last_epoch
    return {"fp16_finite": int(all(math.isfinite(x) for x in losses)), "fp16_skipped": skipped,
            "fp16_sched_ok": int(sched_steps == steps - skipped)}


def handback_roundtrip(mas_model, feats, out: str) -> float:
    """The merged MAS-LoRA model saved and reloaded vs the routed uniform mixture (fp32)."""
    import torch
    from transformers import WhisperForConditionalGeneration

    from training.adapters import mixture_weights, set_mixture
    from training.encoder import save_adapted_model

    m = copy.deepcopy(mas_model).float().eval()
    set_mixture(m, mixture_weights(list(m.adapter_config.experts)))
    folder = save_adapted_model(m, _PROC[0], f"{out}/merged")
    back = WhisperForConditionalGeneration.from_pretrained(folder).to(feats.device).eval()
    with torch.no_grad():
        a = m.to(feats.device).model.encoder(feats.float()).last_hidden_state
        b = back.model.encoder(feats.float()).last_hidden_state
    return float((a - b).abs().max() / a.abs().max())


def transcribe_rate(model, proc, corpus, device, batch: int, n: int = 64) -> float:
    """Utterances per second of greedy ``transcribe`` at evaluation batch ``batch``."""
    import torch

    from training.evaluate import transcribe

    m = copy.deepcopy(model).to(device)
    part = corpus.filter(ids=[u.id for u in corpus][:n])
    t = time.perf_counter()
    transcribe(m, proc, part, batch_size=batch, max_new_tokens=64)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(part) / (time.perf_counter() - t)


_PROC: list = []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="whisper-small")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="run on the CPU anyway (a code-path check with a small --model)")
    args = ap.parse_args(argv)

    import torch

    if not torch.cuda.is_available() and not args.cpu_smoke:
        print("gpu_check: no CUDA device on this machine; nothing measured (run it on a GPU)")
        print("BENCH gpu_check gpu_ok=0 status=no_cuda")
        return 0
    t0 = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu_smoke else "cpu")
    from probekit.corpus.synthetic import build_synthetic_corpus
    from training.data import AudioCache

    model, proc, weights = _load(args.model, device)
    corpus = build_synthetic_corpus("small", progress=False)
    audio = AudioCache(corpus, proc.feature_extractor.sampling_rate)
    utts = list(corpus)[: min(8, len(corpus))]
    feats = proc.feature_extractor([audio(u) for u in utts], sampling_rate=audio.sample_rate,
                                   return_tensors="pt", padding="max_length").input_features
    feats = feats.to(device)

    errs = extraction_errors(model, feats, device)
    for i, e in enumerate(errs):
        print(f"layer {i}: bf16 vs fp32 max relative error {e:.2e}", flush=True)
    _PROC[:] = [proc]
    cpu = device.type == "cpu"
    with tempfile.TemporaryDirectory() as out:
        res, mas = train_runs(model, proc, corpus, device, args.steps, args.batch, cpu, out)
        merge_err = merged_vs_routed(mas, feats)
        print(f"merged vs routed (uniform mixture): max relative error {merge_err:.2e}")
        rt_err = handback_roundtrip(mas, feats, out)
        print(f"merged, saved and reloaded vs routed: max relative error {rt_err:.2e}")
        del mas
        mem = {n: fused_label_memory(model, device, args.batch, n) for n in (150, 440)}
        print(f"fused peak GiB at 150 / 440 label tokens: {mem[150]:.2f} / {mem[440]:.2f}")
        grads = gradient_checks(model, corpus, proc, device, min(args.batch, 8))
        print(f"gradients: {grads}")
        fp16 = fp16_steps(model, proc, corpus, cpu, out)
        print(f"fp16: {fp16}")
    rates = {b: transcribe_rate(model, proc, corpus, device, b) for b in (8, 32)}
    print(f"transcribe utterances/s at batch 8 / 32: {rates[8]:.1f} / {rates[32]:.1f}")
    total = time.perf_counter() - t0
    ok = (device.type == "cuda" and grads["grad_cos_bf16"] >= 0.99
          and grads["grad_cos_ckpt"] >= 0.99 and grads["absent_expert_grad_max"] == 0.0
          and fp16["fp16_finite"] and fp16["fp16_sched_ok"]
          and all(v["loss_down"] for v in res.values()) and merge_err < 1e-3 and rt_err < 1e-3)
    name = torch.cuda.get_device_name(0).replace(" ", "_") if device.type == "cuda" else "cpu"
    fields = [f"gpu_ok={int(ok)}", f"device={name}", f"model={args.model}",
              f"weights={weights}", f"batch={args.batch}", f"experts={EXPERTS}",
              f"extract_bf16_max_rel_err={max(errs):.2e}",
              "extract_bf16_rel_err_by_layer=" + ",".join(f"{e:.1e}" for e in errs)]
    for k, v in res.items():
        fields += [f"{k}_steps_s={v['steps_s']:.2f}", f"{k}_peak_gib={v['peak_gib']:.2f}",
                   f"{k}_data_share={v['data_share']:.3f}", f"{k}_loss_down={v['loss_down']}"]
    fields += [f"fused_peak_gib_150tok={mem[150]:.2f}", f"fused_peak_gib_440tok={mem[440]:.2f}",
               *(f"{k}={v:.4g}" for k, v in grads.items()), *(f"{k}={v}" for k, v in fp16.items()),
               f"merged_vs_routed_max_rel_err={merge_err:.2e}",
               f"saved_merged_vs_routed_max_rel_err={rt_err:.2e}",
               f"transcribe_utt_s_b8={rates[8]:.1f}", f"transcribe_utt_s_b32={rates[32]:.1f}",
               f"seconds={total:.0f}"]
    print("BENCH gpu_check " + " ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
