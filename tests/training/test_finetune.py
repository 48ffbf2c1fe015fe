"""training.finetune and the [training] stage of a study, on the tiny random Whisper."""

import json

import pandas as pd
import pytest

from probekit.corpus.seen import SEEN_FILE, SeenIds
from training.finetune import FinetuneError, finetune_splits

TINY_CORPUS = {"synthetic": "small", "speakers_per_group": 8, "sentences_per_speaker": 4,
               "sentence_pool": 8, "group_attribute": "accent"}


@pytest.fixture(scope="module")
def blocks_corpus(_isolated_cache):
    from probekit.corpus.synthetic import build_synthetic_corpus, resolve_config

    c = dict(TINY_CORPUS)
    c.pop("synthetic"), c.pop("group_attribute")
    return build_synthetic_corpus(resolve_config("small", **c), progress=False)


def test_splits_are_speaker_and_sentence_disjoint(blocks_corpus):
    sp = finetune_splits(blocks_corpus, train_groups=["es", "en-gb-scotland"], val_speakers=0)
    sents = lambda c: {u.sentence_id for u in c}  # noqa: E731
    assert not set(sp.train.speakers) & set(sp.test.speakers)
    assert not sents(sp.train) & sents(sp.test)
    assert set(sp.train.groups("accent")) <= {"es", "en-gb-scotland"}
    assert set(sp.test.groups("accent")) == set(blocks_corpus.groups("accent"))
    assert sp.sentence_disjoint and "sentence-disjoint" in sp.note
    assert sp.seen().speakers == frozenset(sp.train.speakers)
    with pytest.raises(FinetuneError, match="not in the corpus"):
        finetune_splits(blocks_corpus, train_groups=["xx"])


def test_without_sentence_ids_the_split_says_so(blocks_corpus):
    from dataclasses import replace

    from probekit.corpus.model import Corpus

    c = Corpus([replace(u, sentence_id=None) for u in blocks_corpus], root=blocks_corpus.root)
    sp = finetune_splits(c, val_speakers=0)
    assert not sp.sentence_disjoint and "speaker-disjoint only" in sp.note
    assert not set(sp.train.speakers) & set(sp.test.speakers)


def test_study_with_a_training_section_writes_the_before_after_report(tiny_whisper_dir, tmp_path):
    from probekit.testing.demo_configs import finetune_demo_config
    from probekit.study.run import run_study

    cfg = finetune_demo_config(model=str(tiny_whisper_dir), corpus=TINY_CORPUS, steps=2,
                               max_new_tokens=4, n_boot=50)
    run = run_study(cfg, tmp_path / "study", progress=False)
    md = run.report_md.read_text()
    assert "## Before / after fine-tuning" in md and "Leakage guard" in md
    assert "none of the" in md and "WER by group" in md and "FWER" in md
    cmp = pd.read_csv(tmp_path / "study" / "compare" / "comparison.csv")
    assert set(cmp["after"]) == {"lora-erm"} and set(cmp["before"]) == {"tiny-random-whisper"}
    wt = pd.read_csv(tmp_path / "study" / "compare" / "wer_table.csv")
    lv, ch = wt[wt["change_from"].isna()], wt[wt["change_from"] == "zero-shot"]
    assert {"pooled_macro", "pooled_difference"} <= set(lv["statistic"]) & set(ch["statistic"])
    assert set(wt["weighting"]) == {"items"} and lv["estimate"].between(0, 1).all()
    assert lv[lv["statistic"] == "pooled_macro"]["ci_low"].notna().all()
    merged = tmp_path / "study" / "work" / "train" / "lora-erm" / "merged"
    seen = SeenIds.load(merged)
    assert seen.speakers and (merged.parent / "final" / SEEN_FILE).is_file()
    assert json.loads((merged / "adaptation.json").read_text())["seen"]["speakers"] == len(seen.speakers)
    tested = set(cmp.columns) and set(pd.read_csv(tmp_path / "study" / "compare" /
                                                  "n_per_cell.csv")["group"])
    assert tested == {"en-us", "en-gb-scotland", "es"}
    # probekit compare --out and the study's compare stage write the same files, both through
    # Comparison.save (the study adds its WER table), and the same comparison table
    from probekit.cli import main

    study_cmp = tmp_path / "study" / "compare"
    assert main(["-q", "compare", str(tmp_path / "study" / "work" / "results"), "--before",
                 "tiny-random-whisper", "--after", "lora-erm", "--alpha", str(cfg.alpha),
                 "--out", str(tmp_path / "cli_cmp")]) == 0

    def files(d):
        return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())
    assert files(tmp_path / "cli_cmp") == [f for f in files(study_cmp) if f != "wer_table.csv"]
    assert "wer_table.csv" in files(study_cmp)
    assert ((tmp_path / "cli_cmp" / "comparison.csv").read_bytes()
            == (study_cmp / "comparison.csv").read_bytes())
    # a rerun reuses the fine-tuning run
    mtime = (merged / "model.safetensors").stat().st_mtime
    run_study(cfg, tmp_path / "study", progress=False)
    assert (merged / "model.safetensors").stat().st_mtime == mtime
