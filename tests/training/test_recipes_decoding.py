"""Issue 20 (4, 6): the papers' recipes as presets; linear decay and token-mean loss;
decoding length and precision."""

import pytest
import torch

from training.objectives import ObjectiveInput, build_objective


def test_recipes_carry_the_papers_settings_and_flags_override():
    from training.recipes import RECIPES, recipe_settings
    from training.trainer import TrainingError

    cfg, adapter, method, objective, args = recipe_settings("maslora", out_dir="x",
                                                            train={"steps": 7})
    assert (cfg.batch_size, cfg.lr, cfg.lr_schedule, cfg.steps) == (16, 5e-5, "linear", 7)
    assert (cfg.select_d, cfg.select_metric, method, objective) == (1.0, "micro", "mas-lora", "erm")
    assert args == {"erm_reduction": "token"} and adapter["init"] == "normal"
    cfg, adapter, method, objective, _ = recipe_settings("fusion", out_dir="x")
    assert (cfg.lr, cfg.lr_schedule, objective, adapter["init"]) == (4e-5, "constant", "fused",
                                                                       "kaiming")
    assert all(r["sources"] for r in RECIPES.values())
    with pytest.raises(TrainingError, match="unknown recipe"):
        recipe_settings("nope", out_dir="x")


def test_token_mean_erm_weighs_tokens_not_utterances():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 7, generator=g)
    labels = torch.randint(0, 7, (2, 4), generator=g)
    labels[1, 1:] = -100
    b = ObjectiveInput(logits, labels, ["a", "b"])
    tok = torch.nn.functional.cross_entropy(logits.reshape(-1, 7), labels.reshape(-1),
                                            ignore_index=-100)
    assert float(build_objective("erm", erm_reduction="token")(b)["loss"]) == pytest.approx(
        float(tok))
    assert float(build_objective("erm")(b)["loss"]) != pytest.approx(float(tok))


def test_linear_schedule_decays_to_zero_and_fp16_base_is_upcast_under_fp32(
        tiny_whisper_dir, small_corpus, tmp_path):
    from training.adapters import AdapterConfig, inject_adapters
    from training.finetune import load_base
    from training.trainer import TrainConfig, Trainer

    mdl, proc = load_base(str(tiny_whisper_dir))
    mdl.half()
    inject_adapters(mdl, AdapterConfig(r=2), seed=0)
    cfg = TrainConfig(out_dir=str(tmp_path / "lin"), steps=4, batch_size=2, lr=1e-3, cpu=True,
                      progress=False, lr_schedule="linear", warmup_steps=1)
    tr = Trainer(mdl, proc, build_objective("erm"), small_corpus, cfg)
    assert tr.raw.get_encoder().conv1.weight.dtype == torch.float32
    lrs = []
    for _ in range(4):
        lrs.append(tr.sched.get_last_lr()[0])
        tr.sched.step()
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3 * 2 / 3, 1e-3 / 3])
    assert tr.sched.get_last_lr()[0] == 0.0


def test_decoding_defaults_to_the_model_limit_and_flags_hypotheses_cut_short(
        tiny_whisper_dir, small_corpus):
    from training.evaluate import EvaluationError, transcribe
    from training.finetune import load_base

    mdl, proc = load_base(str(tiny_whisper_dir))
    few = small_corpus.filter(ids=[u.id for u in small_corpus][:2])
    df = transcribe(mdl, proc, few, max_new_tokens=2)
    assert df["hit_max_tokens"].all()      # a random model does not end in 2 tokens
    with pytest.raises(EvaluationError, match="exceeds the model's limit"):
        transcribe(mdl, proc, few, max_new_tokens=448)


def test_cached_log_mels_equal_the_per_batch_ones(tiny_whisper_dir, small_corpus):
    from training.data import AudioCache, FeatureCache, collate
    from training.finetune import load_base

    _, proc = load_base(str(tiny_whisper_dir))
    utts = list(small_corpus)[:5]
    audio = AudioCache(small_corpus)
    cache = FeatureCache(audio, proc.feature_extractor)
    cache(utts[3:])                                   # cached in another batch first
    args = (utts, audio, proc.feature_extractor, proc.tokenizer, 50257)
    fresh, cached = collate(*args), collate(*args, features=cache)
    assert torch.equal(fresh["input_features"], cached["input_features"])
    assert torch.equal(fresh["labels"], cached["labels"])


def test_a_hypothesis_that_ended_is_not_flagged_as_cut(small_corpus):
    from training.evaluate import transcribe
    from training.finetune import load_base

    mdl, proc = load_base("whisper-tiny.en")
    few = small_corpus.filter(ids=[u.id for u in small_corpus][:3])
    df = transcribe(mdl, proc, few, max_new_tokens=60)     # short read sentences end early
    assert not df["hit_max_tokens"].any() and (df["hyp"].str.len() > 0).all()
