"""``probekit train`` is registered and parses its options."""

from probekit.cli import build_parser


def test_train_command_is_registered():
    args = build_parser().parse_args(["train", "--corpus", "c/", "--out", "runs/x", "--method",
                                      "mas-lora", "--objective", "fused", "--objective-args",
                                      '{"dro_mode": "online"}', "--grad-accum", "2"])
    assert args.method == "mas-lora" and args.objective == "fused" and args.grad_accum == 2
    assert callable(args.func)
    from training.cli import train_settings

    cfg, adapter, method, objective, _ = train_settings(args)   # library defaults
    assert cfg.lr == 4e-5 and cfg.batch_size == 8 and cfg.lr_schedule == "constant"
    assert adapter == {} and (method, objective) == ("mas-lora", "fused")


def test_a_recipe_presets_the_papers_settings_and_flags_override_it():
    from training.cli import train_settings

    args = build_parser().parse_args(["train", "--corpus", "c/", "--out", "o", "--recipe",
                                      "maslora", "--lr", "1e-4", "--steps", "50"])
    cfg, adapter, method, objective, obj_args = train_settings(args)
    assert (cfg.lr, cfg.steps, cfg.batch_size, cfg.lr_schedule) == (1e-4, 50, 16, "linear")
    assert (cfg.select_d, cfg.select_metric) == (1.0, "micro")
    assert (method, objective, obj_args) == ("mas-lora", "erm", {"erm_reduction": "token"})
    args = build_parser().parse_args(["train", "--corpus", "c/", "--out", "o", "--recipe",
                                      "maslora", "--objective", "fused"])
    assert train_settings(args)[4] == {}        # the recipe's ERM arguments do not leak


def test_train_command_has_the_papers_scale_flags():
    args = build_parser().parse_args([
        "train", "--corpus", "c/", "--out", "o", "--precision", "bf16",
        "--gradient-checkpointing", "--warmup-steps", "500", "--groups-per-batch", "4",
        "--sampler", "balanced", "--eval-d", "1", "--select-d", "1", "--test-speakers", "0.25",
        "--language", "english", "--decode-task", "translate", "--lora-init", "gaussian",
        "--lora-alpha", "8"])
    assert args.precision == "bf16" and args.gradient_checkpointing and args.warmup_steps == 500
    assert args.groups_per_batch == 4 and args.sampler == "balanced" and args.eval_d == 1.0
    assert args.select_d == 1.0 and args.test_speakers == 0.25 and args.lora_init == "gaussian"
    from training.cli import train_settings

    cfg, adapter, *_ = train_settings(args)
    assert cfg.decode_task == "translate" and cfg.test_speakers == 0.25
    assert adapter["lora_alpha"] == 8.0
    d = build_parser().parse_args(["train", "--corpus", "c/", "--out", "o"])
    assert d.precision == "fp32" and not d.gradient_checkpointing and d.sampler is None
    assert d.eval_d is None and d.min_per_group == 2 and not d.cpu


def test_train_command_reports_validation_and_held_out_test(tiny_whisper_dir, small_corpus,
                                                            tmp_path, capsys):
    """End to end on the tiny model, one step. Each real speaker is split in two pseudo-
    speakers (the small corpus has 2 per group; three disjoint sets need 3)."""
    import dataclasses

    from probekit.corpus.model import Corpus

    utts = [dataclasses.replace(u, speaker=f"{u.speaker}-{i % 2}")
            for i, u in enumerate(small_corpus)]
    manifest = Corpus(utts, root=small_corpus.root).save(tmp_path / "corpus")
    rc = build_parser().parse_args([
        "train", "--corpus", str(manifest), "--out", str(tmp_path / "run"), "--model",
        str(tiny_whisper_dir), "--method", "mas-lora", "--steps", "1", "--batch-size", "4",
        "--val-speakers", "1", "--test-speakers", "0.34", "--eval-d", "1", "--cpu",
        "--no-progress", "--rank", "2", "--max-new-tokens", "3"])
    assert rc.func(rc) == 0
    out = capsys.readouterr().out
    assert "validation (model selection): macro-WER" in out and "test (held out): macro-WER" in out
    assert "test, accent known (d=1)" in out
    assert (tmp_path / "run" / "transcripts_test.csv").exists()
