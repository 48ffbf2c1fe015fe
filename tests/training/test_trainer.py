"""Trainer: loss goes down on the trained groups, resume equals uninterrupted, refusals."""

import json

import pytest
import torch

from training.adapters import AdapterConfig, apply_mas_lora, inject_adapters, lora_layers
from training.data import AudioCache, collate
from training.objectives import ObjectiveInput, build_objective, utterance_risks
from training.sampler import GroupBalancedBatchSampler
from training.trainer import TrainConfig, Trainer, TrainingError


def load(folder):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    return (WhisperForConditionalGeneration.from_pretrained(folder),
            WhisperProcessor.from_pretrained(folder))


def mean_risk(model, processor, utts, audio):
    batch = collate(utts, audio, processor.feature_extractor, processor.tokenizer,
                    model.config.decoder_start_token_id)
    model.eval()
    with torch.no_grad():
        logits = model(input_features=batch["input_features"],
                       decoder_input_ids=batch["decoder_input_ids"]).logits
    return utterance_risks(logits, batch["labels"]).mean().item()


def cfg(tmp_path, **kw):
    base = dict(out_dir=str(tmp_path), steps=6, batch_size=4, lr=3e-3, progress=False,
                save_every=100, seed=3)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def train_set(small_corpus):
    return small_corpus.filter(speakers=small_corpus.speakers[:4])


def test_sampler_balances_groups_and_is_a_function_of_the_step():
    groups = ["a"] * 10 + ["b"] * 2 + ["c"] * 4
    s = GroupBalancedBatchSampler(groups, batch_size=6, seed=1)
    for step in range(8):
        got = [groups[i] for i in s.batch(step)]
        assert sorted(got) == ["a", "a", "b", "b", "c", "c"]
    assert GroupBalancedBatchSampler(groups, 6, seed=1).batch(5) == s.batch(5)
    two = GroupBalancedBatchSampler(groups, 4, groups_per_batch=2, seed=0)
    assert all(len({groups[i] for i in two.batch(k)}) == 2 for k in range(6))


def test_short_training_lowers_the_trained_groups_loss(tiny_whisper_dir, train_set, tmp_path):
    model, proc = load(tiny_whisper_dir)
    groups = train_set.groups("accent")
    apply_mas_lora(model, groups, seed=0)
    audio = AudioCache(train_set)
    by_group = {g: [u for u in train_set if u.group("accent") == g] for g in groups}
    before = {g: mean_risk(model, proc, u, audio) for g, u in by_group.items()}
    tr = Trainer(model, proc, build_objective("fused"), train_set, cfg(tmp_path, steps=6, lr=1e-1))
    model = tr.fit()
    after = {g: mean_risk(model, proc, u, audio) for g, u in by_group.items()}
    # a random tiny model's tied embeddings (std 0.02) bound how far its logits can move, so
    # the loss starts at ln(vocab) and can fall by about 1 nat at most
    assert all(after[g] < before[g] - 0.15 for g in groups), (before, after)
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert {"loss", "erm", "dro", "sd_penalty", "irm_penalty", "lr"} <= set(rows[0])
    assert (tmp_path / "log.csv").exists() and len(rows) == 6


def test_interrupted_training_resumes_to_the_same_weights(tiny_whisper_dir, train_set, tmp_path):
    def run(out, stop_after=None):
        model, proc = load(tiny_whisper_dir)
        inject_adapters(model, AdapterConfig(r=4, lora_alpha=8), seed=0)
        obj = build_objective("group_dro", dro_mode="online")  # stateful: its q resumes too
        return Trainer(model, proc, obj, train_set, cfg(out, steps=4)).fit(stop_after=stop_after)

    full = run(tmp_path / "full")
    first = run(tmp_path / "cut", stop_after=2)
    resumed = run(tmp_path / "cut")
    a, b, c = (lora_layers(m) for m in (full, first, resumed))
    assert any(not torch.allclose(a[n].lora_B, b[n].lora_B, atol=1e-6) for n in a)  # can fail
    for n in a:
        torch.testing.assert_close(c[n].lora_A, a[n].lora_A, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(c[n].lora_B, a[n].lora_B, atol=1e-6, rtol=1e-5)


def test_hard_max_dro_with_gradient_accumulation_is_refused(tiny_whisper_dir, train_set, tmp_path):
    model, proc = load(tiny_whisper_dir)
    inject_adapters(model, AdapterConfig(r=2))
    with pytest.raises(TrainingError, match="hard max.*gradient accumulation"):
        Trainer(model, proc, build_objective("fused"), train_set, cfg(tmp_path, grad_accum=2))
    Trainer(model, proc, build_objective("fused", dro_mode="online"), train_set,
            cfg(tmp_path, grad_accum=2))  # the online weights are a sum over utterances
    with pytest.raises(TrainingError, match="no adapters"):
        Trainer(load(tiny_whisper_dir)[0], proc, build_objective("erm"), train_set, cfg(tmp_path))
