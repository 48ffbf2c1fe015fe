"""CTC (ASR) probe: learns a toy mapping, jiwer CER/WER by hand, unseen characters, determinism,
sklearn contract, and per-utterance frame sequences from a tiny store."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from probekit.probes.ctc import (BLANK, WORD_SEPARATOR, CTCProbe, aggregate_errors, ctc_errors,
                                 frames_by_utterance, normalize_text)

ALPHABET = "abcdef"
FAST = dict(learning_rate=3e-2, max_epochs=25, batch_size=16)


def toy(n, seed, d=16, noise=0.5):
    """Words over ALPHABET (no letter twice in a row); each character, and the space, is a fixed
    prototype vector repeated 2-4 frames plus Gaussian noise. float16 like the store."""
    rng = np.random.RandomState(seed)
    protos = np.random.RandomState(0).randn(len(ALPHABET) + 1, d)
    seqs, texts = [], []
    for _ in range(n):
        words = []
        for _ in range(rng.randint(1, 4)):
            w = [rng.choice(list(ALPHABET))]
            for _ in range(rng.randint(1, 4)):
                w.append(rng.choice([c for c in ALPHABET if c != w[-1]]))
            words.append("".join(w))
        text = " ".join(words)
        rows = []
        for c in text:
            rows += [protos[ALPHABET.find(c)]] * rng.randint(2, 5)  # find(" ") = -1: last proto
        seqs.append((np.array(rows) + noise * rng.randn(len(rows), d)).astype(np.float16))
        texts.append(text)
    return seqs, texts


@pytest.fixture(scope="module")
def data():
    return toy(120, 1), toy(40, 2)


def cer_of(probe, X, y):
    return 1.0 - probe.score(X, y)


def test_learns_toy_mapping_and_baselines_fail(data):
    (Xtr, ytr), (Xte, yte) = data
    probe = CTCProbe(random_state=0, **FAST).fit(Xtr, ytr)
    assert probe.vocab_[:2] == [BLANK, WORD_SEPARATOR] and set(probe.vocab_[2:]) == set(ALPHABET)
    assert cer_of(probe, Xte, yte) < 0.1
    assert probe.predict(Xte[:1]) == [yte[0]] or cer_of(probe, Xte[:1], yte[:1]) < 0.3
    untrained = CTCProbe(random_state=0, **{**FAST, "max_epochs": 0}).fit(Xtr, ytr)
    assert cer_of(untrained, Xte, yte) > 0.6
    shuffled = list(np.random.RandomState(0).permutation(ytr))
    with pytest.warns(RuntimeWarning, match="fewer frames"):  # shuffled texts often outrun frames
        shuffled_probe = CTCProbe(random_state=0, **FAST).fit(Xtr, shuffled)
    assert cer_of(shuffled_probe, Xte, yte) > 0.4


def test_hidden_layer_and_phone_units(data):
    (Xtr, ytr), (Xte, yte) = data
    assert cer_of(CTCProbe(hidden_size=32, random_state=0, **FAST).fit(Xtr, ytr), Xte, yte) < 0.1
    # Phones: symbols are the letters spelled out, words unseparated.
    to_ph = lambda t: [c.upper() + "h" for c in t if c != " "]  # noqa: E731
    ph = CTCProbe(units="phones", random_state=0, **FAST).fit(Xtr, [to_ph(t) for t in ytr])
    assert ph.vocab_[0] == BLANK and WORD_SEPARATOR not in ph.vocab_
    hyp = ph.predict(Xte)
    assert all(isinstance(h, str) for h in hyp)
    assert 1.0 - ph.score(Xte, [" ".join(to_ph(t)) for t in yte]) < 0.1


def test_errors_match_hand_computed_example():
    # ref "the cat sat" (11 chars incl. spaces, 3 words) vs hyp "the bat sat on":
    # chars: c->b substitution + " on" 3 insertions = 4 errors; words: cat->bat + on = 2.
    # ref "a b" vs hyp "": 3 deletions, 2 word deletions. Punctuation/case are normalised.
    df = ctc_errors(["the bat sat on", ""], ["The cat, sat!", "A b"], ids=["u1", "u2"])
    assert list(df.index) == ["u1", "u2"]
    assert df.loc["u1", ["n_chars", "n_words", "char_errors", "word_errors"]].tolist() == [11, 3, 4, 2]
    assert df.loc["u1", "cer"] == pytest.approx(4 / 11) and df.loc["u1", "wer"] == pytest.approx(2 / 3)
    assert df.loc["u2", "cer"] == 1.0 and df.loc["u2", "wer"] == 1.0
    agg = aggregate_errors(df).iloc[0]
    assert agg["cer"] == pytest.approx(7 / 14) and agg["wer"] == pytest.approx(4 / 5)
    assert (agg["n_chars"], agg["n_words"]) == (14, 5)
    df["speaker"] = ["s1", "s2"]
    assert aggregate_errors(df, by="speaker")["cer"].tolist() == pytest.approx([4 / 11, 1.0])
    import jiwer  # the per-utterance numbers are jiwer's own
    assert df.loc["u1", "cer"] == pytest.approx(jiwer.cer("the cat sat", "the bat sat on"))


def test_normalize_text():
    # Whisper's English normaliser, shared with training.evaluate (probekit.text)
    assert normalize_text("  Don’t STOP -- now, well-known!\n") == "do not stop now well known"
    assert normalize_text("...") == ""


def test_unseen_characters_count_as_errors(data):
    (Xtr, ytr), (Xte, yte) = data
    probe = CTCProbe(random_state=0, **FAST).fit(Xtr, ytr)
    base = probe.predict(Xte[:5])
    # Appending an unseen "z" to each reference: one more reference char, one more error each.
    err = ctc_errors(base, [h + "z" for h in base])
    assert (err["char_errors"] == 1).all() and (err["n_chars"] == [len(h) + 1 for h in base]).all()
    assert "z" not in probe.vocab_
    assert probe.score(Xte[:5], [h + "z" for h in base]) == pytest.approx(
        1 - 5 / sum(len(h) + 1 for h in base))


def test_deterministic_given_random_state(data):
    (Xtr, ytr), (Xte, _) = data
    kw = {**FAST, "max_epochs": 5}
    a = CTCProbe(random_state=3, **kw).fit(Xtr, ytr)
    b = CTCProbe(random_state=3, **kw).fit(Xtr, ytr)
    c = CTCProbe(random_state=4, **kw).fit(Xtr, ytr)
    la, lb, lc = (np.concatenate(p.predict_log_proba(Xte)) for p in (a, b, c))
    np.testing.assert_array_equal(la, lb)
    assert not np.allclose(la, lc)


def test_infeasible_targets_are_zeroed_with_a_warning(data):
    (Xtr, ytr), _ = data
    X = list(Xtr[:30]) + [Xtr[0][:1]]  # one frame for a multi-character transcript
    with pytest.warns(RuntimeWarning, match="1 of 31"):
        p = CTCProbe(random_state=0, **{**FAST, "max_epochs": 2}).fit(X, list(ytr[:30]) + ["abc"])
    assert p.n_infeasible_ == 1 and np.isfinite(p.best_val_loss_)


def test_sklearn_contract(data):
    (Xtr, ytr), (Xte, _) = data
    probe = CTCProbe(hidden_size=8, random_state=0, max_epochs=1)
    assert clone(probe).get_params() == probe.get_params()
    assert probe.set_params(max_epochs=2) is probe and probe.max_epochs == 2
    with pytest.raises(NotFittedError):
        probe.predict(Xte)
    assert probe.fit(Xtr, ytr) is probe
    assert {"vocab_", "model_", "mean_", "scale_", "n_features_in_", "n_iter_"} <= set(vars(probe))
    assert not any(k.endswith("_") for k in vars(clone(probe)))
    with pytest.raises(ValueError, match="empty"):
        CTCProbe().fit([], [])
    with pytest.raises(ValueError, match="3 sequences but 2 targets"):
        CTCProbe().fit(Xtr[:3], ytr[:2])
    with pytest.raises(ValueError, match="sequence 1 has 8 features"):
        CTCProbe().fit([Xtr[0], Xtr[1][:, :8]], ytr[:2])
    with pytest.raises(ValueError, match="fitted with 16"):
        probe.predict([Xte[0][:, :8]])
    with pytest.raises(ValueError, match="sequence 0 contains NaN"):
        CTCProbe().fit([np.full((3, 16), np.nan)] + Xtr[:1], ytr[:2])
    with pytest.raises(ValueError, match="units"):
        CTCProbe(units="words").fit(Xtr, ytr)
    with pytest.raises(ValueError, match="early_stopping=False"):
        CTCProbe(validation_fraction=0.1).fit(Xtr[:1], ytr[:1])


# -- EmbeddingStore.read_sequences on a tiny real store ---------------------------------------------------
@pytest.fixture(scope="module")
def frames_store(tmp_path_factory):
    from probekit.corpus.synthetic import build_synthetic_corpus
    from probekit.encoders import load_encoder
    from probekit.store import extract
    from probekit.testing.tiny_models import save_tiny_ssl

    tmp = tmp_path_factory.mktemp("ctc-store")
    corpus = build_synthetic_corpus("small", tmp / "corpus", progress=False)
    encoder = load_encoder(str(save_tiny_ssl("wav2vec2", tmp / "w2v2")), device="cpu")
    store = extract(encoder, corpus, tmp / "store", poolings=("utterance", "frames"),
                    dtype="float16", shard_size=4, batch_size=4, progress=False)
    return store, corpus


def test_read_sequences(frames_store):
    from probekit.errors import StoreError

    store, corpus = frames_store
    seqs, meta = store.read_sequences("block1", corpus)
    _, umeta = store.read("block1", "utterance")
    assert list(meta["utt_id"]) == [u.id for u in corpus]
    assert [len(s) for s in seqs] == list(meta["n_frames"]) == list(umeta["n_frames"])
    assert seqs[0].shape[1] == store.index["hidden_size"]
    assert list(meta["text"]) == [u.text for u in corpus]
    X, _ = store.read("block1", "frames")
    np.testing.assert_array_equal(np.concatenate(seqs), X)  # contiguous, nothing dropped
    seqs2, meta2 = store.read_sequences("block1")
    assert "text" not in meta2
    with pytest.raises(StoreError, match="not in the corpus"):
        store.read_sequences(1, {u.id: u.text for u in list(corpus)[1:]})
    with pytest.raises(StoreError, match="not the one"):
        store.read_sequences(1, corpus.filter(ids=[u.id for u in list(corpus)[:2]]))
    # the former name is the same reader
    old_seqs, old_meta = frames_by_utterance(store, "block1", corpus)
    assert len(old_seqs) == len(seqs) and old_meta.equals(meta)
    # The probe fits on what the helper returns (float16 sequences, store texts).
    p = CTCProbe(random_state=0, max_epochs=1, early_stopping=False).fit(seqs, meta["text"])
    assert len(p.predict(seqs[:2])) == 2


def test_one_jiwer_counter_gives_counts_and_fractions_to_probe_and_evaluation():
    from probekit.text import char_errors, edit_counts, word_errors

    refs, hyps = ["hello world", "a b c", "", "one two three four"], ["helo world", "a b", "x",
                                                                     "one two three four five"]
    e_w, n_w = edit_counts(refs, hyps)
    e_c, n_c = edit_counts(refs, hyps, unit="char")
    assert e_w.tolist() == [1, 1, 1, 1] and n_w.tolist() == [2, 3, 0, 4]
    df = ctc_errors(hyps, refs, normalize=False)
    assert df["word_errors"].tolist() == e_w.tolist() and df["n_words"].tolist() == n_w.tolist()
    assert df["char_errors"].tolist() == e_c.tolist() and df["n_chars"].tolist() == n_c.tolist()
    # corpus level: a fraction (empty references skipped), never percent
    wer, err, n = word_errors(refs, hyps)
    assert (err, n) == (3, 9) and wer == pytest.approx(3 / 9)
    assert char_errors(refs, hyps)[0] == pytest.approx(e_c[n_c > 0].sum() / n_c.sum())
    with pytest.raises(ValueError, match="unit"):
        edit_counts(refs, hyps, unit="phone")
