"""Evaluation metrics on hand-made transcripts, transcription, and the hand-back encoder."""

import numpy as np
import pandas as pd
import pytest
import torch

from training.adapters import AdapterConfig, apply_mas_lora, inject_adapters, lora_layers
from training.encoder import adapted_encoder, save_adapted_model
from training.evaluate import normalize_text, transcribe, wer_report


def test_normalisation_is_whisper_english_and_shared_with_the_ctc_probe():
    # review defect 8: "don t" before; tags, numbers and spellings were not unified
    from probekit.probes.ctc import normalize_text as ctc_normalize

    assert normalize_text("The Birch  canoe, slid!  \"Don't\"") == "the birch canoe slid do not"
    s = "Don’t stop, the colour <laugh> [noise] of twenty five Mr. Smith"
    assert normalize_text(s) == ctc_normalize(s) == "do not stop the color of 25 mister smith"
    assert normalize_text("...") == ""


def test_wer_report_by_group_macro_gap_and_worst():
    df = pd.DataFrame({
        "accent": ["a", "a", "b"],
        "ref_norm": ["one two", "three four", "five six seven eight"],
        "hyp_norm": ["one two", "three", "five six"],
    })
    rep = wer_report(df)
    # a: 1 error / 4 words = 0.25; b: 2 / 4 = 0.5; overall 3 / 8 (fractions, as every table)
    assert rep.by_group.loc["a", "wer"] == pytest.approx(0.25)
    assert rep.by_group.loc["b", "wer"] == pytest.approx(0.5)
    assert rep.overall == pytest.approx(0.375)
    assert rep.macro == pytest.approx(0.375) and rep.gap == pytest.approx(0.25)
    assert rep.worst == "b"
    df2 = pd.concat([df, df.iloc[[2]]])  # one more b utterance: micro moves, macro does not
    rep2 = wer_report(df2)
    assert rep2.macro == pytest.approx(0.375) and rep2.overall == pytest.approx(5 / 12)

def load(folder):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    return (WhisperForConditionalGeneration.from_pretrained(folder).eval(),
            WhisperProcessor.from_pretrained(folder))


def test_transcribe_returns_one_row_per_utterance(tiny_whisper_dir, small_corpus):
    model, proc = load(tiny_whisper_dir)
    apply_mas_lora(model, small_corpus.groups("accent")[:2], seed=0)
    sub = small_corpus.filter(speakers=small_corpus.speakers[:3])
    df = transcribe(model, proc, sub, max_new_tokens=4, known_accent_d=2.0)
    assert sorted(df["id"]) == sorted(u.id for u in sub)
    assert {"accent", "ref", "hyp", "ref_norm", "hyp_norm"} <= set(df.columns)
    assert all(torch.allclose(m.mix, torch.full_like(m.mix, 1 / m.n_experts))
               for m in lora_layers(model).values())  # the mixture is restored


def test_hand_back_encoder_loads_through_probekit_and_differs_from_base(tiny_whisper_dir,
                                                                       small_corpus, tmp_path):
    from probekit.encoders import available_encoders, load_encoder
    from training.objectives import build_objective
    from training.trainer import TrainConfig, Trainer

    model, proc = load(tiny_whisper_dir)
    inject_adapters(model, AdapterConfig(r=4), seed=0)
    train = small_corpus.filter(speakers=small_corpus.speakers[:2])
    model = Trainer(model, proc, build_objective("erm"), train,
                    TrainConfig(out_dir=str(tmp_path / "run"), steps=2, batch_size=2, lr=1e-2,
                                progress=False)).fit()
    folder = save_adapted_model(model, proc, tmp_path / "adapted", info={"objective": "erm"})
    # an adapted encoder is its folder: no alias table, no family of its own
    assert set(available_encoders()) == {"hf-ssl", "w2v-bert", "whisper"}
    enc = load_encoder(str(folder), device="cpu")
    base = load_encoder(str(tiny_whisper_dir), device="cpu")
    wave = np.random.default_rng(0).standard_normal(16000).astype("float32") * 0.1
    a, b = enc.encode([wave]), base.encode([wave])
    assert enc.name == str(folder) and enc.family == "whisper"
    assert enc.layer_names == base.layer_names
    assert torch.allclose(a.layer("conv"), b.layer("conv"))  # the front end is not adapted
    for layer in enc.layer_names[1:]:
        assert not torch.allclose(a.layer(layer), b.layer(layer), atol=1e-4), layer
    # in memory, unmerged: the same states as the merged folder
    live = adapted_encoder(model, proc.feature_extractor, "live", merge=False)
    torch.testing.assert_close(live.encode([wave]).hidden_states, a.hidden_states,
                               atol=1e-5, rtol=1e-4)
    assert enc.fingerprint != base.fingerprint
