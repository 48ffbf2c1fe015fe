"""LoRA / MAS-LoRA: routing, exact merge, save and load."""

import pytest
import torch

from training.adapters import (AdapterConfig, AdapterError, apply_mas_lora, inject_adapters,
                               load_adapters, lora_layers, merge_adapters, mixture_weights,
                               routed, save_adapters, set_mixture, trainable_parameters)

ACCENTS = ["a", "b", "c"]


def load(folder):
    from transformers import WhisperForConditionalGeneration

    return WhisperForConditionalGeneration.from_pretrained(folder).eval()


def randomise_b(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in lora_layers(model).values():
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 0.05)


def inputs(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(input_features=torch.randn(batch, 80, 400, generator=g),
                decoder_input_ids=torch.tensor([[50257, 50362, 11, 12]] * batch))


def test_injection_targets_encoder_experts_and_a_plain_decoder_lora(tiny_whisper_dir):
    model = apply_mas_lora(load(tiny_whisper_dir), ACCENTS, seed=0)
    layers = lora_layers(model)
    enc = {n: m for n, m in layers.items() if ".encoder." in n}
    dec = {n: m for n, m in layers.items() if ".decoder." in n}
    assert len(enc) == 2 * 2 and all(m.n_experts == 3 for m in enc.values())  # 2 layers x q,v
    assert len(dec) == 1 * 2 * 2 and all(m.n_experts == 1 for m in dec.values())  # self+cross
    assert all(m.r == 16 and m.alpha == 16 for m in layers.values())
    assert all("lora_" in n for n in trainable_parameters(model))
    # B starts at zero: a fresh adapter does not change the model
    base = load(tiny_whisper_dir)
    with torch.no_grad():
        assert torch.allclose(model(**inputs()).logits, base(**inputs()).logits, atol=1e-6)


def test_training_routes_each_sample_only_to_its_own_expert(tiny_whisper_dir):
    model = apply_mas_lora(load(tiny_whisper_dir), ACCENTS, seed=0, dropout=0.0)
    randomise_b(model)
    model.train()
    with routed(model, ["a", "c"]):
        model(**inputs()).logits.pow(2).mean().backward()
    enc = [m for m in lora_layers(model).values() if m.n_experts == 3]
    for m in enc:
        for p in (m.lora_A, m.lora_B):
            assert p.grad[0].abs().sum() > 0 and p.grad[2].abs().sum() > 0
            assert p.grad[1].abs().sum() == 0  # no sample of accent b: its expert is untouched
    # a routed sample computes what the mixture one-hot on its expert computes
    model.eval()
    x = inputs(batch=1)
    with torch.no_grad(), routed(model, ["c"]):
        r = model(**x).logits
    set_mixture(model, torch.tensor([0.0, 0.0, 1.0]))
    with torch.no_grad():
        assert torch.allclose(model(**x).logits, r, atol=1e-5)
    with pytest.raises(AdapterError, match=r"accent\(s\) \['zz'\]"):
        with routed(model, ["zz"]):
            pass


def test_mixture_weights_follow_the_one_over_d_rule():
    assert torch.allclose(mixture_weights(ACCENTS), torch.full((3,), 1 / 3))
    w = mixture_weights(ACCENTS, known="b", d=2)
    assert torch.allclose(w, torch.tensor([0.25, 0.5, 0.25]))
    assert torch.allclose(mixture_weights(ACCENTS, known="b", d=3), torch.full((3,), 1 / 3))
    assert torch.allclose(mixture_weights(ACCENTS, known="unseen"), torch.full((3,), 1 / 3))


def test_merged_model_equals_the_unmerged_mixture(tiny_whisper_dir):
    model = apply_mas_lora(load(tiny_whisper_dir), ACCENTS, seed=0)
    randomise_b(model)
    model.eval()
    set_mixture(model, mixture_weights(ACCENTS, known="a", d=2))
    x = inputs()
    with torch.no_grad():
        unmerged = model(**x).logits
        # peft's "linear" add_weighted_adapter mixes A and B separately: not the same delta-W
        m = next(m for m in lora_layers(model).values() if m.n_experts == 3)
        w = m.mix
        naive = torch.einsum("k,kor->or", w, m.lora_B) @ torch.einsum("k,kri->ri", w, m.lora_A)
        exact = torch.einsum("k,kor,kri->oi", w, m.lora_B, m.lora_A)
        assert not torch.allclose(naive, exact, atol=1e-4)
        merged_model = merge_adapters(model)
        assert not lora_layers(merged_model)
        merged = merged_model(**x).logits
    base = load(tiny_whisper_dir)
    with torch.no_grad():
        assert not torch.allclose(base(**x).logits, unmerged, atol=1e-3)  # adapters matter
    assert torch.allclose(merged, unmerged, atol=1e-5)


def test_adapters_save_and_load(tiny_whisper_dir, tmp_path):
    model = inject_adapters(load(tiny_whisper_dir), AdapterConfig(r=4, lora_alpha=8), seed=0)
    randomise_b(model)
    model.eval()
    save_adapters(model, tmp_path / "ad")
    again = load_adapters(load(tiny_whisper_dir), tmp_path / "ad").eval()
    assert again.adapter_config == model.adapter_config
    with torch.no_grad():
        assert torch.allclose(again(**inputs()).logits, model(**inputs()).logits, atol=1e-6)
    with pytest.raises(AdapterError, match="already carries adapters"):
        inject_adapters(again, AdapterConfig())
    # an adapter_config.json written before AdapterConfig.alpha became lora_alpha still loads
    import json
    cfg_file = tmp_path / "ad" / "adapter_config.json"
    d = json.loads(cfg_file.read_text())
    d["alpha"] = d.pop("lora_alpha")
    cfg_file.write_text(json.dumps(d))
    old = load_adapters(load(tiny_whisper_dir), tmp_path / "ad")
    assert old.adapter_config == model.adapter_config and old.adapter_config.lora_alpha == 8
